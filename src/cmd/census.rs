//! `devp2p census`: tables and SVG plots of a crawl's `nodes.json`
//! ([`crate::crawl::census`], [`crate::crawl::plot`]).

use std::path::{Path, PathBuf};

use crate::chain::Spec;
use crate::crawl::{census, nodeset, plot};

/// `devp2p census` errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The chain could not be loaded.
    #[error(transparent)]
    Chain(#[from] crate::chain::Error),
    /// The node set could not be read.
    #[error(transparent)]
    NodeSet(#[from] nodeset::Error),
    /// A plot failed.
    #[error(transparent)]
    Plot(#[from] plot::Error),
    /// Writing the output failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `--at` is not a time.
    #[error("--at: expected unix seconds or an RFC 3339 time")]
    At,
}

/// The report format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `census.md`: Markdown tables with the plots inline.
    Md,
    /// `census.json`.
    Json,
    /// `census.csv`: `table,name,count` rows.
    Csv,
}

/// Arguments of `devp2p census`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The node set (a `devp2p crawl` or go-ethereum `nodes.json`).
    pub nodes: PathBuf,
    /// The directory to write the report and the SVG plots to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The report format.
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// The chain whose next fork readiness is judged: a preset name or a genesis.json.
    #[arg(long, default_value = "mainnet")]
    pub chain: String,
    /// The census time (unix seconds or RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.into(),
        source,
    })
}

/// Runs `devp2p census`; returns the census written.
pub fn run(args: Args) -> Result<census::Census, Error> {
    let spec = Spec::load(&args.chain)?;
    let at = match &args.at {
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        Some(s) => s
            .parse()
            .ok()
            .or_else(|| nodeset::time::parse(s))
            .ok_or(Error::At)?,
    };
    let set = nodeset::load(&args.nodes)?;
    let c = census::census(&set, &spec, at);
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Io {
        path: args.out.clone(),
        source,
    })?;
    for (stem, title, rows) in c.tables() {
        write(
            &args.out.join(format!("{stem}.svg")),
            &plot::bars(title, rows)?,
        )?;
    }
    write(
        &args.out.join("nodes-over-time.svg"),
        &plot::over_time(&c.seen)?,
    )?;
    let (name, text) = match args.format {
        Format::Md => ("census.md", c.to_markdown()),
        // Serializing strings and numbers cannot fail.
        Format::Json => (
            "census.json",
            serde_json::to_string_pretty(&c).unwrap_or_default(),
        ),
        Format::Csv => ("census.csv", c.to_csv()),
    };
    write(&args.out.join(name), &text)?;
    println!(
        "{} nodes; report in {}",
        c.nodes,
        args.out.join(name).display()
    );
    Ok(c)
}
