//! Writing a member's quorum PEM stores where its server reads them.
//!
//! Each store is written beside its final name and renamed over it, so a
//! server never reads half a file, and ZooKeeper's file watcher
//! (`sslQuorumReloadCertFiles=true`), which notices a rename over the exact
//! name, reloads it. The key store is readable by its owner only.
//!
//! A running server must see **one store change at a time**. ZooKeeper 3.8
//! reloads on one thread per store and reads the key store twice (the
//! chain, then the key): with both stores renamed at once, a reload that
//! read the old chain can finish after one that read the new file, leaving
//! the server presenting a certificate its key does not match (callers see
//! `BadSignature`) until the next change. So a rotation writes one store
//! ([`write_trust_store`], [`write_key_store`]), waits until the server
//! answers with it, then writes the other; [`write_stores`] is for a server
//! that is not running.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use zk_ensemble::tls::{KEY_STORE, TRUST_STORE};

/// Writes `key_store` and `trust_store` (PEM) into `dir`, creating it, for
/// a server that is not running (see the module docs).
pub fn write_stores(dir: &Path, key_store: &str, trust_store: &str) -> std::io::Result<()> {
    write_trust_store(dir, trust_store)?;
    write_key_store(dir, key_store)
}

/// Replaces the trust store (CA certificates, PEM) in `dir`.
pub fn write_trust_store(dir: &Path, trust_store: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    replace(&dir.join(TRUST_STORE), trust_store, 0o644)
}

/// Replaces the key store (PKCS#8 key, then the chain, PEM) in `dir`,
/// readable by its owner only.
pub fn write_key_store(dir: &Path, key_store: &str) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    replace(&dir.join(KEY_STORE), key_store, 0o600)
}

/// Writes `contents` beside `path` with permissions `mode` and renames it
/// over `path`: a reader sees the old file or the new one, never half.
pub fn replace(path: &Path, contents: &str, mode: u32) -> std::io::Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".new");
    let temporary = path.with_file_name(name);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn stores_are_replaced_whole_and_the_key_is_private() {
        let dir = tempfile::tempdir().expect("a folder");
        let tls = dir.path().join("tls");
        write_stores(&tls, "key one", "ca one").expect("written");
        write_stores(&tls, "key two", "ca two").expect("replaced");
        assert_eq!(fs::read_to_string(tls.join(KEY_STORE)).unwrap(), "key two");
        assert_eq!(fs::read_to_string(tls.join(TRUST_STORE)).unwrap(), "ca two");
        let mode = fs::metadata(tls.join(KEY_STORE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(&tls)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary file left: {names:?}");
    }
}
