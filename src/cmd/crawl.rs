//! `devp2p crawl`: walk a network's discovery, probe every node that answers over RLPx,
//! and write go-ethereum's `nodes.json` with what each said ([`crate::crawl`]).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::chain::Spec;
use crate::crawl::{driver, nodeset, probe::Prober};

/// `devp2p crawl` errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The chain could not be loaded.
    #[error(transparent)]
    Chain(#[from] crate::chain::Error),
    /// A bootnode, DNS URL or flag is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The node set could not be read or written.
    #[error(transparent)]
    NodeSet(#[from] nodeset::Error),
    /// The crawl could not start.
    #[error(transparent)]
    Crawl(#[from] driver::Error),
}

fn duration(s: &str) -> Result<Duration, String> {
    super::replay::parse_duration(s)
        .ok_or_else(|| format!("invalid duration {s:.20} (e.g. 30s, 10m, 1h)"))
}

/// Arguments of `devp2p crawl`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The chain: a preset name or a genesis.json path (its bootnodes, and the Status
    /// sent to nodes speaking eth).
    #[arg(long, default_value = "mainnet")]
    pub chain: String,
    /// Bootnodes (comma-separated enode URLs or ENRs); default the chain's.
    #[arg(long, value_delimiter = ',', value_parser = crate::node::parse_enode)]
    pub bootnodes: Vec<discovery::Node>,
    /// Walk discovery v4 (the default when no --dns is given).
    #[arg(long)]
    pub v4: bool,
    /// Walk discovery v5: not available yet.
    #[arg(long, hide = true)]
    pub v5: bool,
    /// EIP-1459 node lists to take nodes from (enrtree://KEY@DOMAIN, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub dns: Vec<String>,
    /// The DNS server for --dns lists, instead of the system's.
    #[arg(long, value_name = "ADDR")]
    pub dns_resolver: Option<SocketAddr>,
    /// The node set to write; an existing one is read first and its nodes revalidated
    /// (a crawl resumes where the last one stopped).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// How long to crawl.
    #[arg(long, default_value = "30m", value_parser = duration)]
    pub timeout: Duration,
    /// Discovery packets sent per second, at most.
    #[arg(long, value_name = "PKTS/S", default_value_t = 200.0)]
    pub rate: f64,
    /// RLPx probes started per second, at most.
    #[arg(long, value_name = "DIALS/S", default_value_t = 8.0)]
    pub dials: f64,
    /// RLPx probes in flight, at most.
    #[arg(long, default_value_t = 16)]
    pub max_dials: usize,
    /// Nodes held, at most.
    #[arg(long, default_value_t = 50_000)]
    pub max_nodes: usize,
    /// Recheck a node after this long.
    #[arg(long, default_value = "10m", value_parser = duration)]
    pub revalidate: Duration,
    /// UDP address for discovery.
    #[arg(long, default_value = "0.0.0.0:0")]
    pub addr: SocketAddr,
    /// Seconds between progress lines on stderr (0: none).
    #[arg(long, default_value_t = 8)]
    pub progress: u64,
}

/// Runs `devp2p crawl` until its timeout or `stop`, then writes the node set.
pub async fn run(args: Args, stop: impl Future<Output = ()>) -> Result<(), Error> {
    if args.v5 {
        return Err(Error::Invalid(
            "--v5: discovery v5 is not available yet".into(),
        ));
    }
    for (flag, v) in [("--rate", args.rate), ("--dials", args.dials)] {
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::Invalid(format!("{flag} must be a positive number")));
        }
    }
    let spec = Spec::load(&args.chain)?;
    let bootnodes = if args.bootnodes.is_empty() {
        spec.bootnodes
            .iter()
            .map(|s| crate::node::parse_enode(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Error::Invalid)?
    } else {
        args.bootnodes.clone()
    };
    let dns = args
        .dns
        .iter()
        .map(|u| u.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e: discovery::dns::Error| Error::Invalid(format!("--dns: {e}")))?;
    let input = nodeset::load(&args.out)?;
    let key = secp256k1::SecretKey::new(&mut secp256k1::rand::rng());
    let mut settings = driver::Settings::new(key);
    settings.bind = args.addr;
    settings.v4 = args.v4 || args.dns.is_empty();
    settings.discovery.bootnodes = bootnodes;
    settings.dns = dns;
    settings.dns_resolver = args.dns_resolver;
    settings.packets_per_sec = args.rate;
    settings.crawl.dials_per_sec = args.dials;
    settings.crawl.max_dials = args.max_dials.max(1);
    settings.crawl.max_nodes = args.max_nodes.max(1);
    settings.crawl.revalidate = args.revalidate;
    settings.timeout = args.timeout;
    settings.save = Some(args.out.clone());
    settings.progress_interval = Duration::from_secs(args.progress);
    let client_id = concat!("devp2p-rs-crawler/v", env!("CARGO_PKG_VERSION")).to_owned();
    let prober = Prober::new(key, client_id, &spec);
    let outcome = driver::crawl(settings, prober, input, stop).await?;
    nodeset::save(&args.out, &outcome.nodes)?;
    eprintln!(
        "{} nodes ({} added, {} removed, {} probed) written to {}",
        outcome.nodes.len(),
        outcome.progress.added,
        outcome.progress.removed,
        outcome.progress.probed,
        args.out.display()
    );
    Ok(())
}
