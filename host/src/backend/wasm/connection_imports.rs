//! The `wmp:process/connection` WIT imports as the host implements them
//! for a guest: thin adapters from the WIT resources to [`Connection`],
//! [`Queue`] and [`Listener`], with the calling guest's authkey as the
//! default key and its spec as where passed handles wait for a child. The
//! bytes it sends and receives are counted in its metrics.

use wasmtime::component::Resource;
use wmp_core::{AuthKey, ConnectionError};

use crate::backend::wasm::ComponentState;
use crate::ipc::connection::Connection;
use crate::base::ledger::{Charged, Held, MESSAGE_COST, OBJECT_COST};
use crate::backend::wasm::process_imports::bindings::wmp::process::connection::{self as wit, Error as WitError};
use crate::backend::wasm::process_imports::{WitResult, nanos, wit_error};
use crate::ipc::listener::Listener;
use crate::model::process::Process;
use crate::ipc::queue::Queue;
use crate::ipc::sentinel::Sentinel;
use crate::ipc::wait::{Waitable, wait_ready};

/// The WIT case of an error, with the message CPython's exception for it shows (its `str()`): none for
/// `EOFError`, `queue.Empty` and `queue.Full`, the OS's words for `BrokenPipeError`.
fn wit_connection_error(err: ConnectionError) -> WitError {
    let message = err.to_string();
    match err {
        ConnectionError::Eof => WitError::Eof(String::new()),
        ConnectionError::Closed => WitError::Closed(message),
        ConnectionError::BrokenPipe => WitError::BrokenPipe("[Errno 32] Broken pipe".into()),
        ConnectionError::WriteOnly => WitError::WriteOnly(message),
        ConnectionError::ReadOnly => WitError::ReadOnly(message),
        ConnectionError::Empty => WitError::Empty(String::new()),
        ConnectionError::Full => WitError::Full(String::new()),
        ConnectionError::Authentication(why) => WitError::Authentication(why),
        ConnectionError::Refused(address) => WitError::Refused(address),
        ConnectionError::AddressInUse(address) => WitError::AddressInUse(address),
        // The host moves bytes only; encoding is the guest SDK's.
        ConnectionError::Encode(_) | ConnectionError::Decode(_) => unreachable!("the host never encodes messages"),
    }
}

type ConnResult<T> = wasmtime::Result<Result<T, WitError>>;

fn conn_result<T>(result: Result<T, ConnectionError>) -> ConnResult<T> {
    Ok(result.map_err(wit_connection_error))
}

/// Splits framed messages (see `wmp_core::frames`); a malformed buffer is
/// a guest bug and traps.
fn unframe(frames: &[u8]) -> wasmtime::Result<Vec<Vec<u8>>> {
    wmp_core::frames::decode(frames).map_err(wasmtime::Error::new)
}

impl ComponentState {
    fn key_or_own(&self, authkey: Option<Vec<u8>>) -> AuthKey {
        authkey.map_or_else(|| self.guest.node.authkey(), AuthKey::new)
    }

    fn child(&self, process: &Resource<Process>) -> wasmtime::Result<Process> {
        Ok(self.table.get(process)?.clone())
    }

    fn hold_connection(&mut self, connection: Connection) -> wasmtime::Result<Resource<Connection>> {
        self.hold(Held::Connections, OBJECT_COST, connection)
    }

    fn hold_queue(&mut self, queue: Queue) -> wasmtime::Result<Resource<Queue>> {
        self.hold(Held::Queues, OBJECT_COST, queue)
    }

    /// A message this guest sends or puts, charged to it until taken.
    fn charged(&self, what: Held, message: Vec<u8>) -> wasmtime::Result<Charged<Vec<u8>>> {
        let charge = self.guest.charge(what, message.len() + MESSAGE_COST)?;
        Ok(Charged::new(message, charge))
    }

    /// Counts `bytes` as sent by this guest if the send or put went through.
    fn count_sent<T>(&self, bytes: usize, result: Result<T, ConnectionError>) -> ConnResult<T> {
        if result.is_ok() {
            self.guest.node.meter.sent(bytes);
        }
        conn_result(result)
    }

    /// Counts the bytes of what this guest received or took.
    fn count_received<T>(&self, bytes: impl Fn(&T) -> usize, result: Result<T, ConnectionError>) -> ConnResult<T> {
        if let Ok(received) = &result {
            self.guest.node.meter.received(bytes(received));
        }
        conn_result(result)
    }
}

impl wit::Host for ComponentState {
    async fn pipe(&mut self, duplex: bool) -> wasmtime::Result<(Resource<Connection>, Resource<Connection>)> {
        let (a, b) = crate::ipc::connection::pipe(self.guest.host.handle(), duplex, crate::ipc::connection::PIPE_CAPACITY);
        Ok((self.hold_connection(a)?, self.hold_connection(b)?))
    }

    async fn listen(&mut self, address: String, authkey: Option<Vec<u8>>) -> ConnResult<Resource<Listener>> {
        let authkey = self.key_or_own(authkey);
        match self.guest.addresses().listen(self.guest.host.handle(), &address, authkey) {
            Ok(listener) => Ok(Ok(self.hold(Held::Listeners, OBJECT_COST + address.len(), listener)?)),
            Err(err) => conn_result(Err(err)),
        }
    }

    async fn connect(&mut self, address: String, authkey: Option<Vec<u8>>) -> ConnResult<Resource<Connection>> {
        let authkey = self.key_or_own(authkey);
        let guest = &self.guest;
        match guest.addresses().connect(guest.host.handle(), &address, &authkey).await {
            Ok(connection) => Ok(Ok(self.hold_connection(connection)?)),
            Err(err) => conn_result(Err(err)),
        }
    }

    async fn pass_connection(
        &mut self,
        child: Resource<Process>,
        end: Resource<Connection>,
    ) -> WitResult<()> {
        let child = self.child(&child)?;
        let end = self.release(end)?;
        Ok(child.pass_connection(end).map_err(wit_error))
    }

    async fn pass_queue(&mut self, child: Resource<Process>, queue: Resource<Queue>) -> WitResult<()> {
        let child = self.child(&child)?;
        Ok(child.pass_queue(self.table.get(&queue)?).map_err(wit_error))
    }

    async fn inherited_connections(&mut self) -> wasmtime::Result<Vec<Resource<Connection>>> {
        let connections = std::mem::take(&mut self.inherited.connections);
        connections.into_iter().map(|c| self.hold_connection(c)).collect()
    }

    async fn inherited_queues(&mut self) -> wasmtime::Result<Vec<Resource<Queue>>> {
        let queues = std::mem::take(&mut self.inherited.queues);
        queues.into_iter().map(|q| self.hold_queue(q)).collect()
    }

    async fn wait(
        &mut self,
        sentinels: Vec<Resource<Sentinel>>,
        connections: Vec<Resource<Connection>>,
        timeout: Option<u64>,
    ) -> wasmtime::Result<Vec<u32>> {
        let mut items: Vec<Waitable<'_>> = Vec::with_capacity(sentinels.len() + connections.len());
        for sentinel in &sentinels {
            items.push(Waitable::Sentinel(self.table.get(sentinel)?));
        }
        for connection in &connections {
            items.push(Waitable::Connection(self.table.get(connection)?));
        }
        let ready = wait_ready(self.guest.host.handle(), &items, nanos(timeout)).await;
        Ok(ready.into_iter().map(|i| i as u32).collect())
    }
}

impl wit::HostConnection for ComponentState {
    async fn send_bytes(&mut self, connection: Resource<Connection>, message: Vec<u8>) -> ConnResult<()> {
        let bytes = message.len();
        let message = self.charged(Held::PipeMessages, message)?;
        let sent = self.table.get(&connection)?.send_charged_async(vec![message]).await;
        self.count_sent(bytes, sent)
    }

    async fn send_frames(&mut self, connection: Resource<Connection>, frames: Vec<u8>) -> ConnResult<()> {
        let messages = unframe(&frames)?
            .into_iter()
            .map(|message| self.charged(Held::PipeMessages, message))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        let bytes = messages.iter().map(|message| message.value.len()).sum();
        let sent = self.table.get(&connection)?.send_charged_async(messages).await;
        self.count_sent(bytes, sent)
    }

    async fn unread(&mut self, connection: Resource<Connection>, frames: Vec<u8>) -> ConnResult<()> {
        let messages = unframe(&frames)?
            .into_iter()
            .map(|message| self.charged(Held::PipeMessages, message))
            .collect::<wasmtime::Result<Vec<_>>>()?;
        conn_result(self.table.get(&connection)?.unread_charged(messages))
    }

    async fn recv_bytes(&mut self, connection: Resource<Connection>) -> ConnResult<Vec<u8>> {
        let received = self.table.get(&connection)?.recv_bytes_async().await;
        self.count_received(Vec::len, received)
    }

    async fn recv_frames(&mut self, connection: Resource<Connection>, max_bytes: u32) -> ConnResult<Vec<u8>> {
        let received = self.table.get(&connection)?.recv_many_async(max_bytes as usize).await;
        let bytes = |messages: &Vec<Vec<u8>>| messages.iter().map(Vec::len).sum();
        self.count_received(bytes, received).map(|result| result.map(|messages| wmp_core::frames::encode(&messages)))
    }

    async fn poll(&mut self, connection: Resource<Connection>, timeout: Option<u64>) -> ConnResult<bool> {
        conn_result(self.table.get(&connection)?.poll_async(nanos(timeout)).await)
    }

    async fn readable(&mut self, connection: Resource<Connection>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&connection)?.readable())
    }

    async fn writable(&mut self, connection: Resource<Connection>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&connection)?.writable())
    }

    async fn close(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.get(&connection)?.close();
        Ok(())
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.release(connection)?;
        Ok(())
    }
}

impl wit::HostQueue for ComponentState {
    async fn new(&mut self, maxsize: u32) -> wasmtime::Result<Resource<Queue>> {
        let queue = Queue::new(self.guest.host.handle(), maxsize as usize);
        self.hold_queue(queue)
    }

    async fn put(&mut self, queue: Resource<Queue>, message: Vec<u8>, timeout: Option<u64>) -> ConnResult<()> {
        let bytes = message.len();
        let message = self.charged(Held::QueueMessages, message)?;
        let put = self.table.get(&queue)?.put_charged_async(message, nanos(timeout)).await;
        self.count_sent(bytes, put)
    }

    async fn get(&mut self, queue: Resource<Queue>, timeout: Option<u64>) -> ConnResult<Vec<u8>> {
        let taken = self.table.get(&queue)?.get_bytes_async(nanos(timeout)).await;
        self.count_received(Vec::len, taken)
    }

    async fn empty(&mut self, queue: Resource<Queue>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&queue)?.qsize_async().await == 0)
    }

    async fn qsize(&mut self, queue: Resource<Queue>) -> wasmtime::Result<u32> {
        Ok(u32::try_from(self.table.get(&queue)?.qsize_async().await).unwrap_or(u32::MAX))
    }

    async fn close(&mut self, queue: Resource<Queue>) -> wasmtime::Result<()> {
        self.table.get(&queue)?.close();
        Ok(())
    }

    async fn drop(&mut self, queue: Resource<Queue>) -> wasmtime::Result<()> {
        self.release(queue)?;
        Ok(())
    }
}

impl wit::HostListener for ComponentState {
    async fn accept(&mut self, listener: Resource<Listener>) -> ConnResult<Resource<Connection>> {
        match self.table.get(&listener)?.accept_async().await {
            Ok(connection) => Ok(Ok(self.hold_connection(connection)?)),
            Err(err) => conn_result(Err(err)),
        }
    }

    async fn address(&mut self, listener: Resource<Listener>) -> wasmtime::Result<String> {
        Ok(self.table.get(&listener)?.address().to_owned())
    }

    async fn close(&mut self, listener: Resource<Listener>) -> wasmtime::Result<()> {
        self.table.get(&listener)?.close();
        Ok(())
    }

    async fn drop(&mut self, listener: Resource<Listener>) -> wasmtime::Result<()> {
        self.release(listener)?;
        Ok(())
    }
}
