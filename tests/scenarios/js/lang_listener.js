// lang_listener.py in JS: a listener and its clients, authenticated by a key: a client with the key is accepted
// and talks both ways; a client with a wrong key is refused on both sides with AuthenticationError's messages.
import { Client, Listener, Process, currentProcess } from '../../../examples/js/multiprocessing.js';
import { bytes, failure, show } from './show.js';

function client(address, key) {
  try {
    const conn = Client(address, { authkey: key });
    try {
      conn.sendBytes(bytes(`hello from ${currentProcess().name}`));
      show('client got', conn.recvBytes());
    } finally {
      conn.close();
    }
  } catch (err) {
    show('client', failure(err));
  }
}

function main() {
  // a name unique to this run: a path under CPython, a name in the runtime under wmp
  const address = `/tmp/wmp-scenario-listener-${currentProcess().pid}`;
  const listener = new Listener(address, { authkey: bytes('secret') });
  try {
    const good = new Process({ target: client, args: [address, bytes('secret')] });
    good.start();
    const conn = listener.accept();
    try {
      show('server got', conn.recvBytes());
      conn.sendBytes(bytes('welcome'));
      good.join();
    } finally {
      conn.close();
    }
    const bad = new Process({ target: client, args: [address, bytes('wrong')] });
    bad.start();
    let refusal;
    try {
      listener.accept();
      refusal = 'accepted';
    } catch (err) {
      refusal = failure(err);
    }
    bad.join(); // the client's line first: the two would race
    show('server', refusal);
    show('exitcodes', good.exitcode, bad.exitcode);
  } finally {
    listener.close();
  }
}

export default { main, targets: { client } };
