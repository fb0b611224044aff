//! The author's seal on a gossip message: an ed25519 signature by the author's peer key over
//! the topic and the payload, carried in front of the payload.
//!
//! Why not gossipsub's own signatures: gossipsub checks a message's signature in the
//! connection's decoder, before it knows the message is a duplicate, so a node of a mesh of
//! degree D checks each message about D times (four checks per message on a 3-node mesh, a
//! quarter of the nodes' CPU on the remote path of a one-task job). Gossipsub's duplicate
//! filter runs before the driver sees a message, so the seal is checked once per message and
//! node. Every node still checks every message before it acts on it or forwards it, so a
//! forwarder cannot forge another's message, and one whose seal fails is the fault of the peer
//! that passed it on (honest nodes forward only what they checked).
//!
//! One exception: a message its author sent straight to this node, on a topic where this node
//! has no other mesh peer to pass it to, is not checked. The connection authenticated the
//! author already (QUIC's TLS or Noise proved it holds the key of its peer id), and the driver
//! reports such a message `Ignore` to gossipsub, which then neither forwards it nor serves it
//! to a later request: nothing unchecked leaves the node. On a 2-node mesh no message is
//! checked at all; a message that travels further is checked by every node that passes it on.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use std::collections::HashMap;

/// Bytes of the seal in front of the payload.
pub const SEAL_LEN: usize = 64;
/// Separates the seal's signatures from any other use of the peer key.
const DOMAIN: &[u8] = b"shoal-seal/1";
/// Authors whose decoded public keys are kept (decoding one is a point decompression).
const KEYS_CACHED: usize = 4096;

/// Why a sealed message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    TooShort(usize),
    /// The author's peer id does not carry its public key (not an ed25519 identity).
    NoKey,
    BadSignature,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "a message of {n} bytes, shorter than its seal"),
            Self::NoKey => f.write_str("an author whose peer id carries no public key"),
            Self::BadSignature => f.write_str("a seal that is not its author's signature"),
        }
    }
}

/// The bytes signed: the domain, the topic (length-prefixed, so that no topic and payload
/// pair reads as another), and the payload.
fn signed_bytes(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(DOMAIN.len() + 2 + topic.len() + payload.len());
    bytes.extend_from_slice(DOMAIN);
    bytes.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    bytes.extend_from_slice(topic.as_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// `payload` with the author's seal in front, for `topic`.
pub fn seal(key: &Keypair, topic: &str, payload: &[u8]) -> Vec<u8> {
    let signature = key
        .sign(&signed_bytes(topic, payload))
        .expect("ed25519 signing does not fail");
    debug_assert_eq!(signature.len(), SEAL_LEN);
    let mut out = Vec::with_capacity(SEAL_LEN + payload.len());
    out.extend_from_slice(&signature);
    out.extend_from_slice(payload);
    out
}

/// The payload of `data` without checking its seal: for a message the connection
/// authenticated and that goes no further (see the module docs).
pub fn unchecked(data: &[u8]) -> Result<&[u8], SealError> {
    data.get(SEAL_LEN..).ok_or(SealError::TooShort(data.len()))
}

/// Checks seals, keeping the public keys of recent authors.
#[derive(Default)]
pub struct SealChecker {
    keys: HashMap<PeerId, PublicKey>,
}

impl SealChecker {
    /// The payload of `data` if its seal is `author`'s signature for `topic`.
    pub fn open<'a>(
        &mut self,
        data: &'a [u8],
        topic: &str,
        author: &PeerId,
    ) -> Result<&'a [u8], SealError> {
        if data.len() < SEAL_LEN {
            return Err(SealError::TooShort(data.len()));
        }
        let (signature, payload) = data.split_at(SEAL_LEN);
        let key = self.key_of(author)?;
        if key.verify(&signed_bytes(topic, payload), signature) {
            Ok(payload)
        } else {
            Err(SealError::BadSignature)
        }
    }

    fn key_of(&mut self, author: &PeerId) -> Result<&PublicKey, SealError> {
        if !self.keys.contains_key(author) {
            // An ed25519 peer id is the identity multihash of its protobuf-encoded key.
            let hash: &libp2p::multihash::Multihash<64> = author.as_ref();
            if hash.code() != 0 {
                return Err(SealError::NoKey);
            }
            let key =
                PublicKey::try_decode_protobuf(hash.digest()).map_err(|_| SealError::NoKey)?;
            if key.to_peer_id() != *author {
                return Err(SealError::NoKey);
            }
            if self.keys.len() >= KEYS_CACHED {
                self.keys.clear();
            }
            self.keys.insert(*author, key);
        }
        Ok(&self.keys[author])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_message_opens_for_its_author_and_topic_only() {
        let author = Keypair::generate_ed25519();
        let id = author.public().to_peer_id();
        let sealed = seal(&author, "shoal/jobs/3", b"payload");
        let mut checker = SealChecker::default();
        assert_eq!(
            checker.open(&sealed, "shoal/jobs/3", &id),
            Ok(&b"payload"[..])
        );
        // Another topic, another author, a changed payload, a changed seal: refused.
        assert_eq!(
            checker.open(&sealed, "shoal/jobs/2", &id),
            Err(SealError::BadSignature)
        );
        let other = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(
            checker.open(&sealed, "shoal/jobs/3", &other),
            Err(SealError::BadSignature)
        );
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(
            checker.open(&changed, "shoal/jobs/3", &id),
            Err(SealError::BadSignature)
        );
        let mut forged = sealed.clone();
        forged[3] ^= 0x40;
        assert_eq!(
            checker.open(&forged, "shoal/jobs/3", &id),
            Err(SealError::BadSignature)
        );
    }

    #[test]
    fn short_messages_and_authors_without_a_key_are_refused_without_a_panic() {
        let mut checker = SealChecker::default();
        let id = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(
            checker.open(&[0u8; 10], "t", &id),
            Err(SealError::TooShort(10))
        );
        assert_eq!(unchecked(&[0u8; 10]), Err(SealError::TooShort(10)));
        assert_eq!(unchecked(&[1u8; 66]), Ok(&[1u8, 1][..]));
        // A peer id whose bytes encode no public key.
        let hashed = PeerId::random();
        assert_eq!(
            checker.open(&[0u8; 80], "t", &hashed),
            Err(SealError::NoKey)
        );
    }

    #[test]
    fn the_payload_moves_topic_bytes_never_into_the_topic() {
        // ("ab", "c") and ("a", "bc") sign different bytes.
        assert_ne!(signed_bytes("ab", b"c"), signed_bytes("a", b"bc"));
    }
}
