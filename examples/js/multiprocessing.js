// Python's `multiprocessing` for JavaScript wmp guests, over the imports wmp:process/process and
// wmp:process/connection: Process, currentProcess, parentProcess, activeChildren, Pipe and Connection, Queue,
// Listener and Client, wait, and `run`, the body of the guest's wasi:cli/run export. Names are CPython's in
// camelCase; seconds are seconds; every error is a JS Error whose `name` is the exception CPython raises, with
// CPython's message.
//
// Arguments travel as JSON. Between JS guests a Uint8Array stays one, and a Connection or Queue in a child's
// arguments is handed to it at start (pass-connection, pass-queue) and arrives as one; a child in another
// language gets plain JSON, and the ends passed with `passConnection`/`passQueue` are its inherited ones.
import { getArguments } from 'wasi:cli/environment@0.2.12';
import { getStderr } from 'wasi:cli/stderr@0.2.12';
import * as wit from 'wmp:process/process@0.1.0';
import * as witConnection from 'wmp:process/connection@0.1.0';

// --- errors ---------------------------------------------------------------------------------------------------

// An Error subclass that reads as CPython's exception `name` (a subclass of `base`).
function exceptionType(name, base = Error) {
  const type = class extends base {};
  Object.defineProperty(type, 'name', { value: name });
  Object.defineProperty(type.prototype, 'name', { value: name });
  return type;
}

export const AssertionError = exceptionType('AssertionError');
export const ValueError = exceptionType('ValueError');
export const EOFError = exceptionType('EOFError');
export const OSError = exceptionType('OSError');
export const BrokenPipeError = exceptionType('BrokenPipeError', OSError);
export const ConnectionRefusedError = exceptionType('ConnectionRefusedError', OSError);
export const Empty = exceptionType('Empty');
export const Full = exceptionType('Full');
export const ProcessError = exceptionType('ProcessError');
export const AuthenticationError = exceptionType('AuthenticationError', ProcessError);

// The WIT error cases, as CPython's exceptions, with the host's message (CPython's words); `refused` and
// `address-in-use` carry the address instead. Process errors not listed are CPython's AssertionErrors.
const processErrors = {
  'closed': (message) => new ValueError(message),
  'not-started': (message) => new ValueError(message),
  'close-running': (message) => new ValueError(message),
  'unknown-target': (message) => new OSError(message),
  'spawn-failed': (message) => new OSError(message),
  'limit-reached': (message) => new OSError(message),
};
const connectionErrors = {
  'eof': (message) => new EOFError(message),
  'closed': (message) => new OSError(message),
  'broken-pipe': (message) => new BrokenPipeError(message),
  'write-only': (message) => new OSError(message),
  'read-only': (message) => new OSError(message),
  'empty': (message) => new Empty(message),
  'full': (message) => new Full(message),
  'authentication': (message) => new AuthenticationError(message),
  'refused': () => new ConnectionRefusedError('[Errno 111] Connection refused'),
  'address-in-use': () => new OSError('[Errno 98] Address already in use'),
};

// Calls `f`, throwing CPython's exception for a WIT error it throws (a process error, or one of `errors`).
function call(f, errors = processErrors) {
  try {
    return f();
  } catch (err) {
    const payload = err?.payload;
    if (payload?.tag === undefined) throw err;
    const exception = errors[payload.tag] ?? ((message) => new AssertionError(message));
    throw exception(payload.val);
  }
}

// Calls a wmp:process/connection function that gives connection errors.
function callConnection(f) {
  return call(f, connectionErrors);
}

// Seconds (undefined or null: no timeout) as the host's nanoseconds.
function nanos(seconds) {
  return seconds === undefined || seconds === null ? undefined : BigInt(Math.max(0, Math.round(seconds * 1e9)));
}

// --- messages and arguments -----------------------------------------------------------------------------------

// Whether `value` is a Uint8Array (of any realm: the host's bindings make theirs in another, so `instanceof`
// fails for them).
export function isBytes(value) {
  return Object.prototype.toString.call(value) === '[object Uint8Array]';
}

// Bytes the host gave, as a Uint8Array of this realm.
function own(bytes) {
  return new Uint8Array(bytes);
}

const BYTES = '__wmp_bytes__';
const CONNECTION = '__wmp_connection__';
const QUEUE = '__wmp_queue__';

// `value` as JSON; a Uint8Array is tagged, and `hand(kind, object)` gives the tag of a Connection or Queue
// (without it, those are refused: messages carry no handles).
function encode(value, hand = refuseHandle) {
  return new TextEncoder().encode(JSON.stringify(value, function (key, v) {
    const raw = this[key];
    if (isBytes(raw)) return { [BYTES]: Array.from(raw) };
    if (raw instanceof Connection) return { [CONNECTION]: hand('connection', raw) };
    if (raw instanceof Queue) return { [QUEUE]: hand('queue', raw) };
    return v;
  }));
}

function refuseHandle(kind) {
  throw new TypeError(`cannot send a ${kind}: wmp hands connections and queues to a child only in its Process args`);
}

// The value of JSON `bytes`; `inherited(kind, index)` resolves a handed Connection or Queue.
function decode(bytes, inherited = refuseHandle) {
  return JSON.parse(new TextDecoder().decode(bytes), (key, v) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    if (BYTES in v) return Uint8Array.from(v[BYTES]);
    if (CONNECTION in v) return inherited('connection', v[CONNECTION]);
    if (QUEUE in v) return inherited('queue', v[QUEUE]);
    return v;
  });
}

// What this process's parent handed it (taken from the host once): connection ends and queue handles, each
// marked when its Process args claim it.
let inherited;

function inheritedHandles() {
  inherited ??= {
    connection: witConnection.inheritedConnections().map((end) => ({ object: Connection.of(end), claimed: false })),
    queue: witConnection.inheritedQueues().map((queue) => ({ object: Queue.of(queue), claimed: false })),
  };
  return inherited;
}

function claimInherited(kind, index) {
  const entry = inheritedHandles()[kind][index];
  entry.claimed = true;
  return entry.object;
}

// The connection ends the parent handed this process and its args did not carry (a parent in another language
// hands them all this way).
export function inheritedConnections() {
  return inheritedHandles().connection.filter((entry) => !entry.claimed).map((entry) => entry.object);
}

// The queues the parent handed this process and its args did not carry.
export function inheritedQueues() {
  return inheritedHandles().queue.filter((entry) => !entry.claimed).map((entry) => entry.object);
}

// --- processes --------------------------------------------------------------------------------------------------

// The targets `run` was given, by name.
let targets = {};
// Started children by pid, so activeChildren returns the objects their parent made.
const children = new Map();

// Becomes ready when its process has ended; `wait` takes it.
export class Sentinel {
  constructor(handle) {
    this.handle = handle;
  }

  get ready() {
    return this.handle.ready();
  }
}

// A process object, as CPython's `multiprocessing.Process`. `target` is a function given to `run` (or its name);
// none runs the program's main with `args` as its argv. `program` names another program the host shared.
export class Process {
  constructor({ target, args = [], name, daemon, program } = {}) {
    // The Connections and Queues to hand the child at start: those in its args, then those passed explicitly.
    this.toHand = { connection: [], queue: [] };
    let spec;
    if (target === undefined) {
      spec = { target: '', args: encode(args.map(String)) };
    } else {
      const hand = (kind, object) => this.toHand[kind].push(object) - 1;
      spec = { target: typeof target === 'function' ? targetNameOf(target) : String(target), args: encode(args, hand) };
    }
    this.handle = new wit.Process({ ...spec, name, daemon, program });
  }

  // A view of a process the host made (the current, the parent or an active child).
  static of(handle) {
    const process = Object.create(Process.prototype);
    process.handle = handle;
    process.toHand = { connection: [], queue: [] };
    return process;
  }

  // Hands a connection end to the child at its start, after those in its args; the child takes it from
  // `inheritedConnections()`. The end is the child's from then on.
  passConnection(end) {
    this.toHand.connection.push(end);
  }

  // Shares a queue with the child at its start; the child takes it from `inheritedQueues()`.
  passQueue(queue) {
    this.toHand.queue.push(queue);
  }

  start() {
    const { connection, queue } = this.toHand;
    this.toHand = { connection: [], queue: [] };
    for (const end of connection) call(() => witConnection.passConnection(this.handle, end.take()));
    for (const q of queue) call(() => witConnection.passQueue(this.handle, q.live()));
    call(() => this.handle.start());
    children.set(this.pid, this);
  }

  // Waits until the process ends, or `timeout` seconds.
  join(timeout) {
    call(() => this.handle.join(nanos(timeout)));
    if (this.exitcode !== null) children.delete(this.pid);
  }

  isAlive() {
    return call(() => this.handle.isAlive());
  }

  // null until it ends; then 0, the code of exit(n), 1 after an uncaught error, -15 after terminate, -9 after kill.
  get exitcode() {
    return call(() => this.handle.exitcode()) ?? null;
  }

  terminate() {
    call(() => this.handle.terminate());
  }

  kill() {
    call(() => this.handle.kill());
  }

  close() {
    call(() => this.handle.close());
  }

  get pid() {
    return call(() => this.handle.pid()) ?? null;
  }

  get ident() {
    return this.pid;
  }

  get name() {
    return this.handle.name();
  }

  set name(name) {
    if (typeof name !== 'string') throw new AssertionError('name must be a string');
    this.handle.setName(name);
  }

  get daemon() {
    return this.handle.daemon();
  }

  set daemon(daemon) {
    call(() => this.handle.setDaemon(Boolean(daemon)));
  }

  get authkey() {
    return own(this.handle.authkey());
  }

  set authkey(key) {
    if (!isBytes(key)) throw new TypeError('authkey should be a byte string');
    this.handle.setAuthkey(key);
  }

  // wmp: the identity numbers of its name (`[2, 1]` for Process-2:1; `[]` for the main process).
  get identity() {
    return Array.from(this.handle.identity());
  }

  // wmp: the pid of the process that created it (null for the main process).
  get parentPid() {
    return this.handle.parentPid() ?? null;
  }

  // Ready once the process has ended; the same object each time.
  get sentinel() {
    this.sentinelObject ??= new Sentinel(call(() => this.handle.sentinel()));
    return this.sentinelObject;
  }

  // CPython's repr, e.g. `<Process name='Process-1' pid=7 parent=1 started>`.
  toString() {
    return this.handle.display();
  }
}

// The name `run` was given the target function `f` under: a child finds it by that name.
function targetNameOf(f) {
  const name = Object.keys(targets).find((key) => targets[key] === f);
  if (name === undefined) throw new TypeError(`target ${f.name || 'function'} is not one of those given to run()`);
  return name;
}

let current;

// The process running this code.
export function currentProcess() {
  current ??= Process.of(wit.currentProcess());
  return current;
}

// The process that started this one; null in the main process.
export function parentProcess() {
  const handle = wit.parentProcess();
  return handle === undefined ? null : Process.of(handle);
}

// The started children that have not ended (the objects this process made).
export function activeChildren() {
  return wit.activeChildren().map((handle) => {
    const pid = call(() => handle.pid());
    return children.get(pid) ?? Process.of(handle);
  });
}

// Ends this process at once with `code` (CPython's sys.exit).
export function exit(code = 0) {
  wit.exit(code);
}

// --- connections ----------------------------------------------------------------------------------------------

// One end of a pipe, or a connection a listener accepted or a client made. `send`/`recv` carry JSON values,
// `sendBytes`/`recvBytes` raw bytes (Uint8Array).
export class Connection {
  static of(handle) {
    const end = Object.create(Connection.prototype);
    end.handle = handle;
    end.canRead = handle.readable();
    end.canWrite = handle.writable();
    return end;
  }

  // The handle, checked open.
  live() {
    if (this.handle === null) throw new OSError('handle is closed');
    return this.handle;
  }

  // The handle, leaving this end closed: it moves to a child.
  take() {
    const handle = this.live();
    this.handle = null;
    return handle;
  }

  get closed() {
    return this.handle === null;
  }

  get readable() {
    return this.canRead;
  }

  get writable() {
    return this.canWrite;
  }

  sendBytes(bytes) {
    const handle = this.live();
    if (!this.canWrite) throw new OSError('connection is read-only');
    callConnection(() => handle.sendBytes(bytes));
  }

  recvBytes() {
    const handle = this.live();
    if (!this.canRead) throw new OSError('connection is write-only');
    return own(callConnection(() => handle.recvBytes()));
  }

  send(value) {
    this.sendBytes(encode(value));
  }

  recv() {
    return decode(this.recvBytes());
  }

  // Whether a message (or EOF) can be received, waiting up to `timeout` seconds (null: as long as it takes).
  poll(timeout = 0) {
    const handle = this.live();
    if (!this.canRead) throw new OSError('connection is write-only');
    return callConnection(() => handle.poll(nanos(timeout)));
  }

  close() {
    if (this.handle !== null) this.take().close();
  }
}

// Two connected ends, both ways if `duplex`; else the first only receives and the second only sends.
export function Pipe(duplex = true) {
  const [first, second] = witConnection.pipe(Boolean(duplex));
  return [Connection.of(first), Connection.of(second)];
}

// A queue shared by every process it is handed to; items are JSON values (a Uint8Array stays one).
export class Queue {
  constructor(maxsize = 0) {
    this.maxsize = maxsize > 0 ? maxsize : 0;
    this.handle = new witConnection.Queue(this.maxsize);
  }

  static of(handle) {
    const queue = Object.create(Queue.prototype);
    queue.maxsize = 0;
    queue.handle = handle;
    return queue;
  }

  live() {
    if (this.handle === null) throw new ValueError('Queue is closed');
    return this.handle;
  }

  // Waits up to `timeout` seconds for room (undefined: as long as it takes); Full if there is none.
  put(value, timeout) {
    const handle = this.live();
    callConnection(() => handle.put(encode(value), nanos(timeout)));
  }

  // Waits up to `timeout` seconds for an item (undefined: as long as it takes); Empty if none came. wmp ends a
  // get at once when no other process holds the queue (nothing can arrive): EOFError without a timeout (where
  // CPython would wait for ever), Empty with one (as CPython, without the wait).
  get(timeout) {
    const handle = this.live();
    try {
      return decode(callConnection(() => handle.get(nanos(timeout))));
    } catch (err) {
      if (err instanceof EOFError && nanos(timeout) !== undefined) throw new Empty('');
      throw err;
    }
  }

  putNowait(value) {
    this.put(value, 0);
  }

  getNowait() {
    return this.get(0);
  }

  empty() {
    return this.live().empty();
  }

  qsize() {
    return this.live().qsize();
  }

  full() {
    return this.maxsize > 0 && this.qsize() >= this.maxsize;
  }

  // Closes this process's handle; the others keep the queue.
  close() {
    if (this.handle !== null) {
      this.handle.close();
      this.handle = null;
    }
  }
}

// How many listeners this process made without an address (each gets a name of its own).
let unnamedListeners = 0;

// A name in the runtime that clients connect to, proving `authkey` (this process's authkey if none); without an
// address, one of its own (`address` tells it).
export class Listener {
  constructor(address, { authkey } = {}) {
    this.address = address === undefined || address === null
      ? `wmp-listener-${currentProcess().pid}-${unnamedListeners++}`
      : String(address);
    this.handle = callConnection(() => witConnection.listen(this.address, authkey));
  }

  // Waits for a client and authenticates it; AuthenticationError if its key is wrong.
  accept() {
    if (this.handle === null) throw new OSError('listener is closed');
    return Connection.of(callConnection(() => this.handle.accept()));
  }

  close() {
    if (this.handle !== null) {
      this.handle.close();
      this.handle = null;
    }
  }
}

// A connection to the Listener at `address`, proving `authkey` (this process's if none).
export function Client(address, { authkey } = {}) {
  return Connection.of(callConnection(() => witConnection.connect(String(address), authkey)));
}

// Waits until a Sentinel is ready or a Connection has something (or EOF) to receive, or `timeout` seconds pass
// (undefined: as long as it takes); returns the ready ones, in the order given.
export function wait(objects, timeout) {
  const sentinels = objects.filter((o) => o instanceof Sentinel);
  const connections = objects.filter((o) => o instanceof Connection);
  if (sentinels.length + connections.length !== objects.length) {
    throw new TypeError('wmp can wait only on connections and sentinels');
  }
  const handles = connections.map((c) => c.live());
  const order = [...sentinels, ...connections];
  const indices = witConnection.wait(sentinels.map((s) => s.handle), handles, nanos(timeout));
  const ready = new Set(Array.from(indices, (i) => order[i]));
  return objects.filter((o) => ready.has(o));
}

// --- the entry point --------------------------------------------------------------------------------------------

// Writes `text` to stderr (in pieces of 4096 bytes, the most one blocking write takes).
function printError(text) {
  const bytes = new TextEncoder().encode(text);
  for (let at = 0; at < bytes.length; at += 4096) getStderr().blockingWriteAndFlush(bytes.subarray(at, at + 4096));
}

// `err` as a line `Type: message`, with the JS stack after it when there is one.
function described(err) {
  const head = err instanceof Error ? `${err.name}: ${err.message}` : `Error: ${String(err)}`;
  return err?.stack ? `${head}\n${err.stack}` : `${head}\n`;
}

// The body of the guest's wasi:cli/run: in the main process, `main(argv)` (argv after argv[0]); in a child, the
// target it was started for, by name in `targets`, with its args (an array is spread, any other value is the one
// argument). An uncaught error ends the process with exitcode 1, printed after `Process NAME:` in a child, as
// CPython prints it.
export function run(main, targetsByName = {}) {
  targets = targetsByName;
  const request = wit.spawnContext();
  try {
    if (request === undefined) {
      main(getArguments().slice(1));
      return;
    }
    const target = targets[request.target];
    if (target === undefined) {
      printError(`unknown target '${request.target}'\n`);
      exit(1);
    }
    const args = decode(request.args, claimInherited);
    if (Array.isArray(args)) target(...args);
    else target(args);
  } catch (err) {
    const header = request === undefined ? '' : `Process ${currentProcess().name}:\n`;
    printError(header + described(err));
    exit(1);
  }
}
