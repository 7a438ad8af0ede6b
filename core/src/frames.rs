//! The `-frames` encoding of wit/connection.wit, which moves many messages
//! in one call: each message is its length as a little-endian u32, then its
//! bytes. The host and every guest SDK encode and decode it here.

/// A byte string that is not a whole number of frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("truncated frame header: {0} bytes left")]
    TruncatedHeader(usize),
    #[error("frame of {len} bytes with {left} left")]
    TruncatedMessage { len: usize, left: usize },
}

/// Frames `messages`, in order. A message must be shorter than 4 GiB, as
/// any that a wasm32 guest can hold is.
pub fn encode<M: AsRef<[u8]>>(messages: &[M]) -> Vec<u8> {
    let mut frames = Vec::with_capacity(messages.iter().map(|m| m.as_ref().len() + 4).sum());
    for message in messages {
        let message = message.as_ref();
        let len = u32::try_from(message.len()).expect("a framed message is shorter than 4 GiB");
        frames.extend_from_slice(&len.to_le_bytes());
        frames.extend_from_slice(message);
    }
    frames
}

/// The messages in `frames`, in order.
pub fn decode(frames: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut messages = Vec::new();
    let mut rest = frames;
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>().ok_or(FrameError::TruncatedHeader(rest.len()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(FrameError::TruncatedMessage { len, left: tail.len() });
        }
        let (message, tail) = tail.split_at(len);
        messages.push(message.to_vec());
        rest = tail;
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_back_whole_and_in_order() {
        let messages: [&[u8]; 3] = [b"one", b"", b"three"];
        let frames = encode(&messages);
        assert_eq!(frames.len(), 3 * 4 + 8);
        assert_eq!(&frames[..4], &3u32.to_le_bytes());
        assert_eq!(decode(&frames).unwrap(), messages.map(<[u8]>::to_vec));
        assert_eq!(decode(&[]).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn a_truncated_byte_string_is_refused() {
        let frames = encode(&[b"hello"]);
        assert_eq!(decode(&frames[..2]), Err(FrameError::TruncatedHeader(2)));
        assert_eq!(decode(&frames[..7]), Err(FrameError::TruncatedMessage { len: 5, left: 3 }));
    }
}
