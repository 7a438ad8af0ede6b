//! Queues across an OS process boundary: a native child given a queue gets
//! a socket to a server task in its parent's runtime that holds a handle
//! to the queue and runs the child's requests on it. Each request is one
//! frame (see `remote_connection.rs`) holding an operation byte, a timeout (u64
//! nanoseconds, little-endian; `u64::MAX` for none) and the message; each
//! answer one frame holding a status byte and the message or size. The
//! server's handle closes when the socket ends (the child closed it or
//! died), so the queue counts the child's handle exactly while it lives.
//! One process's requests go one at a time. A message the child puts is
//! charged to it until a consumer takes it, as a guest's is, and the bytes
//! it puts and gets are counted in its metrics.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use wmp_core::ConnectionError;

use crate::ipc::remote_connection::{Payer, put_frame, read_frame, tokio_socket};
use crate::base::ledger::{Charged, Held};
use crate::ipc::queue::Queue;

const PUT: u8 = 0;
const GET: u8 = 1;
const QSIZE: u8 = 2;

const OK: u8 = 0;
const EMPTY: u8 = 1;
const FULL: u8 = 2;
const EOF: u8 = 3;
const CLOSED: u8 = 4;

/// The nanoseconds of a timeout, `u64::MAX` for none.
fn encode_timeout(timeout: Option<Duration>) -> u64 {
    timeout.map_or(u64::MAX, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX - 1))
}

fn decode_timeout(nanos: u64) -> Option<Duration> {
    (nanos != u64::MAX).then(|| Duration::from_nanos(nanos))
}

/// Serves `queue` to the process at the other end of `socket`, which pays
/// for its requests (the messages it puts) as `payer`.
pub(crate) fn serve(
    handle: &tokio::runtime::Handle,
    queue: Queue,
    socket: std::os::unix::net::UnixStream,
    payer: Payer,
) -> io::Result<()> {
    let (mut requests, mut answers) = tokio_socket(handle, socket)?.into_split();
    handle.spawn(async move {
        while let Ok(Some(request)) = read_frame(&mut requests, &payer, Held::QueueMessages).await {
            let answer = tokio::select! {
                answer = run(&queue, request, &payer) => answer,
                // The client sends nothing while it waits: anything read
                // here is its end (a message taken now would be lost).
                _ = requests.read_u8() => return,
            };
            let mut frame = Vec::new();
            put_frame(&mut frame, &answer);
            if answers.write_all(&frame).await.is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// The bytes before a request's message: its operation and its timeout.
const REQUEST_HEADER: usize = 1 + 8;

/// Runs one request of `payer`'s and makes its answer. The charge of a
/// put's request stays with its message until a consumer takes it; that of
/// any other request is given back at once (a get may wait long).
async fn run(queue: &Queue, request: Charged<Vec<u8>>, payer: &Payer) -> Vec<u8> {
    let Some((&op, rest)) = request.value.split_first() else { return vec![CLOSED] };
    let Some(&timeout) = rest.first_chunk::<8>() else { return vec![CLOSED] };
    let timeout = decode_timeout(u64::from_le_bytes(timeout));
    let result = match op {
        PUT => {
            // The message, taken out of its frame in place.
            let message = request.map(|mut frame| {
                frame.drain(..REQUEST_HEADER);
                frame
            });
            let bytes = message.value.len();
            queue.put_charged_async(message, timeout).await.map(|()| {
                payer.sent(bytes);
                Vec::new()
            })
        }
        GET => {
            drop(request);
            queue.get_bytes_async(timeout).await.inspect(|message| payer.received(message.len()))
        }
        QSIZE => {
            drop(request);
            Ok((queue.qsize_async().await as u64).to_le_bytes().to_vec())
        }
        _ => Err(ConnectionError::Closed),
    };
    match result {
        Ok(payload) => [&[OK][..], &payload].concat(),
        Err(ConnectionError::Empty) => vec![EMPTY],
        Err(ConnectionError::Full) => vec![FULL],
        Err(ConnectionError::Eof) => vec![EOF],
        Err(_) => vec![CLOSED],
    }
}

/// A queue handle whose queue is in another OS process.
pub(crate) struct RemoteQueue {
    socket: tokio::sync::Mutex<(OwnedReadHalf, OwnedWriteHalf)>,
}

impl RemoteQueue {
    pub(crate) fn new(handle: &tokio::runtime::Handle, socket: std::os::unix::net::UnixStream) -> io::Result<RemoteQueue> {
        Ok(RemoteQueue { socket: tokio::sync::Mutex::new(tokio_socket(handle, socket)?.into_split()) })
    }

    async fn request(&self, op: u8, timeout: Option<Duration>, message: &[u8]) -> Result<Vec<u8>, ConnectionError> {
        let mut socket = self.socket.lock().await;
        let (answers, requests) = &mut *socket;
        let mut frame = Vec::with_capacity(message.len() + 17);
        put_frame(&mut frame, &[&[op][..], &encode_timeout(timeout).to_le_bytes(), message].concat());
        // The server (its process, or its queue) is gone: nothing can come.
        let gone = |_| ConnectionError::Eof;
        requests.write_all(&frame).await.map_err(gone)?;
        let answer = read_frame(answers, &Payer::Parent, Held::QueueMessages).await.map_err(gone)?;
        match answer.ok_or(ConnectionError::Eof)?.into_value().split_first() {
            Some((&OK, payload)) => Ok(payload.to_vec()),
            Some((&EMPTY, _)) => Err(ConnectionError::Empty),
            Some((&FULL, _)) => Err(ConnectionError::Full),
            Some((&EOF, _)) => Err(ConnectionError::Eof),
            _ => Err(ConnectionError::Closed),
        }
    }

    pub(crate) async fn put(&self, message: &[u8], timeout: Option<Duration>) -> Result<(), ConnectionError> {
        self.request(PUT, timeout, message).await.map(drop)
    }

    pub(crate) async fn get(&self, timeout: Option<Duration>) -> Result<Vec<u8>, ConnectionError> {
        self.request(GET, timeout, &[]).await
    }

    /// Messages in the queue now; 0 if the queue cannot be reached.
    pub(crate) async fn qsize(&self) -> usize {
        let size = self.request(QSIZE, None, &[]).await.ok().and_then(|s| s.first_chunk::<8>().copied());
        size.map_or(0, |s| u64::from_le_bytes(s) as usize)
    }
}
