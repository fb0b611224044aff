//! Direct streams: on a small mesh where this node is connected to every live peer, its
//! protocol messages go to each subscriber of their topic on a stream of their own instead of
//! through gossipsub.
//!
//! Gossipsub floods a node's own messages to every subscriber of the topic anyway; what the
//! direct path leaves out is the rest of the machinery a one-task job pays for on each hop
//! (measured in docs/BENCHMARKS.md): the author's seal (ed25519 signing; the connection already
//! proves who sent what comes down it, and nothing is forwarded), gossipsub's per-message queue
//! timer (a wake-up of a timer thread per message and peer), and the connection task's hand-off
//! before the bytes reach QUIC. One long-lived stream per peer carries the messages in order;
//! each is a frame: its length (u32, little-endian), its topic's name (u16 length, then the
//! name), then the protocol's bytes.
//!
//! What gossip does that this does not: forward. A peer this node is not connected to would
//! never hear a direct message, which is why the direct path is used only while every peer the
//! protocol knows to be live is connected (see [`use_direct`]); otherwise messages go by gossip
//! as before. A frame that cannot be queued (a slow peer's queue is full, its stream is gone)
//! is sent by gossip too: a peer may then get a message twice, which the protocol takes as it
//! takes gossip's re-sends.

use crate::handle::{Command, Handle};
use futures::channel::mpsc;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{PeerId, StreamProtocol};
use shoal_protocol::codec::MAX_MESSAGE_BYTES;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The direct stream's protocol name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/shoal/direct/1");

/// At most this many recipients: above it, gossip's mesh (each node sends to a few peers, who
/// forward) costs each node less than sending every message to every peer itself.
pub const RECIPIENTS_MAX: usize = 8;

/// Frames waiting for one peer's stream. A peer that falls this far behind gets the next
/// messages by gossip.
const QUEUE: usize = 1024;

/// The longest topic name a frame may carry (the protocol's are under 100 bytes).
const TOPIC_MAX: usize = 256;

/// The largest frame accepted: a protocol message and its topic.
const FRAME_MAX: usize = MAX_MESSAGE_BYTES + 2 + TOPIC_MAX;

/// Direct streams read at once from one peer (an honest one opens one, and another after its
/// connection changed): more are closed unread, so that no peer holds more than this many
/// frame buffers here.
const STREAMS_PER_PEER: usize = 2;

/// Whether a message on a topic with `recipients` subscribers goes on direct streams: there is
/// someone to send it to, few enough to send it to each, and no live peer that only gossip's
/// forwarding would reach (`all_live_connected`, asked only then: it walks the view).
pub fn use_direct(recipients: usize, all_live_connected: impl FnOnce() -> bool) -> bool {
    (1..=RECIPIENTS_MAX).contains(&recipients) && all_live_connected()
}

/// One frame: the topic's name and the protocol's bytes, length first.
pub fn frame(topic: &str, payload: &[u8]) -> Vec<u8> {
    let topic = &topic.as_bytes()[..topic.len().min(TOPIC_MAX)];
    let len = 2 + topic.len() + payload.len();
    let mut out = Vec::with_capacity(4 + len);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&(topic.len() as u16).to_le_bytes());
    out.extend_from_slice(topic);
    out.extend_from_slice(payload);
    out
}

/// Splits a frame's body (what follows its length) into its topic's name and the protocol's
/// bytes.
pub fn parse(body: &[u8]) -> Result<(&str, &[u8]), String> {
    let (len, rest) = body
        .split_first_chunk::<2>()
        .ok_or("a direct frame shorter than its topic's length")?;
    let len = u16::from_le_bytes(*len) as usize;
    if len > TOPIC_MAX || len > rest.len() {
        return Err(format!("a direct frame whose topic name is {len} bytes"));
    }
    let (topic, payload) = rest.split_at(len);
    let topic = std::str::from_utf8(topic).map_err(|_| "a direct frame's topic is not UTF-8")?;
    Ok((topic, payload))
}

/// The sending side: one queue and writer task per peer.
pub struct Direct {
    control: libp2p_stream::Control,
    queues: HashMap<PeerId, mpsc::Sender<Arc<Vec<u8>>>>,
}

impl Direct {
    pub fn new(control: libp2p_stream::Control) -> Direct {
        Direct {
            control,
            queues: HashMap::new(),
        }
    }

    /// Queues `frame` for each of `peers`; false if it could not be queued for one of them (the
    /// caller then publishes it by gossip).
    pub fn send(&mut self, peers: &[PeerId], frame: Vec<u8>) -> bool {
        let frame = Arc::new(frame);
        let mut all = true;
        for peer in peers {
            let queue = self.queues.entry(*peer).or_insert_with(|| {
                let (tx, rx) = mpsc::channel(QUEUE);
                tokio::spawn(write(self.control.clone(), *peer, rx));
                tx
            });
            if let Err(e) = queue.try_send(frame.clone()) {
                if e.is_disconnected() {
                    // The stream is gone: the next message opens another.
                    self.queues.remove(peer);
                }
                all = false;
            }
        }
        all
    }

    /// The peer is gone: its writer ends with its queue.
    pub fn forget(&mut self, peer: &PeerId) {
        self.queues.remove(peer);
    }
}

/// Opens a stream to `peer` and writes the frames queued for it, in order, until the queue or
/// the stream closes.
async fn write(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    mut frames: mpsc::Receiver<Arc<Vec<u8>>>,
) {
    let mut stream = match control.open_stream(peer, PROTOCOL).await {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(%peer, "cannot open a direct stream: {e}");
            return;
        }
    };
    while let Some(frame) = frames.next().await {
        if let Err(e) = stream.write_all(&frame).await {
            tracing::debug!(%peer, "direct stream closed: {e}");
            return;
        }
        // Write what queued meanwhile before flushing: one flush per burst.
        while let Ok(frame) = frames.try_recv() {
            if stream.write_all(&frame).await.is_err() {
                return;
            }
        }
        if stream.flush().await.is_err() {
            return;
        }
    }
    let _ = stream.close().await;
}

/// Accepts the direct streams peers open to this node and hands each frame to the driver.
pub fn accept(mut control: libp2p_stream::Control, handle: Handle) {
    let mut incoming = match control.accept(PROTOCOL) {
        Ok(incoming) => incoming,
        Err(e) => {
            tracing::warn!("direct streams are off: {e}");
            return;
        }
    };
    let open: Arc<Mutex<HashMap<PeerId, usize>>> = Arc::default();
    tokio::spawn(async move {
        while let Some((peer, stream)) = incoming.next().await {
            {
                let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                let count = open.entry(peer).or_default();
                if *count >= STREAMS_PER_PEER {
                    tracing::debug!(%peer, "refused another direct stream");
                    continue;
                }
                *count += 1;
            }
            let open = open.clone();
            let handle = handle.clone();
            tokio::spawn(async move {
                read(peer, stream, handle).await;
                let mut open = open.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(count) = open.get_mut(&peer) {
                    *count -= 1;
                    if *count == 0 {
                        open.remove(&peer);
                    }
                }
            });
        }
    });
}

/// Reads frames from one peer's stream until it closes or sends something that is not a
/// frame (reported, so that the peer is penalised like one that gossips garbage).
async fn read(peer: PeerId, mut stream: libp2p::Stream, handle: Handle) {
    let mut body = Vec::new();
    loop {
        let mut len = [0u8; 4];
        if stream.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_le_bytes(len) as usize;
        if len > FRAME_MAX {
            let error = format!("a direct frame of {len} bytes (at most {FRAME_MAX})");
            handle.tell(Command::DirectInvalid { peer, error }).await;
            return;
        }
        body.resize(len, 0);
        if stream.read_exact(&mut body).await.is_err() {
            return;
        }
        let (topic, payload) = match parse(&body) {
            Ok((topic, payload)) => (topic.to_string(), payload.to_vec()),
            Err(error) => {
                handle.tell(Command::DirectInvalid { peer, error }).await;
                return;
            }
        };
        handle
            .tell(Command::Direct {
                peer,
                topic,
                payload,
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse_back_to_their_topic_and_payload() {
        let framed = frame("shoal/jobs/4", b"payload");
        let len = u32::from_le_bytes(framed[..4].try_into().unwrap()) as usize;
        assert_eq!(len, framed.len() - 4);
        assert_eq!(
            parse(&framed[4..]).unwrap(),
            ("shoal/jobs/4", &b"payload"[..])
        );
        let empty = frame("t", b"");
        assert_eq!(parse(&empty[4..]).unwrap(), ("t", &b""[..]));
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert!(parse(b"").is_err());
        assert!(parse(&[1]).is_err());
        // A topic longer than the frame, or than any topic may be.
        assert!(parse(&[9, 0, b'a']).is_err());
        let mut long = ((TOPIC_MAX + 1) as u16).to_le_bytes().to_vec();
        long.extend(std::iter::repeat_n(b'a', TOPIC_MAX + 1));
        assert!(parse(&long).is_err());
        assert!(parse(&[2, 0, 0xff, 0xfe]).is_err());
    }

    #[test]
    fn direct_only_to_a_few_recipients_on_a_fully_connected_mesh() {
        assert!(use_direct(1, || true));
        assert!(use_direct(RECIPIENTS_MAX, || true));
        assert!(
            !use_direct(0, || true),
            "nobody to send to: gossip keeps it"
        );
        assert!(!use_direct(RECIPIENTS_MAX + 1, || true));
        assert!(
            !use_direct(2, || false),
            "a live peer only forwarding reaches"
        );
        // A large mesh is not walked for every message.
        assert!(!use_direct(RECIPIENTS_MAX + 1, || unreachable!()));
    }
}
