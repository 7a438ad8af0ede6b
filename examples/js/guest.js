// The JavaScript wmp guest, on the multiprocessing.js wrapper. With no arguments it prints its identity, starts
// two children running the target `worker` (exit codes 0 and 3), joins them and prints their exit codes. With
// `mixed PROGRAM...` it starts the target `echo` of each program the host shared (rust, c, python, js), hands it
// one end of a pipe, and prints the reply to its hello. A child is a fresh instance of this program (or of
// PROGRAM): `run` starts the target it was started for.
import { getStdout } from 'wasi:cli/stdout@0.2.12';
import { Pipe, Process, currentProcess, exit, inheritedConnections, run as runProcess } from './multiprocessing.js';

// Writes a line in one write (console.log writes the newline apart, so the lines of children running at the same
// time could interleave).
function print(line) {
  getStdout().blockingWriteAndFlush(new TextEncoder().encode(`${line}\n`));
}

// Prints "ROLE name=N pid=P identity=[a,b] parent_pid=Q" for the current process.
function describe(role) {
  const me = currentProcess();
  const identity = me.identity.join(',');
  print(`${role} name=${me.name} pid=${me.pid} identity=[${identity}] parent_pid=${me.parentPid ?? 'none'}`);
}

// Ends with the exit code it is given.
function worker(code) {
  describe('worker');
  exit(Number(code));
}

// Replies to each message on its first inherited connection, upper-cased and tagged with its process name,
// until `bye`.
function echo() {
  const [conn] = inheritedConnections();
  const encoder = new TextEncoder();
  for (;;) {
    const message = new TextDecoder().decode(conn.recvBytes());
    if (message === 'bye') break;
    conn.sendBytes(encoder.encode(`${message.toUpperCase()} (js ${currentProcess().name})`));
  }
}

function twoChildren() {
  describe('main');
  const children = [0, 3].map((code) => {
    const child = new Process({ target: worker, args: [code] });
    child.start();
    return child;
  });
  for (const child of children) {
    child.join();
    print(`${child.name} exitcode=${child.exitcode}`);
  }
}

// Starts each program's `echo` with one end of a pipe, says hello, prints the reply and the child's exit code.
function mixed(programs) {
  const encoder = new TextEncoder();
  for (const program of programs) {
    const [ours, theirs] = Pipe();
    const child = new Process({ target: 'echo', args: [], program });
    child.passConnection(theirs);
    child.start();
    ours.sendBytes(encoder.encode('hello from js'));
    print(`mixed ${program}: ${new TextDecoder().decode(ours.recvBytes())}`);
    ours.sendBytes(encoder.encode('bye'));
    child.join();
    print(`${program} exitcode=${child.exitcode}`);
  }
}

function main(argv) {
  if (argv[0] === 'mixed') mixed(argv.slice(1));
  else twoChildren();
}

export const run = { run: () => runProcess(main, { worker, echo }) };
