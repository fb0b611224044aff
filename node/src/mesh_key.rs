//! Mesh keys: the shared secret that closes a mesh. `shoal key new PATH` writes one;
//! `shoal node --mesh-key PATH` admits only peers that hold the same one ([`crate::admission`]).
//!
//! A key file is text: a comment line and 64 hex digits (32 random bytes). It is created with
//! mode 0600 and never overwritten; a key file that other users can read is refused, as ssh
//! refuses such a private key.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The first line of a key file.
const HEADER: &str =
    "# shoal mesh key: whoever holds this file can join the mesh. Keep it private (mode 0600).";

/// Why a mesh key could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// `shoal key new` never replaces a key: remove the old file first if that is meant.
    #[error("{0} already exists; a mesh key is never overwritten (remove it first to replace it)")]
    Exists(PathBuf),
    /// The file could not be created, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a key written by `shoal key new`.
    #[error("{0} is not a shoal mesh key (expected 64 hex digits after the comment line)")]
    Malformed(PathBuf),
    /// Other users can read the file: the key is no longer a secret of its owner.
    #[error("{path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`")]
    Exposed { path: PathBuf, mode: u32 },
    /// The operating system gave no random bytes.
    #[error("no randomness for a new key: {0}")]
    Random(String),
}

/// A 32-byte mesh key.
#[derive(Clone, PartialEq, Eq)]
pub struct MeshKey([u8; 32]);

impl std::fmt::Debug for MeshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself: logs and panics may be read by others.
        write!(f, "MeshKey({})", self.fingerprint())
    }
}

impl MeshKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Writes a new random key to `path` (mode 0600), refusing to replace an existing file.
    pub fn write_new(path: &Path) -> Result<Self, KeyError> {
        let key = Self::generate()?;
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.to_path_buf())
            } else {
                io(e)
            }
        })?;
        writeln!(file, "{HEADER}\n{}", hex(&key.0)).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(key)
    }

    /// Reads the key at `path`, refusing a file other users can read.
    pub fn read(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Exposed {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        // A key file is a few dozen bytes; anything much larger is not one.
        let text = std::fs::read(path).map_err(io)?;
        if text.len() > 4096 {
            return Err(KeyError::Malformed(path.to_path_buf()));
        }
        let text = String::from_utf8(text).map_err(|_| KeyError::Malformed(path.to_path_buf()))?;
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| KeyError::Malformed(path.to_path_buf()))?;
        unhex(line)
            .map(Self)
            .ok_or_else(|| KeyError::Malformed(path.to_path_buf()))
    }

    /// A short public name for the key (not the key): operators compare these to check that
    /// two nodes hold the same key without showing it.
    pub fn fingerprint(&self) -> String {
        let digest = blake3::derive_key("shoal mesh key fingerprint v1", &self.0);
        hex(&digest[..6])
    }

    /// The key the admission handshake proves knowledge of, derived so that the file's bytes
    /// are used for nothing else.
    pub(crate) fn admission_key(&self) -> [u8; 32] {
        blake3::derive_key("shoal mesh admission v1", &self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_private_reads_back_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.key");
        let key = MeshKey::write_new(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert_eq!(MeshKey::read(&path).unwrap(), key);
        assert!(matches!(
            MeshKey::write_new(&path),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(MeshKey::read(&path).unwrap(), key, "the old key is intact");
        assert!(!format!("{key:?}").contains(&hex(&key.0)), "Debug hides it");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_other_users_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.key");
        MeshKey::write_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MeshKey::read(&path),
            Err(KeyError::Exposed { .. })
        ));
    }

    #[test]
    fn a_file_that_is_not_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("not-a-key");
        std::fs::write(&path, "hello\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert!(matches!(MeshKey::read(&path), Err(KeyError::Malformed(_))));
    }
}
