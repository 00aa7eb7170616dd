//! `devp2p key`: generate node keys and show their enode ids.
//!
//! Key files hold the 32-byte secp256k1 secret as 64 hex characters (the go-ethereum
//! `nodekey` format).

use std::path::{Path, PathBuf};

use discovery::NodeId;
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
            Some(dir) => {
                let path = dir.join("nodekey");
                if path.exists() {
                    load(&path)
                } else {
                    let k = generate();
                    save(&path, &k)?;
                    Ok(k)
                }
            }
            None => Ok(generate()),
        },
    }
}

/// `devp2p key` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Generate a new node key; print it, or write it to --out.
    Generate {
        /// Write the key to this file (created with mode 0600 on Unix) instead of stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Print the node id (enode id) of a key file.
    Show {
        /// The key file.
        file: PathBuf,
    },
}

/// Arguments of `devp2p key`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
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

/// Writes a key file, readable only by the owner on Unix.
pub fn save(path: &Path, key: &SecretKey) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    // Write a temporary file and rename it into place, so a crash never leaves an empty
    // or partial key file behind.
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp).map_err(io)?;
    std::io::Write::write_all(&mut f, hex::encode(key.secret_bytes()).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)
}

/// A fresh random key.
pub fn generate() -> SecretKey {
    SecretKey::new(&mut secp256k1::rand::rng())
}

/// Runs `devp2p key`.
pub fn run(args: Args) -> Result<(), Error> {
    match args.command {
        Command::Generate { out: Some(path) } => {
            let key = generate();
            save(&path, &key)?;
            println!("{}", NodeId::from_secret_key(&key));
        }
        Command::Generate { out: None } => println!("{}", hex::encode(generate().secret_bytes())),
        Command::Show { file } => println!("{}", NodeId::from_secret_key(&load(&file)?)),
    }
    Ok(())
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
}
