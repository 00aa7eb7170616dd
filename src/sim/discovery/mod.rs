//! `devp2p sim discovery`: the real Node Discovery v4 core ([`discovery::Protocol`]) on
//! thousands of simulated nodes over [`crate::sim::net::Net`] (regions, upload bandwidth,
//! loss), in virtual time.
//!
//! The run: node 0 is the bootnode; `--nodes` nodes join evenly over `--join`, each
//! knowing only the bootnode, and do what a real node does (a refresh — self lookup plus
//! bucket lookups — at start, revalidation pings, answering everyone). Every node has its
//! own /24 (`10.a.b.1`) unless `--per-subnet K` packs K nodes into each /24, which shows
//! the table's /24 limits (2 per bucket, 10 per table). After the join window:
//!
//! - **churn**: `--churn F` replaces `F × nodes` nodes (one leaves for good, a fresh one
//!   joins) evenly over the rest of the run;
//! - **garbage**: each joining node is, with probability `--garbage`, a node that answers
//!   every FindNode with garbage (see [`garbage`]): malformed packets, nonexistent nodes,
//!   forged endpoints, only other garbage nodes, or far-away nodes;
//! - **lookups**: `--lookups` lookups for random targets from random honest nodes, from
//!   [`world::SETTLE`] after the join window on; each is scored against the true 16
//!   closest of all nodes online when it started.
//!
//! Tables are sampled every `--sample`. Outputs in `--out`: `fill.csv`, `lookups.csv`,
//! `summary.csv` and SVG plots; a summary table on stdout. The same seed gives
//! byte-identical CSVs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use discovery::packet::Secp256k1;
use discovery::sim::Registry;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

mod fifo;
mod garbage;
mod output;
mod world;

pub use output::Summary;

/// `devp2p sim discovery` arguments.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Nodes at the start (the bootnode included).
    #[arg(long, default_value_t = 10_000)]
    pub nodes: usize,
    /// Seed of every random choice: the same seed gives the same CSVs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Virtual time simulated (e.g. `300s`, `10m`).
    #[arg(long, default_value = "300s", value_parser = duration)]
    pub duration: Duration,
    /// Window over which the initial nodes join.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub join: Duration,
    /// Share of the nodes replaced (leave + fresh join) after the join window.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Share of joining nodes that answer FindNode with garbage.
    #[arg(long, default_value_t = 0.0)]
    pub garbage: f64,
    /// Nodes per /24 subnet (1: every node its own; more shows the table's /24 limits).
    #[arg(long, default_value_t = 1)]
    pub per_subnet: usize,
    /// UDP datagram loss probability.
    #[arg(long, default_value_t = 0.01)]
    pub loss: f64,
    /// Measured lookups (random targets from random honest nodes).
    #[arg(long, default_value_t = 500)]
    pub lookups: usize,
    /// Table sampling interval.
    #[arg(long, default_value = "5s", value_parser = duration)]
    pub sample: Duration,
    /// Replace secp256k1 packet signatures by the simulator's keyed-hash stand-in
    /// (`discovery::sim::FastCrypto`): same sizes, same ids, same outcomes, ~100× cheaper.
    #[arg(long)]
    pub fast_crypto: bool,
    /// Directory for the CSVs and plots.
    #[arg(long)]
    pub out: PathBuf,
}

fn duration(s: &str) -> Result<Duration, String> {
    crate::cmd::replay::parse_duration(s).ok_or_else(|| format!("invalid duration {s:?}"))
}

/// The scenario's parameters (the arguments without the output directory).
#[derive(Debug, Clone)]
pub struct Params {
    /// See [`Args::nodes`].
    pub nodes: usize,
    /// See [`Args::seed`].
    pub seed: u64,
    /// See [`Args::duration`].
    pub duration: Duration,
    /// See [`Args::join`].
    pub join: Duration,
    /// See [`Args::churn`].
    pub churn: f64,
    /// See [`Args::garbage`].
    pub garbage: f64,
    /// See [`Args::per_subnet`].
    pub per_subnet: usize,
    /// See [`Args::loss`].
    pub loss: f64,
    /// See [`Args::lookups`].
    pub lookups: usize,
    /// See [`Args::sample`].
    pub sample: Duration,
    /// See [`Args::fast_crypto`].
    pub fast_crypto: bool,
}

impl From<&Args> for Params {
    fn from(a: &Args) -> Self {
        Params {
            nodes: a.nodes,
            seed: a.seed,
            duration: a.duration,
            join: a.join,
            churn: a.churn,
            garbage: a.garbage,
            per_subnet: a.per_subnet,
            loss: a.loss,
            lookups: a.lookups,
            sample: a.sample,
            fast_crypto: a.fast_crypto,
        }
    }
}

/// Runs the scenario and returns its summary and CSV/SVG files (name, contents).
pub fn simulate(p: &Params) -> (Summary, Vec<(String, String)>) {
    let mut p = p.clone();
    p.sample = p.sample.max(Duration::from_millis(100));
    let outcome = if p.fast_crypto {
        let mut rng = StdRng::seed_from_u64(p.seed ^ 0x5eed_c0de);
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        let reg = Registry::new(secret);
        world::World::new(p.clone(), Box::new(move |_, id| reg.signer(id))).run()
    } else {
        world::World::new(p.clone(), Box::new(|key, _| Secp256k1(*key))).run()
    };
    output::report(&p, &outcome)
}

/// `devp2p sim discovery`: runs, writes the files to `--out`, prints the summary.
pub fn run(args: Args) -> Result<(), crate::sim::report::Error> {
    let wall = Instant::now();
    let (summary, files) = simulate(&Params::from(&args));
    for (name, contents) in &files {
        crate::sim::report::write(&args.out, name, contents)?;
    }
    print!("{}", summary.table());
    println!(
        "wall time {:.1} s; wrote {} files to {}",
        wall.elapsed().as_secs_f64(),
        files.len(),
        args.out.display()
    );
    Ok(())
}
