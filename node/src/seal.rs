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
//! One exception: a message its author sent straight to this node, where every other mesh
//! peer of the topic had it straight from the author too, is not checked. The author names
//! the peers it sends to directly when they are few ([`ADDRESSED_MAX`], a small mesh: gossipsub
//! floods a node's own messages to every peer of the topic), under the seal; the connection
//! authenticated the author already (QUIC's TLS or Noise proved it holds the key of its peer
//! id). The driver reports such a message `Ignore` to gossipsub, which then neither forwards it
//! nor serves it to a later request: nothing unchecked leaves the node, and on a small full
//! mesh nothing is forwarded either (each member already has the author's copy). A message
//! that travels further is checked by every node that passes it on. The caveat: a peer the
//! author named but that did not get the author's copy (its queue was full) gets none from the
//! others either; the protocol's re-sends (announcements, completions) cover it.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey};
use std::collections::HashMap;

/// Bytes of the seal in front of the payload.
pub const SEAL_LEN: usize = 64;
/// Separates the seal's signatures from any other use of the peer key.
const DOMAIN: &[u8] = b"shoal-seal/1";
/// Authors whose decoded public keys are kept (decoding one is a point decompression).
const KEYS_CACHED: usize = 4096;
/// Most peers an author names as having its message straight from it.
pub const ADDRESSED_MAX: usize = 8;
/// Bytes that name one such peer (the start of the blake3 hash of its peer id).
const TAG_LEN: usize = 8;

/// Why a sealed message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    TooShort(usize),
    /// The list of peers the author sent the message to is cut short or too long.
    BadAddressees,
    /// The author's peer id does not carry its public key (not an ed25519 identity).
    NoKey,
    BadSignature,
}

impl std::fmt::Display for SealError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooShort(n) => write!(f, "a message of {n} bytes, shorter than its seal"),
            Self::BadAddressees => f.write_str("a malformed list of the author's addressees"),
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

fn tag(peer: &PeerId) -> [u8; TAG_LEN] {
    let hash = blake3::hash(&peer.to_bytes());
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&hash.as_bytes()[..TAG_LEN]);
    tag
}

/// `payload` for `topic` with the author's seal in front, naming the peers the author sends
/// it to directly (none if more than [`ADDRESSED_MAX`]: then they are not named).
pub fn seal(key: &Keypair, topic: &str, addressed: &[PeerId], payload: &[u8]) -> Vec<u8> {
    let addressed = if addressed.len() <= ADDRESSED_MAX {
        addressed
    } else {
        &[]
    };
    let mut out = Vec::with_capacity(SEAL_LEN + 1 + addressed.len() * TAG_LEN + payload.len());
    out.resize(SEAL_LEN, 0);
    out.push(addressed.len() as u8);
    for peer in addressed {
        out.extend_from_slice(&tag(peer));
    }
    out.extend_from_slice(payload);
    let signature = key
        .sign(&signed_bytes(topic, &out[SEAL_LEN..]))
        .expect("ed25519 signing does not fail");
    out[..SEAL_LEN].copy_from_slice(&signature);
    out
}

/// A message whose seal was checked, or need not be.
#[derive(Debug, PartialEq, Eq)]
pub struct Opened<'a> {
    pub payload: &'a [u8],
    addressed: &'a [u8],
}

impl Opened<'_> {
    /// Whether the author said it sent the message straight to `peer`.
    pub fn addressed_to(&self, peer: &PeerId) -> bool {
        let tag = tag(peer);
        self.addressed.chunks_exact(TAG_LEN).any(|t| t == tag)
    }
}

/// The sealed part of a message: the addressees, then the payload.
fn split(body: &[u8]) -> Result<Opened<'_>, SealError> {
    let (&n, rest) = body.split_first().ok_or(SealError::BadAddressees)?;
    let n = usize::from(n);
    if n > ADDRESSED_MAX || rest.len() < n * TAG_LEN {
        return Err(SealError::BadAddressees);
    }
    let (addressed, payload) = rest.split_at(n * TAG_LEN);
    Ok(Opened { payload, addressed })
}

/// `data` opened without checking its seal: for a message the connection authenticated and
/// that goes no further (see the module docs).
pub fn unchecked(data: &[u8]) -> Result<Opened<'_>, SealError> {
    split(
        data.get(SEAL_LEN..)
            .ok_or(SealError::TooShort(data.len()))?,
    )
}

/// Whether a received message need not have its seal checked: it came straight from its
/// `author` (`from`, the connection's authenticated peer, is the author), and the author named
/// each of this node's other `mesh_peers` of the topic as having it straight from it too, so
/// this node passes it to nobody (see the module docs).
pub fn goes_no_further<'a>(
    author: Option<&PeerId>,
    from: &PeerId,
    data: &[u8],
    mut mesh_peers: impl Iterator<Item = &'a PeerId>,
) -> bool {
    author == Some(from)
        && unchecked(data)
            .is_ok_and(|opened| mesh_peers.all(|peer| peer == from || opened.addressed_to(peer)))
}

/// Checks seals, keeping the public keys of recent authors.
#[derive(Default)]
pub struct SealChecker {
    keys: HashMap<PeerId, PublicKey>,
}

impl SealChecker {
    /// `data` opened, if its seal is `author`'s signature for `topic`.
    pub fn open<'a>(
        &mut self,
        data: &'a [u8],
        topic: &str,
        author: &PeerId,
    ) -> Result<Opened<'a>, SealError> {
        if data.len() < SEAL_LEN {
            return Err(SealError::TooShort(data.len()));
        }
        let (signature, body) = data.split_at(SEAL_LEN);
        let key = self.key_of(author)?;
        if key.verify(&signed_bytes(topic, body), signature) {
            split(body)
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
        let to = Keypair::generate_ed25519().public().to_peer_id();
        let sealed = seal(&author, "shoal/jobs/4", &[to], b"payload");
        let mut checker = SealChecker::default();
        let opened = checker.open(&sealed, "shoal/jobs/4", &id).unwrap();
        assert_eq!(opened.payload, b"payload");
        assert!(opened.addressed_to(&to) && !opened.addressed_to(&id));
        assert_eq!(unchecked(&sealed), Ok(opened));
        // Another topic, another author, a changed payload, a changed seal: refused.
        assert_eq!(
            checker.open(&sealed, "shoal/jobs/2", &id),
            Err(SealError::BadSignature)
        );
        let other = Keypair::generate_ed25519().public().to_peer_id();
        assert_eq!(
            checker.open(&sealed, "shoal/jobs/4", &other),
            Err(SealError::BadSignature)
        );
        let mut changed = sealed.clone();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(
            checker.open(&changed, "shoal/jobs/4", &id),
            Err(SealError::BadSignature)
        );
        let mut forged = sealed.clone();
        forged[3] ^= 0x40;
        assert_eq!(
            checker.open(&forged, "shoal/jobs/4", &id),
            Err(SealError::BadSignature)
        );
        // A forwarder that adds itself to the addressees breaks the seal.
        let mut readdressed = sealed.clone();
        readdressed[SEAL_LEN + 1] ^= 1;
        assert_eq!(
            checker.open(&readdressed, "shoal/jobs/4", &id),
            Err(SealError::BadSignature)
        );
    }

    #[test]
    fn too_many_addressees_are_not_named_and_a_bad_list_is_refused() {
        let author = Keypair::generate_ed25519();
        let many: Vec<PeerId> = (0..ADDRESSED_MAX + 1)
            .map(|_| Keypair::generate_ed25519().public().to_peer_id())
            .collect();
        let sealed = seal(&author, "t", &many, b"p");
        let opened = unchecked(&sealed).unwrap();
        assert!(many.iter().all(|p| !opened.addressed_to(p)));
        assert_eq!(opened.payload, b"p");
        let mut data = vec![0u8; SEAL_LEN];
        data.push(3);
        data.extend_from_slice(&[0u8; 10]);
        assert_eq!(unchecked(&data), Err(SealError::BadAddressees));
        data[SEAL_LEN] = (ADDRESSED_MAX + 1) as u8;
        data.extend_from_slice(&[0u8; 100]);
        assert_eq!(unchecked(&data), Err(SealError::BadAddressees));
        assert_eq!(unchecked(&[0u8; SEAL_LEN]), Err(SealError::BadAddressees));
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
        // A peer id whose bytes encode no public key.
        let hashed = PeerId::random();
        assert_eq!(
            checker.open(&[0u8; 80], "t", &hashed),
            Err(SealError::NoKey)
        );
    }

    #[test]
    fn only_a_direct_copy_every_other_mesh_peer_had_too_goes_unchecked() {
        let key = Keypair::generate_ed25519();
        let author = key.public().to_peer_id();
        let [b, c, d] = [0; 3].map(|_| Keypair::generate_ed25519().public().to_peer_id());
        let sealed = seal(&key, "t", &[b, c], b"p");
        // At b: straight from the author, and c (its other mesh peer) had it too.
        assert!(goes_no_further(
            Some(&author),
            &author,
            &sealed,
            [author, c].iter()
        ));
        assert!(goes_no_further(Some(&author), &author, &sealed, [].iter()));
        // A mesh peer the author did not name would need this node's copy.
        assert!(!goes_no_further(
            Some(&author),
            &author,
            &sealed,
            [c, d].iter()
        ));
        // Forwarded by c, or naming no author: checked.
        assert!(!goes_no_further(Some(&author), &c, &sealed, [].iter()));
        assert!(!goes_no_further(None, &author, &sealed, [].iter()));
        // Malformed: checked (and refused there).
        assert!(!goes_no_further(
            Some(&author),
            &author,
            &[0u8; 10],
            [].iter()
        ));
    }

    #[test]
    fn the_payload_moves_topic_bytes_never_into_the_topic() {
        // ("ab", "c") and ("a", "bc") sign different bytes.
        assert_ne!(signed_bytes("ab", b"c"), signed_bytes("a", b"bc"));
    }
}
