//! Identifiers: nodes, jobs and content-addressed blobs are all 32-byte values.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The first eight bytes as an integer: a cheap, well-mixed key for hashing.
            pub fn prefix64(&self) -> u64 {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.0[..8]);
                u64::from_le_bytes(b)
            }

            /// Full lowercase hex.
            pub fn to_hex(&self) -> String {
                let mut s = String::with_capacity(64);
                for b in self.0 {
                    s.push_str(&format!("{b:02x}"));
                }
                s
            }

            /// Parses the full 64-character hex form.
            pub fn from_hex(s: &str) -> Option<Self> {
                if s.len() != 64 || !s.is_ascii() {
                    return None;
                }
                let mut out = [0u8; 32];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
                }
                Some(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.to_hex()[..12])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex()[..16])
            }
        }
    };
}

id32!(
    /// A node's identity in the protocol. The node crate derives it from the libp2p peer id
    /// (blake3 of its bytes); the simulator derives it from an index.
    NodeId
);
id32!(
    /// blake3 of the canonical encoding of a [`crate::JobSpec`]: the same job has the same id.
    JobId
);
id32!(
    /// blake3 of a blob's bytes (an input chunk, a manifest, a partial result).
    BlobHash
);

impl BlobHash {
    /// Hashes bytes into their content address.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

impl NodeId {
    /// Derives a node id from arbitrary identity bytes (a libp2p peer id, a simulator index).
    pub fn from_identity_bytes(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }
}

/// Milliseconds on the caller's monotonic clock. The protocol never reads a clock itself.
pub type Millis = u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let h = BlobHash::of(b"hello");
        assert_eq!(BlobHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(BlobHash::from_hex("zz"), None);
    }
}
