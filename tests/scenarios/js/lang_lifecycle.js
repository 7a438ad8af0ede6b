// lang_lifecycle.py in JS: a child's life as the process model reports it: reprs before start, while running and
// after its end, exit codes of exit(n), terminate and kill, and the errors of misuse, printed as `Type: message`.
import { subscribeDuration } from 'wasi:clocks/monotonic-clock@0.2.12';
import { Process, activeChildren, currentProcess, exit, parentProcess } from '../../../examples/js/multiprocessing.js';
import { failure, repr, show } from './show.js';

function worker(code) {
  show('worker', currentProcess().name, 'exits with', code);
  exit(Number(code));
}

function spin() {
  for (;;) subscribeDuration(10_000_000n).block();
}

function attempt(what, action) {
  try {
    action();
    show(what, 'ok');
  } catch (err) {
    show(what, failure(err));
  }
}

function main() {
  show('main', currentProcess().name, repr(parentProcess()));
  const p = new Process({ target: worker, args: ['3'] });
  show(repr(p), p.exitcode, p.isAlive());
  p.start();
  p.join();
  show(repr(p), p.exitcode, p.isAlive());
  show(p.name, p.daemon, p.pid === p.ident);
  attempt('start again', () => p.start());

  for (const stop of ['terminate', 'kill']) {
    const q = new Process({ target: spin, name: `spinner-${stop}` });
    q.start();
    q[stop]();
    q.join();
    show(repr(q), q.exitcode);
  }

  const r = new Process({ target: spin, daemon: true });
  show(repr(r));
  r.start();
  attempt('close while running', () => r.close());
  r.kill();
  r.join();
  attempt('close', () => r.close());
  attempt('is_alive after close', () => r.isAlive());
  attempt('join unstarted', () => new Process({ target: spin }).join());
  show('active', activeChildren());
}

export default { main, targets: { worker, spin } };
