//! `devp2p test`: runs a conformance suite ([`crate::conformance`]) against a node, like
//! go-ethereum's `devp2p discv4 test` and `devp2p rlpx eth-test`.
//!
//! Prints one line per case (`PASS|FAIL|SKIP name (reason)`) and `N passed, M failed`;
//! `--json FILE` writes the same as JSON; the exit status is non-zero when a case failed.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::conformance::{self, Report, discv4, eth, rlpx};

/// `devp2p test` errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node argument is no `enode://` URL or `enr:` record.
    #[error("invalid node {0:?}: {1}")]
    Node(String, discovery::ParseError),
    /// `--run` is not a valid regular expression.
    #[error("invalid --run pattern: {0}")]
    Pattern(String),
    /// The chain directory could not be read.
    #[error("--chain: {0}")]
    Chain(String),
    /// Writing `--json` failed.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Some cases failed (each was printed).
    #[error("{0} case(s) failed")]
    Failed(usize),
}

/// Arguments of `devp2p test`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The suite.
    #[command(subcommand)]
    pub suite: SuiteArgs,
}

/// Flags every suite takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Run only the cases whose name matches this regular expression.
    #[arg(long, value_name = "REGEX")]
    pub run: Option<String>,
    /// Also write the results as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// The suites.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum SuiteArgs {
    /// Node Discovery v4 cases (go-ethereum's v4test), against the node's UDP endpoint.
    Discv4 {
        /// The node: `enode://…` URL or `enr:…` record.
        node: String,
        /// IP of the first test socket.
        #[arg(long, default_value = "127.0.0.1")]
        listen1: IpAddr,
        /// IP of the second test socket (the wrong-IP amplification case sends from it; on
        /// macOS add it first: `sudo ifconfig lo0 add 127.0.0.2`).
        #[arg(long, default_value = "127.0.0.2")]
        listen2: IpAddr,
        /// `--run` and `--json`.
        #[command(flatten)]
        common: Common,
    },
    /// p2p base protocol cases (RLPx handshake and Hello), against the node's TCP endpoint.
    Rlpx {
        /// The node: `enode://…` URL or `enr:…` record.
        node: String,
        /// `--run` and `--json`.
        #[command(flatten)]
        common: Common,
    },
    /// eth protocol cases (go-ethereum's ethtest), against a node that imported the chain.
    Eth {
        /// The node: `enode://…` URL or `enr:…` record.
        node: String,
        /// The test chain directory: genesis.json and chain.rlp (go-ethereum's hivechain
        /// format, as in testdata/ethtest), optionally accounts.json and txinfo.json.
        #[arg(long, value_name = "DIR")]
        chain: PathBuf,
        /// `--run` and `--json`.
        #[command(flatten)]
        common: Common,
    },
}

fn parse_node(s: &str) -> Result<discovery::Node, Error> {
    discv4::parse_remote(s).map_err(|e| Error::Node(s.chars().take(200).collect(), e))
}

async fn run_suite<S: conformance::Suite>(
    suite: &S,
    node: &str,
    common: &Common,
) -> Result<Report, Error> {
    let pattern = match &common.run {
        Some(p) => {
            Some(regex_automata::meta::Regex::new(p).map_err(|e| Error::Pattern(e.to_string()))?)
        }
        None => None,
    };
    let select = |name: &str| pattern.as_ref().is_none_or(|re| re.is_match(name));
    Ok(conformance::run(suite, node.to_owned(), select, |case| println!("{case}")).await)
}

/// Runs the chosen suite; `Err(Error::Failed)` when a case failed.
pub async fn run(args: Args) -> Result<(), Error> {
    let (report, common) = match &args.suite {
        SuiteArgs::Discv4 {
            node,
            listen1,
            listen2,
            common,
        } => {
            let suite = discv4::V4Suite::new(parse_node(node)?, *listen1, *listen2);
            (run_suite(&suite, node, common).await?, common)
        }
        SuiteArgs::Rlpx { node, common } => {
            let suite = rlpx::RlpxSuite::new(parse_node(node)?);
            (run_suite(&suite, node, common).await?, common)
        }
        SuiteArgs::Eth {
            node,
            chain,
            common,
        } => {
            let suite = eth::EthSuite::new(parse_node(node)?, chain).map_err(Error::Chain)?;
            (run_suite(&suite, node, common).await?, common)
        }
    };
    println!("{}", report.summary());
    if let Some(path) = &common.json {
        // ok: a Report is plain strings and numbers
        let text = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(path, text + "\n").map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
    }
    match report.failed {
        0 => Ok(()),
        n => Err(Error::Failed(n)),
    }
}
