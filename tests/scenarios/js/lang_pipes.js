// lang_pipes.py in JS: pipes between a parent and its child: a duplex pipe's end passed to a child, messages both
// ways, EOF once the child's end is gone, and the errors of a one-way pipe's wrong end, printed as `Type: message`.
import { Pipe, Process } from '../../../examples/js/multiprocessing.js';
import { attempt, bytes, show } from './show.js';

function echo(conn) {
  for (;;) {
    const message = new TextDecoder().decode(conn.recvBytes());
    if (message === 'bye') break;
    conn.sendBytes(bytes(message.toUpperCase()));
  }
  conn.close();
}

function main() {
  const [ours, theirs] = Pipe();
  const p = new Process({ target: echo, args: [theirs] });
  p.start();
  theirs.close();
  for (const word of ['hello', 'pipes', '']) {
    ours.sendBytes(bytes(word));
    show('echoed', ours.recvBytes());
  }
  ours.sendBytes(bytes('bye'));
  p.join();
  show('child', p.exitcode);
  attempt('poll after the child ended', () => ours.poll(1));
  attempt('recv after the child ended', () => ours.recvBytes());
  ours.close();
  attempt('send on a closed end', () => ours.sendBytes(bytes('x')));

  const [reader, writer] = Pipe(false);
  show('readable', reader.readable, reader.writable, 'writable', writer.readable, writer.writable);
  attempt('poll with nothing sent', () => reader.poll(0.05));
  writer.sendBytes(bytes('one way'));
  attempt('poll with a message', () => reader.poll(0));
  show('received', reader.recvBytes());
  attempt('send on the reading end', () => reader.sendBytes(bytes('x')));
  attempt('recv on the writing end', () => writer.recvBytes());
  reader.close();
  attempt('send with the reader gone', () => writer.sendBytes(bytes('x')));
}

export default { main, targets: { echo } };
