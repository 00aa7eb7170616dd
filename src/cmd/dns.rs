//! `devp2p dns`: publish a DNS node list (EIP-1459), like go-ethereum's `devp2p dns`.
//!
//! A list lives in a directory:
//! - `nodes.json`: the records, a JSON array of `enr:` strings (go-ethereum's object of
//!   `{"<id>": {"record": "enr:…"}}` is read too);
//! - `enrtree-info.json`: what `sign` wrote: `{"url", "seq", "signature", "links"}`, the
//!   list's URL, sequence number, root signature (base64url) and the URLs of linked lists.
//!
//! `sign` builds the tree (deterministic: [`discovery::dns::publish::Tree`]) and signs its
//! root; `to-txt` rebuilds it, checks the stored signature and writes the TXT records as a
//! JSON object of name → text, ready to load into a DNS zone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use discovery::Enr;
use discovery::dns::publish::Tree;
use discovery::dns::{self, TreeUrl};
use discovery::enr::{base64url_decode, base64url_encode};
use serde::{Deserialize, Serialize};

/// The records file of a list directory.
pub const NODES_FILE: &str = "nodes.json";
/// The signed metadata file of a list directory.
pub const INFO_FILE: &str = "enrtree-info.json";

/// `devp2p dns` errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is not the JSON expected.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A record in `nodes.json` is invalid.
    #[error("{NODES_FILE}: record {index}: {source}")]
    Record {
        /// Its position.
        index: usize,
        /// The cause.
        source: discovery::enr::EnrError,
    },
    /// The key file.
    #[error(transparent)]
    Key(#[from] crate::key::Error),
    /// A URL, domain or signature was rejected.
    #[error(transparent)]
    Dns(#[from] dns::Error),
    /// No `--domain` and no earlier `enrtree-info.json` naming one.
    #[error("no domain: give --domain")]
    NoDomain,
    /// `to-txt` on a list that `sign` has not signed.
    #[error("{INFO_FILE}: no url or signature; run `devp2p dns sign` first")]
    Unsigned,
}

/// The contents of `enrtree-info.json`.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
pub struct Info {
    /// `enrtree://<key>@<domain>` of the list.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Sequence number of the signed root.
    #[serde(default)]
    pub seq: u64,
    /// The root signature, base64url.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
    /// URLs of linked lists.
    #[serde(default)]
    pub links: Vec<String>,
}

/// `devp2p dns` subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Build the tree of DIR/nodes.json and sign its root; writes DIR/enrtree-info.json.
    Sign {
        /// The list directory.
        dir: PathBuf,
        /// The signing key file (64 hex characters, like a nodekey).
        keyfile: PathBuf,
        /// The domain the list is published at (default: the one signed before).
        #[arg(long)]
        domain: Option<String>,
        /// The sequence number (default: the previous one plus one).
        #[arg(long)]
        seq: Option<u64>,
    },
    /// Write the TXT records of a signed list as a JSON object of name → text.
    ToTxt {
        /// The list directory.
        dir: PathBuf,
        /// The output file.
        outfile: PathBuf,
    },
}

/// Arguments of `devp2p dns`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Runs `devp2p dns`.
pub fn run(args: Args) -> Result<(), Error> {
    match args.command {
        Command::Sign {
            dir,
            keyfile,
            domain,
            seq,
        } => {
            let key = crate::key::load(&keyfile)?;
            let info = sign(&dir, &key, domain.as_deref(), seq)?;
            println!("{} seq={}", info.url, info.seq);
        }
        Command::ToTxt { dir, outfile } => {
            let records = to_txt(&dir)?;
            let json = serde_json::to_string_pretty(&records).map_err(|source| Error::Json {
                path: outfile.clone(),
                source,
            })?;
            write(&outfile, json + "\n")?;
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn write(path: &Path, contents: String) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn parse_json<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> Result<T, Error> {
    serde_json::from_str(text).map_err(|source| Error::Json {
        path: path.to_owned(),
        source,
    })
}

/// Reads `DIR/nodes.json` (missing: no records).
pub fn read_nodes(dir: &Path) -> Result<Vec<Enr>, Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Nodes {
        List(Vec<String>),
        Geth(BTreeMap<String, GethNode>),
    }
    #[derive(Deserialize)]
    struct GethNode {
        record: String,
    }
    let path = dir.join(NODES_FILE);
    let Some(text) = read(&path)? else {
        return Ok(Vec::new());
    };
    let texts = match parse_json(&path, &text)? {
        Nodes::List(l) => l,
        Nodes::Geth(m) => m.into_values().map(|n| n.record).collect(),
    };
    texts
        .iter()
        .enumerate()
        .map(|(index, t)| t.parse().map_err(|source| Error::Record { index, source }))
        .collect()
}

/// Reads `DIR/enrtree-info.json` (missing: defaults).
pub fn read_info(dir: &Path) -> Result<Info, Error> {
    let path = dir.join(INFO_FILE);
    match read(&path)? {
        Some(text) => parse_json(&path, &text),
        None => Ok(Info::default()),
    }
}

fn links(info: &Info) -> Result<Vec<TreeUrl>, Error> {
    Ok(info
        .links
        .iter()
        .map(|l| l.parse())
        .collect::<Result<_, _>>()?)
}

/// `dns sign`: builds the tree of `dir`, signs it with `key` for `domain` (default: the
/// domain signed before) at `seq` (default: the previous sequence plus one), and writes
/// `enrtree-info.json`.
pub fn sign(
    dir: &Path,
    key: &secp256k1::SecretKey,
    domain: Option<&str>,
    seq: Option<u64>,
) -> Result<Info, Error> {
    let enrs = read_nodes(dir)?;
    let mut info = read_info(dir)?;
    let domain = match domain {
        Some(d) => d.to_owned(),
        None if !info.url.is_empty() => info.url.parse::<TreeUrl>()?.domain,
        None => return Err(Error::NoDomain),
    };
    let url = TreeUrl::new(key, &domain)?;
    info.seq = seq.unwrap_or(info.seq + 1);
    let mut tree = Tree::build(&enrs, &links(&info)?, info.seq);
    tree.sign(key);
    info.url = url.to_string();
    info.signature = base64url_encode(&tree.root().sig);
    let path = dir.join(INFO_FILE);
    let json = serde_json::to_string_pretty(&info).map_err(|source| Error::Json {
        path: path.clone(),
        source,
    })?;
    write(&path, json + "\n")?;
    Ok(info)
}

/// `dns to-txt`: the TXT records of the signed list in `dir`, by name, after checking the
/// stored signature against the rebuilt tree.
pub fn to_txt(dir: &Path) -> Result<BTreeMap<String, String>, Error> {
    let enrs = read_nodes(dir)?;
    let info = read_info(dir)?;
    if info.url.is_empty() || info.signature.is_empty() {
        return Err(Error::Unsigned);
    }
    let url: TreeUrl = info.url.parse()?;
    let sig = base64url_decode(&info.signature)
        .and_then(|s| <[u8; 65]>::try_from(s).ok())
        .ok_or(dns::Error::BadSignature)?;
    let mut tree = Tree::build(&enrs, &links(&info)?, info.seq);
    tree.set_signature(&url.key, sig)?;
    Ok(tree.to_txt(&url.domain))
}
