//! `devp2p sim`: deterministic network simulations with the real protocol cores
//! ([`crate::sim`]). Each scenario is a sub-subcommand; same seed, same output files.

use std::path::PathBuf;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::sim::propagation::{self, HostileMode, Strategy, World};
use crate::sim::report;

/// `devp2p sim` errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the CSV or SVG output failed.
    #[error(transparent)]
    Report(#[from] report::Error),
    /// An argument is out of range.
    #[error("{0}")]
    Arg(&'static str),
}

/// Arguments of `devp2p sim`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The scenario.
    #[command(subcommand)]
    pub command: Command,
}

/// The scenarios.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Block and transaction propagation (√n push + announce, flooding, announce-only)
    /// with the real fan-out, block propagation core and transaction fetcher.
    Propagation(PropagationArgs),
    /// Node Discovery v4 with the real protocol core: table fill, lookup rounds,
    /// packets and accuracy against the true 16 closest, under churn and garbage nodes.
    Discovery(crate::sim::discovery::Args),
}

/// A fan-out strategy on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StrategyArg {
    /// In full to √n peers, announced to the rest (the eth spec; what the node does).
    Sqrt,
    /// In full to every peer.
    Flood,
    /// Announced to every peer, fetched on demand.
    Announce,
}

/// What hostile nodes do, on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostileArg {
    /// Never relay or announce anything.
    Withhold,
    /// Announce everything, never deliver.
    AnnounceNeverDeliver,
}

/// Arguments of `devp2p sim propagation`.
#[derive(clap::Args, Debug, Clone)]
pub struct PropagationArgs {
    /// Nodes in the network.
    #[arg(long, default_value_t = 1000)]
    pub nodes: usize,
    /// Average connections per node (each node dials half of them).
    #[arg(long, default_value_t = 25)]
    pub peers: usize,
    /// Fan-out strategies to run, comma-separated; each runs on the same seed, topology
    /// and producers, and the outputs compare them.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "sqrt")]
    pub strategy: Vec<StrategyArg>,
    /// Seed of all randomness: the same seed gives byte-identical CSV files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Blocks produced, one every 12 s.
    #[arg(long, default_value_t = 5)]
    pub blocks: usize,
    /// Transactions gossiped, created at random nodes over the run.
    #[arg(long, default_value_t = 50)]
    pub txs: usize,
    /// Block body size in KiB (mainnet's typical block is about 100).
    #[arg(long, default_value_t = 100)]
    pub block_kib: usize,
    /// Time a node takes to import a block before relaying it, in ms.
    #[arg(long, default_value_t = 100)]
    pub import_ms: u64,
    /// Share of hostile nodes (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub hostile: f64,
    /// What hostile nodes do.
    #[arg(long, value_enum, default_value = "withhold")]
    pub hostile_mode: HostileArg,
    /// Share of nodes offline during each block interval, re-drawn per block (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Probability that a message is lost (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Directory for the CSV files and SVG plots.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Runs `devp2p sim`.
pub fn run(args: Args) -> Result<(), Error> {
    match args.command {
        Command::Propagation(a) => propagation_cmd(a),
        Command::Discovery(a) => {
            share(a.churn, "--churn must be between 0 and 1")?;
            share(a.garbage, "--garbage must be between 0 and 1")?;
            share(a.loss, "--loss must be between 0 and 1")?;
            if a.nodes < 2 || !(1..=250).contains(&a.per_subnet) {
                return Err(Error::Arg(
                    "--nodes must be at least 2, --per-subnet 1 to 250",
                ));
            }
            Ok(crate::sim::discovery::run(a)?)
        }
    }
}

fn share(x: f64, what: &'static str) -> Result<f64, Error> {
    if (0.0..=1.0).contains(&x) {
        Ok(x)
    } else {
        Err(Error::Arg(what))
    }
}

fn propagation_cmd(a: PropagationArgs) -> Result<(), Error> {
    if a.nodes < 2 || a.peers < 1 {
        return Err(Error::Arg(
            "--nodes must be at least 2 and --peers at least 1",
        ));
    }
    let mut cfg = propagation::Config {
        seed: a.seed,
        nodes: a.nodes,
        peers: a.peers,
        blocks: a.blocks,
        txs: a.txs,
        block_bytes: a.block_kib * 1024,
        import_delay: Duration::from_millis(a.import_ms),
        hostile: share(a.hostile, "--hostile must be between 0 and 1")?,
        hostile_mode: match a.hostile_mode {
            HostileArg::Withhold => HostileMode::Withhold,
            HostileArg::AnnounceNeverDeliver => HostileMode::AnnounceNeverDeliver,
        },
        churn: share(a.churn, "--churn must be between 0 and 1")?,
        ..propagation::Config::default()
    };
    cfg.net.loss = share(a.loss, "--loss must be between 0 and 1")?;
    let runs = simulate(&cfg, &a.strategy);
    let files = propagation::write_outputs(&a.out, &runs)?;
    print!("{}", propagation::table(&runs));
    if let Some(t) = propagation::target(&runs) {
        println!("{t}");
    }
    println!("wrote {} to {}", files.join(", "), a.out.display());
    Ok(())
}

/// Runs `cfg` once per strategy over the same world (same seed, topology and producers).
pub fn simulate(
    cfg: &propagation::Config,
    strategies: &[StrategyArg],
) -> Vec<propagation::Summary> {
    // The world's own stream, so that its size does not shift the network's draws.
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0x5eed_b10c);
    let world = World::new(cfg.blocks, cfg.block_bytes, cfg.txs, cfg.tx_bytes, &mut rng);
    let mut seen = Vec::new();
    strategies
        .iter()
        .filter(|s| {
            let new = !seen.contains(*s);
            seen.push(**s);
            new
        })
        .map(|s| {
            let strategy = match s {
                StrategyArg::Sqrt => Strategy::Sqrt,
                StrategyArg::Flood => Strategy::Flood,
                StrategyArg::Announce => Strategy::Announce,
            };
            let cfg = propagation::Config {
                strategy,
                ..cfg.clone()
            };
            let t = std::time::Instant::now();
            let outcome = propagation::run(&cfg, &world);
            tracing::info!(
                strategy = strategy.name(),
                events = outcome.events,
                secs = t.elapsed().as_secs_f64(),
                "simulated"
            );
            propagation::summarize(outcome)
        })
        .collect()
}
