//! Node key files (the `nodekey` of a data directory, `--nodekey`, `devp2p key`).
//!
//! Key files hold the 32-byte secp256k1 secret as 64 hex characters (the go-ethereum
//! `nodekey` format).
//!
//! A key file is written to a fresh temporary file of its own (unique name, created
//! exclusively with mode 0600, so a planted `nodekey.tmp` with looser permissions or a
//! symlink is never written through), synced, and then moved into place; the directory is
//! synced so the new name survives a crash. The `nodekey` of a data directory is put in
//! place with a hard link, which fails if the file appeared meanwhile: two nodes started
//! at once on a fresh directory then both run with the key that was stored.

use std::path::{Path, PathBuf};

use secp256k1::SecretKey;

/// Key file errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The text is not 64 hex characters of a valid secp256k1 secret key.
    #[error("invalid node key: expected 64 hex characters of a valid secp256k1 secret")]
    InvalidKey,
    /// Both --nodekey and --nodekeyhex were given.
    #[error("--nodekey and --nodekeyhex are mutually exclusive")]
    Conflict,
}

/// The node key from `--nodekey FILE` or `--nodekeyhex HEX`; otherwise the `nodekey` file
/// in `datadir`, generated and stored there on first start; otherwise a fresh key.
pub fn resolve(
    file: Option<&Path>,
    hex_key: Option<&str>,
    datadir: Option<&Path>,
) -> Result<SecretKey, Error> {
    match (file, hex_key) {
        (Some(_), Some(_)) => Err(Error::Conflict),
        (Some(file), None) => load(file),
        (None, Some(hex)) => parse(hex),
        (None, None) => match datadir {
            Some(dir) => load_or_create(&dir.join("nodekey")),
            None => Ok(generate()),
        },
    }
}

/// Parses a hex secret key (surrounding whitespace and an `0x` prefix are allowed).
pub fn parse(hex_key: &str) -> Result<SecretKey, Error> {
    let s = hex_key.trim();
    let s = s.strip_prefix("0x").unwrap_or(s);
    let mut b = [0u8; 32];
    hex::decode_to_slice(s, &mut b).map_err(|_| Error::InvalidKey)?;
    SecretKey::from_byte_array(b).map_err(|_| Error::InvalidKey)
}

/// Reads a key file.
pub fn load(path: &Path) -> Result<SecretKey, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })?;
    parse(&text)
}

/// The key stored at `path`; if there is none, a new key stored there first. Whoever
/// stores first wins: a concurrent caller gets the stored key, not its own.
pub fn load_or_create(path: &Path) -> Result<SecretKey, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => return parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(Error::Io {
                path: path.into(),
                source,
            });
        }
    }
    let key = generate();
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let tmp = write_temp(path, hex::encode(key.secret_bytes()).as_bytes()).map_err(io)?;
    // A hard link never replaces an existing file, unlike rename.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            sync_dir(path).map_err(io)?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(io(e)),
    }
}

/// Writes a key file (replacing any), readable only by the owner on Unix.
pub fn save(path: &Path, key: &SecretKey) -> Result<(), Error> {
    write_private(path, hex::encode(key.secret_bytes()).as_bytes())
}

/// Writes a secret file (replacing any), readable only by the owner on Unix, as key
/// files are written (see the module docs).
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    // Write a temporary file and rename it into place, so a crash never leaves an empty
    // or partial file behind.
    let tmp = write_temp(path, contents).map_err(io)?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    sync_dir(path).map_err(io)
}

/// Writes `contents` to a new file next to `path` and syncs it; returns the file's path.
/// The name is unique to this call and the file is created exclusively with mode 0600.
fn write_temp(path: &Path, contents: &[u8]) -> std::io::Result<PathBuf> {
    use std::io::Write;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let dir = path.parent().unwrap_or(Path::new(""));
    loop {
        let nonce: u64 = secp256k1::rand::random();
        let tmp = dir.join(format!(".{name}.{}.{nonce:016x}.tmp", std::process::id()));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = match opts.open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = f.write_all(contents).and_then(|()| f.sync_all());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        return Ok(tmp);
    }
}

/// Syncs the directory holding `path`, so a new name in it survives a crash.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        #[cfg(unix)]
        Some(dir) => std::fs::File::open(dir)?.sync_all(),
        #[cfg(not(unix))]
        Some(_) => Ok(()),
        None => Ok(()),
    }
}

/// A fresh random key.
pub fn generate() -> SecretKey {
    SecretKey::new(&mut secp256k1::rand::rng())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_roundtrip() {
        let path = std::env::temp_dir().join(format!("devp2p-key-{}", std::process::id()));
        let key = generate();
        save(&path, &key).unwrap();
        assert_eq!(load(&path).unwrap(), key);
        std::fs::write(&path, "zz").unwrap();
        assert!(matches!(load(&path), Err(Error::InvalidKey)));
        assert!(matches!(parse(&"00".repeat(32)), Err(Error::InvalidKey)));
        let _ = std::fs::remove_file(&path);
    }

    fn tempdir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("devp2p-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Nodes starting at once on a fresh data directory all run with the stored key.
    #[test]
    fn concurrent_first_starts_agree_on_the_stored_key() {
        let base = tempdir("key-race");
        for round in 0..40 {
            let dir = base.join(round.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            let barrier = std::sync::Barrier::new(4);
            let keys: Vec<SecretKey> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            resolve(None, None, Some(&dir)).unwrap()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let stored = load(&dir.join("nodekey")).unwrap();
            assert!(keys.iter().all(|k| *k == stored), "round {round}");
            let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
            assert_eq!(left.len(), 1, "temporary files left behind");
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    /// A planted world-readable `nodekey.tmp` (or a symlink there) is never written through.
    #[cfg(unix)]
    #[test]
    fn key_file_is_private_despite_a_planted_temp_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("key-perm");
        let planted = dir.join("nodekey.tmp");
        std::fs::write(&planted, "").unwrap();
        std::fs::set_permissions(&planted, std::fs::Permissions::from_mode(0o666)).unwrap();
        let key = resolve(None, None, Some(&dir)).unwrap();
        let mode = std::fs::metadata(dir.join("nodekey"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&planted).unwrap(),
            "",
            "written through"
        );
        let out = dir.join("out");
        std::fs::write(dir.join("out.tmp"), "").unwrap();
        std::fs::set_permissions(dir.join("out.tmp"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        save(&out, &key).unwrap();
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load(&out).unwrap(), key);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
