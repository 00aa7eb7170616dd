//! `devp2p key`: generate node keys and show their enode ids (key files: [`crate::key`]).

use std::path::PathBuf;

use discovery::NodeId;

pub use crate::key::*;

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
