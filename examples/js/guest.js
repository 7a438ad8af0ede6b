// The JavaScript wmp guest: prints its identity, starts two children
// running the target `worker` (exit codes 0 and 3), joins them and prints
// their exit codes. A child is a fresh instance of this program; `run` asks
// the host (spawnContext) whether it is one and, if so, runs the requested
// target with its JSON arguments.
import { getStdout } from 'wasi:cli/stdout@0.2.12';
import { Process, currentProcess, exit, spawnContext } from 'wmp:process/process@0.1.0';

// Writes a line in one write (console.log writes the newline apart, so the
// lines of children running at the same time could interleave).
function print(line) {
  getStdout().blockingWriteAndFlush(new TextEncoder().encode(`${line}\n`));
}

// Prints "ROLE name=N pid=P identity=[a,b] parent_pid=Q" for a process.
function describe(role, p) {
  const identity = Array.from(p.identity()).join(',');
  print(`${role} name=${p.name()} pid=${p.pid()} identity=[${identity}] parent_pid=${p.parentPid() ?? 'none'}`);
}

// The targets a child can run, by name; each takes the decoded JSON args.
const targets = {
  worker(code) {
    describe('worker', currentProcess());
    exit(Number(code));
  },
};

function main() {
  describe('main', currentProcess());
  const children = [0, 3].map((code) => {
    const child = new Process({ target: 'worker', args: new TextEncoder().encode(JSON.stringify(code)) });
    child.start();
    return child;
  });
  for (const child of children) {
    child.join();
    print(`${child.name()} exitcode=${child.exitcode()}`);
  }
}

export const run = {
  run() {
    const request = spawnContext();
    if (request === undefined) return main();
    const target = targets[request.target];
    if (target === undefined) {
      console.error(`unknown target ${JSON.stringify(request.target)}`);
      exit(1);
    }
    target(JSON.parse(new TextDecoder().decode(request.args)));
  },
};
