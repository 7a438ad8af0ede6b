// lang_queues.py in JS: a queue shared by a parent and two children: what each put arrives once, a get on an
// empty queue times out with Empty, and a full bounded queue refuses a put with Full.
import { Process, Queue } from '../../../examples/js/multiprocessing.js';
import { attempt, bytes, compareBytes, show } from './show.js';

function producer(q, tag, count) {
  for (let n = 0; n < count; n++) q.put(bytes(`${tag}${n}`));
}

function main() {
  const q = new Queue();
  const children = ['a', 'b'].map((tag) => new Process({ target: producer, args: [q, tag, 3] }));
  for (const child of children) child.start();
  const got = Array.from({ length: 6 }, () => q.get(10)).sort(compareBytes);
  for (const child of children) child.join();
  show('got', got, children.map((child) => child.exitcode));
  attempt('empty', () => q.empty());
  attempt('get from an empty queue', () => q.get(0.05));

  const bounded = new Queue(1);
  bounded.put(bytes('only'));
  attempt('put into a full queue', () => bounded.put(bytes('more'), 0.05));
  attempt('get', () => bounded.get());
}

export default { main, targets: { producer } };
