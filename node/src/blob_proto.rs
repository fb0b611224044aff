//! The blob request/response protocol: ask a peer for a blob by hash, get its bytes back.
//!
//! Frames are a u32 length prefix and the bytes. Requests are exactly 32 bytes; responses are
//! bounded by [`MAX_BLOB_FRAME`]. The requester verifies the bytes against the hash it asked
//! for, so a peer can serve wrong bytes only at the cost of the request failing.

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use libp2p::request_response;
use shoal_protocol::BlobHash;
use std::io;
use std::sync::Arc;

/// Protocol name on the wire.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/shoal/blob/1");
/// Largest blob moved in one response (bigger inputs are chunked well below this).
pub const MAX_BLOB_FRAME: usize = 256 << 20;

/// Most of a frame's announced length reserved before its bytes arrive: enough that a chunk
/// arrives without the buffer being copied as it grows, little enough that a peer announcing
/// a huge frame and sending nothing costs little.
const FRAME_RESERVE: usize = 8 << 20;

/// A response: the blob (shared with the store that served it: no copy), or a statement that
/// this peer does not hold it.
#[derive(Debug, Clone)]
pub enum BlobResponse {
    Found(Arc<Vec<u8>>),
    Missing,
}

#[derive(Debug, Clone, Default)]
pub struct BlobCodec;

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ));
    }
    // Read in pieces of at most FRAME_RESERVE, each allocated only once the previous one has
    // arrived: a peer that announces a large frame and sends nothing costs little. (Reading
    // into an exact-size buffer also avoids `read_to_end`, which zeroes its spare capacity
    // again as it grows.)
    let mut buf = Vec::new();
    while buf.len() < len {
        let start = buf.len();
        buf.resize(start + (len - start).min(FRAME_RESERVE), 0);
        if let Err(e) = io.read_exact(&mut buf[start..]).await {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("frame ended before its {len} bytes"),
                )
            } else {
                e
            });
        }
    }
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

impl request_response::Codec for BlobCodec {
    type Protocol = StreamProtocol;
    type Request = BlobHash;
    type Response = BlobResponse;

    async fn read_request<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<BlobHash> {
        let bytes = read_frame(io, 32).await?;
        let hash: [u8; 32] = bytes
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "request is not 32 bytes"))?;
        Ok(BlobHash(hash))
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> io::Result<BlobResponse> {
        let mut tag = [0u8; 1];
        io.read_exact(&mut tag).await?;
        match tag[0] {
            0 => Ok(BlobResponse::Missing),
            1 => Ok(BlobResponse::Found(Arc::new(
                read_frame(io, MAX_BLOB_FRAME).await?,
            ))),
            t => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown response tag {t}"),
            )),
        }
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: BlobHash,
    ) -> io::Result<()> {
        write_frame(io, &req.0).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: BlobResponse,
    ) -> io::Result<()> {
        match res {
            BlobResponse::Missing => {
                io.write_all(&[0]).await?;
                io.close().await
            }
            BlobResponse::Found(bytes) => {
                io.write_all(&[1]).await?;
                write_frame(io, &bytes).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::request_response::Codec;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        futures::executor::block_on(f)
    }

    #[test]
    fn a_response_round_trips() {
        let mut buf = Vec::new();
        block_on(BlobCodec.write_response(
            &PROTOCOL,
            &mut futures::io::Cursor::new(&mut buf),
            BlobResponse::Found(Arc::new(b"abc".to_vec())),
        ))
        .unwrap();
        let got = block_on(BlobCodec.read_response(&PROTOCOL, &mut futures::io::Cursor::new(&buf)))
            .unwrap();
        assert!(matches!(got, BlobResponse::Found(b) if b.as_slice() == b"abc"));
    }

    #[test]
    fn truncated_and_oversized_frames_are_errors() {
        // Announces 1000 bytes, sends 3.
        let mut short = vec![1u8];
        short.extend_from_slice(&1000u32.to_be_bytes());
        short.extend_from_slice(b"abc");
        assert!(
            block_on(BlobCodec.read_response(&PROTOCOL, &mut futures::io::Cursor::new(&short)))
                .is_err()
        );
        // Announces more than the limit.
        let mut huge = vec![1u8];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(
            block_on(BlobCodec.read_response(&PROTOCOL, &mut futures::io::Cursor::new(&huge)))
                .is_err()
        );
        // A request that is not 32 bytes.
        let mut bad = 5u32.to_be_bytes().to_vec();
        bad.extend_from_slice(b"12345");
        assert!(
            block_on(BlobCodec.read_request(&PROTOCOL, &mut futures::io::Cursor::new(&bad)))
                .is_err()
        );
    }
}
