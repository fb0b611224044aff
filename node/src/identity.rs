//! The node's identity key, persisted in its data directory so that a restarted node keeps its
//! peer id.

use anyhow::Context;
use libp2p::identity::Keypair;
use std::path::Path;

const KEY_FILE: &str = "identity.key";

/// Loads the key from `data_dir`, creating and saving a new one on first start.
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Keypair> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let path = data_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).with_context(|| {
            format!(
                "{} is not a valid identity key; move it away to start with a new identity",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .context("encoding the new identity key")?;
            let tmp = data_dir.join(format!("{KEY_FILE}.tmp"));
            std::fs::write(&tmp, bytes)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            restrict_permissions(&tmp);
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_data_dir_gives_the_same_peer_id() {
        let dir = tempfile::tempdir().unwrap();
        let a = super::load_or_create(dir.path())
            .unwrap()
            .public()
            .to_peer_id();
        let b = super::load_or_create(dir.path())
            .unwrap()
            .public()
            .to_peer_id();
        assert_eq!(a, b);
    }
}
