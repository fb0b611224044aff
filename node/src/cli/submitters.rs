//! `--submitters FILE`: the peers whose jobs a node works on.

use libp2p::PeerId;
use std::path::{Path, PathBuf};

/// Most peers one submitters file may list.
pub const SUBMITTERS_MAX: usize = 10_000;

/// Why a submitters file was refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmittersError {
    #[error("cannot read the submitters file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: '{text}' is not a peer id (as `shoal peers` shows them)")]
    BadPeer {
        path: PathBuf,
        line: usize,
        text: String,
    },
    #[error("{0} lists more than {SUBMITTERS_MAX} peers")]
    TooMany(PathBuf),
}

/// Reads peer ids, one per line; blank lines and `#` comments are skipped.
pub fn read(path: &Path) -> Result<Vec<PeerId>, SubmittersError> {
    let text = std::fs::read_to_string(path).map_err(|source| SubmittersError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut peers = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let peer = line.parse().map_err(|_| SubmittersError::BadPeer {
            path: path.to_path_buf(),
            line: i + 1,
            text: line.to_string(),
        })?;
        if peers.len() >= SUBMITTERS_MAX {
            return Err(SubmittersError::TooMany(path.to_path_buf()));
        }
        peers.push(peer);
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_are_read_with_comments_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("submitters");
        let a = PeerId::random();
        std::fs::write(&path, format!("# laptops\n{a}  # mine\n\n")).unwrap();
        assert_eq!(read(&path).unwrap(), vec![a]);
        std::fs::write(&path, format!("{a}\nnot-a-peer\n")).unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("not-a-peer"), "{e}");
    }
}
