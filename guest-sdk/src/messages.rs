//! Values over connections and queues, as both platforms send them: serde
//! values encoded as JSON on top of the byte messages.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wmp_core::ConnectionError;

use crate::{Connection, Queue};

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, ConnectionError> {
    serde_json::to_vec(value).map_err(|e| ConnectionError::Encode(e.to_string()))
}

fn decode<T: DeserializeOwned>(message: &[u8]) -> Result<T, ConnectionError> {
    serde_json::from_slice(message).map_err(|e| ConnectionError::Decode(e.to_string()))
}

impl Connection {
    /// Sends a value (`Connection.send`).
    pub fn send<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), ConnectionError> {
        self.send_bytes(&encode(value)?)
    }

    /// Receives a value sent with [`send`](Connection::send).
    pub fn recv<T: DeserializeOwned>(&self) -> Result<T, ConnectionError> {
        decode(&self.recv_bytes()?)
    }
}

impl Queue {
    /// Puts a value, waiting up to `timeout` for room.
    pub fn put<T: Serialize + ?Sized>(&self, value: &T, timeout: Option<Duration>) -> Result<(), ConnectionError> {
        self.put_bytes(&encode(value)?, timeout)
    }

    /// Takes a value put with [`put`](Queue::put), waiting up to `timeout`.
    pub fn get<T: DeserializeOwned>(&self, timeout: Option<Duration>) -> Result<T, ConnectionError> {
        decode(&self.get_bytes(timeout)?)
    }
}
