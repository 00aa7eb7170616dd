//! The `devp2p` command line: parses arguments, sets up logging, and calls the library.

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// devp2p: Ethereum's peer-to-peer networking stack (RLPx, discovery v4).
#[derive(Parser, Debug)]
#[command(name = "devp2p", version, about, long_about = None)]
struct Cli {
    /// Log filter, e.g. `info`, `debug`, or `discv4=trace,rlpx=debug`.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a discovery-only bootnode (Node Discovery v4 over UDP).
    Bootnode(devp2p::cmd::bootnode::Args),
    /// Generate or inspect node keys.
    Key(devp2p::cmd::key::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Key(args) => devp2p::cmd::key::run(args).map_err(Into::into),
        Command::Bootnode(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(Into::into)
            .and_then(|rt| {
                rt.block_on(devp2p::cmd::bootnode::run(args, async {
                    let _ = tokio::signal::ctrl_c().await;
                }))
                .map_err(Into::into)
            }),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
