// lang_wait.py in JS: wait over connections and sentinels together: a timeout with nothing ready, a message ready
// while its child still runs, then the child's sentinel once it has ended.
import { Pipe, Process, wait } from '../../../examples/js/multiprocessing.js';
import { bytes, show } from './show.js';

function signaller(out, go) {
  out.sendBytes(bytes('ready'));
  go.recvBytes();
}

function main() {
  const [inbox, out] = Pipe(false);
  const [goIn, goOut] = Pipe(false);
  show('nothing yet', wait([inbox], 0.05));
  const p = new Process({ target: signaller, args: [out, goIn] });
  p.start();
  out.close();
  goIn.close();
  const labels = new Map([[inbox, 'inbox'], [p.sentinel, 'sentinel']]);
  let ready = wait([inbox, p.sentinel], 10);
  show('while it runs', ready.map((x) => labels.get(x)));
  show('message', inbox.recvBytes());
  goOut.sendBytes(bytes('go'));
  ready = wait([p.sentinel], 10);
  show('after go', ready.map((x) => labels.get(x)));
  p.join();
  show('exitcode', p.exitcode);
}

export default { main, targets: { signaller } };
