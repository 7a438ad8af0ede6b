//! Listeners and clients (`multiprocessing.connection.Listener/Client`)
//! between processes that were not created together: a listener holds a
//! name in the runtime (no real socket); a client that connects to it gets
//! one end of a fresh pipe, the listener's `accept` the other, and both run
//! CPython's HMAC challenge/response over it before any data passes
//! (`deliver_challenge`/`answer_challenge`, HMAC-SHA256 keyed by the
//! authkey, in both directions). A wrong key fails both sides with an
//! authentication error and the pipe is dropped.

use std::collections::{HashMap, VecDeque};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Notify;
use wmp_core::{AuthKey, ConnectionError};

use crate::ipc::connection::{Connection, PIPE_CAPACITY, pipe};

const CHALLENGE: &[u8] = b"#CHALLENGE#";
const WELCOME: &[u8] = b"#WELCOME#";
const FAILURE: &[u8] = b"#FAILURE#";
/// The digest every challenge names; the MAC covers this prefix too, so
/// it cannot be downgraded.
const DIGEST_PREFIX: &[u8] = b"{sha256}";
/// Random bytes in a challenge (CPython's `MESSAGE_LENGTH`).
const NONCE_LENGTH: usize = 40;
/// Shortest challenge CPython accepts (`_MD5ONLY_MESSAGE_LENGTH`).
const MIN_CHALLENGE_LENGTH: usize = 20;
/// Longest handshake message either side reads (`recv_bytes(256)`).
const MAX_HANDSHAKE_MESSAGE: usize = 256;

/// The runtime's listening addresses.
#[derive(Default)]
pub(crate) struct Addresses(Mutex<HashMap<String, Arc<Backlog>>>);

/// Connections waiting for `accept`.
#[derive(Default)]
struct Backlog {
    pending: Mutex<VecDeque<Connection>>,
    arrived: Notify,
}

/// A listening address (`multiprocessing.connection.Listener`); dropping
/// or closing it frees the address and refuses clients still waiting.
pub struct Listener {
    address: String,
    authkey: AuthKey,
    backlog: Arc<Backlog>,
    addresses: Arc<Addresses>,
    closed: AtomicBool,
    handle: tokio::runtime::Handle,
}

impl Addresses {
    pub(crate) fn listen(
        self: &Arc<Self>,
        handle: &tokio::runtime::Handle,
        address: &str,
        authkey: AuthKey,
    ) -> Result<Listener, ConnectionError> {
        let mut map = self.0.lock().unwrap();
        if map.contains_key(address) {
            return Err(ConnectionError::AddressInUse(address.to_owned()));
        }
        let backlog = Arc::new(Backlog::default());
        map.insert(address.to_owned(), backlog.clone());
        Ok(Listener {
            address: address.to_owned(),
            authkey,
            backlog,
            addresses: self.clone(),
            closed: AtomicBool::new(false),
            handle: handle.clone(),
        })
    }

    /// Connects to the listener at `address` and authenticates with
    /// `authkey` (`multiprocessing.connection.Client`): answers the
    /// listener's challenge, then challenges it. Waits until the listener
    /// accepts.
    pub(crate) async fn connect(
        &self,
        handle: &tokio::runtime::Handle,
        address: &str,
        authkey: &AuthKey,
    ) -> Result<Connection, ConnectionError> {
        let backlog = self.0.lock().unwrap().get(address).cloned();
        let backlog = backlog.ok_or_else(|| ConnectionError::Refused(address.to_owned()))?;
        let (mine, theirs) = pipe(handle, true, PIPE_CAPACITY);
        backlog.pending.lock().unwrap().push_back(theirs);
        backlog.arrived.notify_waiters();
        authenticate_as_client(&mut &mine, authkey).await?;
        Ok(mine)
    }
}

impl Listener {
    /// The name clients connect to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Waits for a client and authenticates it (challenges it, then
    /// answers its challenge); an authentication error drops the
    /// connection.
    pub fn accept(&self) -> Result<Connection, ConnectionError> {
        crate::base::run_slot::block_on(&self.handle, self.accept_async())
    }

    pub async fn accept_async(&self) -> Result<Connection, ConnectionError> {
        let connection = loop {
            let mut arrived = pin!(self.backlog.arrived.notified());
            arrived.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return Err(ConnectionError::Closed);
            }
            let next = self.backlog.pending.lock().unwrap().pop_front();
            if let Some(connection) = next {
                break connection;
            }
            arrived.await;
        };
        authenticate_as_server(&mut &connection, &self.authkey).await?;
        Ok(connection)
    }

    /// Frees the address; clients waiting to be accepted see EOF.
    /// Closing twice is fine.
    pub fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut map = self.addresses.0.lock().unwrap();
        if map.get(&self.address).is_some_and(|b| Arc::ptr_eq(b, &self.backlog)) {
            map.remove(&self.address);
        }
        drop(map);
        self.backlog.pending.lock().unwrap().clear();
        self.backlog.arrived.notify_waiters();
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close();
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("address", &self.address).finish()
    }
}

fn authentication(message: impl Into<String>) -> ConnectionError {
    ConnectionError::Authentication(message.into())
}

/// Where the authkey challenge runs: a connection, or a link between
/// machines. Each message is one whole message of the other side's.
pub(crate) trait HandshakeChannel {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), ConnectionError>;
    async fn recv(&mut self) -> Result<Vec<u8>, ConnectionError>;
}

impl HandshakeChannel for &Connection {
    async fn send(&mut self, message: Vec<u8>) -> Result<(), ConnectionError> {
        self.send_bytes_async(message).await
    }

    async fn recv(&mut self) -> Result<Vec<u8>, ConnectionError> {
        self.recv_bytes_async().await
    }
}

/// The listener's side (CPython's `Listener.accept`): challenges the
/// client, then answers the client's challenge.
pub(crate) async fn authenticate_as_server(
    channel: &mut impl HandshakeChannel,
    authkey: &AuthKey,
) -> Result<(), ConnectionError> {
    deliver_challenge(channel, authkey).await?;
    answer_challenge(channel, authkey).await
}

/// The client's side (CPython's `Client`): answers the listener's
/// challenge, then challenges it.
pub(crate) async fn authenticate_as_client(
    channel: &mut impl HandshakeChannel,
    authkey: &AuthKey,
) -> Result<(), ConnectionError> {
    answer_challenge(channel, authkey).await?;
    deliver_challenge(channel, authkey).await
}

async fn recv_handshake(channel: &mut impl HandshakeChannel) -> Result<Vec<u8>, ConnectionError> {
    let message = channel.recv().await?;
    if message.len() > MAX_HANDSHAKE_MESSAGE {
        return Err(authentication(format!("bad message length: {}", message.len())));
    }
    Ok(message)
}

fn mac(authkey: &AuthKey, message: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(authkey.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(message);
    mac
}

/// CPython's `deliver_challenge`: sends a random challenge, checks the
/// answer in constant time, and says welcome or failure.
async fn deliver_challenge(channel: &mut impl HandshakeChannel, authkey: &AuthKey) -> Result<(), ConnectionError> {
    let mut nonce = [0u8; NONCE_LENGTH];
    getrandom::fill(&mut nonce).map_err(|e| authentication(format!("no randomness for the challenge: {e}")))?;
    let message = [DIGEST_PREFIX, &nonce].concat();
    channel.send([CHALLENGE, &message].concat()).await?;
    let response = recv_handshake(channel).await?;
    match verify(authkey, &message, &response) {
        Ok(()) => channel.send(WELCOME.to_vec()).await,
        Err(err) => {
            // The client may already be gone; the failure is ours to report.
            let _ = channel.send(FAILURE.to_vec()).await;
            Err(err)
        }
    }
}

/// CPython's `_verify_challenge`, for the one digest wmp speaks.
fn verify(authkey: &AuthKey, message: &[u8], response: &[u8]) -> Result<(), ConnectionError> {
    let Some(response_mac) = response.strip_prefix(DIGEST_PREFIX) else {
        return Err(authentication(format!(
            "unsupported message length, missing digest prefix, or unsupported digest: message={}",
            String::from_utf8_lossy(response)
        )));
    };
    let expected_len = <Sha256 as sha2::Digest>::output_size();
    if response_mac.len() != expected_len {
        return Err(authentication(format!("expected 'sha256' of length {expected_len} got {}", response_mac.len())));
    }
    mac(authkey, message).verify_slice(response_mac).map_err(|_| authentication("digest received was wrong"))
}

/// CPython's `answer_challenge`: answers the challenge with the MAC of the
/// whole challenge message and expects the welcome.
async fn answer_challenge(channel: &mut impl HandshakeChannel, authkey: &AuthKey) -> Result<(), ConnectionError> {
    let message = recv_handshake(channel).await?;
    let Some(challenge) = message.strip_prefix(CHALLENGE) else {
        return Err(authentication("Protocol error, expected challenge"));
    };
    if challenge.len() < MIN_CHALLENGE_LENGTH {
        return Err(authentication(format!("challenge too short: {} bytes", challenge.len())));
    }
    if !challenge.starts_with(DIGEST_PREFIX) {
        return Err(authentication("unsupported digest in the challenge (wmp speaks sha256)"));
    }
    let response = [DIGEST_PREFIX, &mac(authkey, challenge).finalize().into_bytes()].concat();
    channel.send(response).await?;
    if recv_handshake(channel).await? != WELCOME {
        return Err(authentication("digest sent was rejected"));
    }
    Ok(())
}
