//! The one place that turns values into bytes and back: bincode 2 (standard config) with a
//! decode size limit, so that a hostile length prefix cannot make us allocate unbounded memory.

use serde::{Deserialize, Serialize};

/// Largest control message accepted from the network (gossip).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Largest blob (input chunk, partial result, manifest) decoded by the protocol.
pub const MAX_BLOB_BYTES: usize = 256 << 20;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the encoded value")]
    Trailing(usize),
}

fn encode_limited<T: Serialize, const LIMIT: usize>(value: &T) -> Vec<u8> {
    let config = bincode::config::standard().with_limit::<LIMIT>();
    // Encoding into a Vec cannot fail for our types except by exceeding the limit, which the
    // callers prevent by bounding what they put in (batches are split before they grow past it).
    bincode::serde::encode_to_vec(value, config).expect("value within the encode limit")
}

/// Decodes `T`, which may borrow strings and byte slices from `bytes` instead of copying them.
fn decode_limited<'a, T: Deserialize<'a>, const LIMIT: usize>(
    bytes: &'a [u8],
) -> Result<T, CodecError> {
    if bytes.len() > LIMIT {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit: LIMIT,
        });
    }
    let config = bincode::config::standard().with_limit::<LIMIT>();
    let (value, read) = bincode::serde::borrow_decode_from_slice(bytes, config)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - read));
    }
    Ok(value)
}

/// Encodes a control message.
pub fn encode_message<T: Serialize>(value: &T) -> Vec<u8> {
    encode_limited::<T, MAX_MESSAGE_BYTES>(value)
}

/// Decodes a control message, refusing anything over [`MAX_MESSAGE_BYTES`].
pub fn decode_message<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    decode_limited::<T, MAX_MESSAGE_BYTES>(bytes)
}

/// Encodes a blob-sized value (partial results, manifests).
pub fn encode_blob<T: Serialize>(value: &T) -> Vec<u8> {
    encode_limited::<T, MAX_BLOB_BYTES>(value)
}

/// Decodes a blob-sized value, refusing anything over [`MAX_BLOB_BYTES`].
pub fn decode_blob<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, CodecError> {
    decode_limited::<T, MAX_BLOB_BYTES>(bytes)
}

/// Size of a value's encoding, for bounding batches before they are sent.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    let config = bincode::config::standard();
    let mut counter = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut counter, config)
        .expect("size counting never fails");
    counter.bytes_written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_trailing_and_truncated_bytes() {
        let mut bytes = encode_message(&(7u32, String::from("x")));
        bytes.push(0);
        assert_eq!(
            decode_message::<(u32, String)>(&bytes),
            Err(CodecError::Trailing(1))
        );
        assert!(decode_message::<(u32, String)>(&bytes[..1]).is_err());
    }

    #[test]
    fn decode_refuses_a_length_prefix_past_the_limit() {
        // A Vec<u8> claiming 2^40 elements must be refused without allocating.
        let bytes = encode_message(&(1u64 << 40));
        assert!(decode_message::<Vec<u8>>(&bytes).is_err());
    }
}

/// `#[serde(with = "crate::codec::bytes")]` for `Vec<u8>` fields: encoded as a byte string,
/// decoded with one copy instead of one call per byte.
pub mod bytes {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    struct Visitor;

    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("bytes")
        }

        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(Visitor)
    }
}

/// `#[serde(with = "crate::codec::shared_bytes")]` for `Arc<[u8]>` fields: encoded as a byte
/// string like [`bytes`], decoded into one shared allocation.
pub mod shared_bytes {
    use serde::{Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(v: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        super::bytes::deserialize(d).map(Arc::from)
    }
}
