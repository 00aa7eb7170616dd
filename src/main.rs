//! The `devp2p` command line: parses arguments, sets up logging, and calls the library.

use clap::{Parser, Subcommand};
use std::future::Future;
use tracing_subscriber::EnvFilter;

/// devp2p: Ethereum's peer-to-peer networking stack (RLPx, discovery v4).
#[derive(Parser, Debug)]
#[command(name = "devp2p", version, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, or `discv4=trace,rlpx=debug`.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node: RLPx server, discovery, peer management.
    Node(Box<devp2p::cmd::node::Args>),
    /// Run a discovery-only bootnode (Node Discovery v4 over UDP).
    Bootnode(devp2p::cmd::bootnode::Args),
    /// Publish a DNS node list (EIP-1459): sign a tree of ENRs, write its TXT records.
    Dns(devp2p::cmd::dns::Args),
    /// Crawl a network: discovery walk, RLPx Hello and eth Status of every node, written
    /// as go-ethereum's nodes.json.
    Crawl(Box<devp2p::cmd::crawl::Args>),
    /// Tables and SVG plots of a crawl's nodes.json: clients, versions, forks, networks.
    Census(devp2p::cmd::census::Args),
    /// Generate or inspect node keys.
    Key(devp2p::cmd::key::Args),
    /// Import blocks from an RLP block file (validated structurally; not executed).
    Import(devp2p::cmd::import::Args),
    /// Export canonical blocks to an RLP block file.
    Export(devp2p::cmd::export::Args),
    /// Generate a synthetic chain (valid under our structural rules) as an RLP block file.
    GenChain(devp2p::cmd::gen_chain::Args),
    /// Run a local network on loopback: a bootnode and N nodes, one replaying the bundled
    /// chain, with a live status table.
    Devnet(devp2p::cmd::devnet::Args),
    /// Conformance suites against a node (ports of go-ethereum's `devp2p` tests): discv4,
    /// rlpx, eth.
    Test(devp2p::cmd::test::Args),
    /// Deterministic network simulations with the real protocol cores, written as CSV and
    /// SVG plots: `sim propagation` (and further scenarios).
    Sim(devp2p::cmd::sim::Args),
}

type BoxError = Box<dyn std::error::Error>;

/// Runs `f` on a multi-threaded runtime, handing it a future that completes on Ctrl-C
/// (SIGINT) or SIGTERM. The handlers are installed before `f` starts, so a signal during
/// start-up still shuts down cleanly.
fn run_async<F, E>(f: impl FnOnce(Stop) -> F) -> Result<(), BoxError>
where
    F: Future<Output = Result<(), E>>,
    E: Into<BoxError>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stop = stop_signal()?;
        f(stop).await.map_err(Into::into)
    })
}

type Stop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

#[cfg(unix)]
fn stop_signal() -> std::io::Result<Stop> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(Box::pin(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }))
}

#[cfg(not(unix))]
fn stop_signal() -> std::io::Result<Stop> {
    Ok(Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if cli.log_json {
        logs.json().init();
    } else {
        logs.init();
    }
    let result = match cli.command {
        Command::Dns(args) => devp2p::cmd::dns::run(args).map_err(Into::into),
        Command::Census(args) => devp2p::cmd::census::run(args)
            .map(|_| ())
            .map_err(Into::into),
        Command::Crawl(args) => run_async(|stop| devp2p::cmd::crawl::run(*args, stop)),
        Command::Key(args) => devp2p::cmd::key::run(args).map_err(Into::into),
        Command::Import(args) => devp2p::cmd::import::run(args).map_err(Into::into),
        Command::Export(args) => devp2p::cmd::export::run(args).map_err(Into::into),
        Command::GenChain(args) => devp2p::cmd::gen_chain::run(args),
        Command::Devnet(args) => run_async(|stop| devp2p::cmd::devnet::run(args, stop)),
        Command::Node(args) => run_async(|stop| devp2p::cmd::node::run(*args, stop)),
        Command::Bootnode(args) => run_async(|stop| devp2p::cmd::bootnode::run(args, stop)),
        Command::Test(args) => run_async(|_| devp2p::cmd::test::run(args)),
        Command::Sim(args) => devp2p::cmd::sim::run(args).map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
