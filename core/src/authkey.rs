//! The authentication key of a process: CPython's `AuthenticationString`.

use std::fmt;

/// Length of the key made for a main process.
pub const AUTHKEY_LEN: usize = 32;

/// A process's authentication key.
///
/// Like CPython's `AuthenticationString`, it guards itself against leaking:
/// `Debug` and `Display` print `AuthKey(<redacted>)`, equality runs in time
/// independent of where the keys differ, and serializing it with serde fails
/// with the security reason, so it cannot slip into a message or a log by
/// accident. Read the bytes explicitly with [`AuthKey::as_bytes`].
#[derive(Clone)]
pub struct AuthKey(Box<[u8]>);

impl AuthKey {
    /// The message serde gets when asked to serialize a key.
    pub const SERIALIZE_REFUSED: &'static str =
        "Pickling an AuthenticationString object is disallowed for security reasons";

    pub fn new(bytes: impl Into<Box<[u8]>>) -> Self {
        Self(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for AuthKey {
    /// Compares in constant time for keys of equal length.
    fn eq(&self, other: &Self) -> bool {
        if self.0.len() != other.0.len() {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(other.0.iter())
            .fold(0u8, |acc, (a, b)| acc | std::hint::black_box(a ^ b));
        diff == 0
    }
}

impl Eq for AuthKey {}

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

impl fmt::Display for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl serde::Serialize for AuthKey {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(Self::SERIALIZE_REFUSED))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact_the_bytes() {
        let key = AuthKey::new(*b"secret-bytes");
        assert_eq!(format!("{key:?}"), "AuthKey(<redacted>)");
        assert_eq!(key.to_string(), "AuthKey(<redacted>)");
        assert!(!format!("{key:?}{key}").contains("secret"));
    }

    #[test]
    fn equality_compares_content() {
        assert_eq!(AuthKey::new(*b"abc"), AuthKey::new(*b"abc"));
        assert_ne!(AuthKey::new(*b"abc"), AuthKey::new(*b"abd"));
        assert_ne!(AuthKey::new(*b"abc"), AuthKey::new(*b"abcd"));
    }

    #[test]
    fn serde_refuses_with_the_security_reason() {
        let err = serde_json::to_string(&AuthKey::new(*b"k")).unwrap_err();
        assert_eq!(err.to_string(), AuthKey::SERIALIZE_REFUSED);
        #[derive(serde::Serialize)]
        struct Carrier {
            key: AuthKey,
        }
        let err = serde_json::to_string(&Carrier { key: AuthKey::new(*b"k") }).unwrap_err();
        assert!(err.to_string().contains("disallowed for security reasons"));
    }
}
