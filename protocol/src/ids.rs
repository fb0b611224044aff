//! Identifiers: nodes, jobs and content-addressed blobs are all 32-byte values.

use serde::{Deserialize, Serialize};
use std::fmt;

struct Bytes32Visitor;

impl<'de> serde::de::Visitor<'de> for Bytes32Visitor {
    type Value = [u8; 32];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("32 bytes")
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<[u8; 32], E> {
        v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
        }
        Ok(out)
    }
}

macro_rules! id32 {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        // Encoded as a byte string rather than a 32-tuple: one copy to decode, not 32 calls.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_bytes(Bytes32Visitor).map($name)
            }
        }

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
id32!(
    /// What determines a task's result (see [`crate::reuse`]): equal keys, equal results.
    ReuseKey
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
    fn ids_encode_as_33_bytes_and_refuse_other_lengths() {
        let h = BlobHash::of(b"x");
        let bytes = crate::codec::encode_message(&h);
        assert_eq!(bytes.len(), 33);
        assert_eq!(crate::codec::decode_message::<BlobHash>(&bytes), Ok(h));
        let short = crate::codec::encode_message(&vec![1u8; 31]);
        assert!(crate::codec::decode_message::<BlobHash>(&short).is_err());
    }

    #[test]
    fn hex_round_trips() {
        let h = BlobHash::of(b"hello");
        assert_eq!(BlobHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(BlobHash::from_hex("zz"), None);
    }
}

/// A hasher for maps keyed by ids (or ids with a small index): the ids are already uniformly
/// distributed hashes, so folding their bytes is enough and much cheaper than SipHash. Only for
/// keys derived from ids; never for keys a peer can choose freely in bulk.
#[derive(Debug, Clone, Copy, Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, _: usize) {
        // Array and slice lengths: the same for every id.
    }
}

/// Builds [`IdHasher`]s.
pub type BuildIdHasher = std::hash::BuildHasherDefault<IdHasher>;
/// A map keyed by ids.
pub type IdMap<K, V> = std::collections::HashMap<K, V, BuildIdHasher>;
/// A set of ids.
pub type IdSet<K> = std::collections::HashSet<K, BuildIdHasher>;
/// A [`crate::bounded::BoundedMap`] keyed by ids, with [`IdHasher`].
pub type BoundedIdMap<K, V> = crate::bounded::BoundedMap<K, V, BuildIdHasher>;
