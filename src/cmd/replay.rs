//! `devp2p node --replay FILE`: the blocks of an RLP block file imported one at a time
//! through the [`Propagator`], so they propagate as if the node produced them; and the
//! duration syntax of `--replay-interval` and `devnet --block-time`.

use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use super::import::Error;
use crate::chain::reader::BlockReader;
use crate::propagate::{Outcome, Propagator};

/// Parses a duration like `2s`, `500ms`, `1m` or `1.5s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

/// Imports the blocks of the RLP file `path` one at a time, `interval` apart, through
/// `p` (so they propagate); blocks already stored are skipped without waiting. Returns
/// the number imported.
pub async fn replay(p: &Propagator, path: &Path, interval: Duration) -> Result<usize, Error> {
    let file = std::fs::File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BlockReader::new(BufReader::new(file));
    let mut imported = 0;
    while let Some(block) = reader.next_block()? {
        let number = block.header.number;
        match p.import_local(block).await {
            Ok(Outcome::Imported) => {
                imported += 1;
                tracing::info!(target: "sync", number, "replayed block");
                tokio::time::sleep(interval).await;
            }
            Ok(Outcome::Known) => {}
            Ok(Outcome::UnknownParent) => {
                tracing::warn!(target: "sync", number, "replay: parent unknown, skipped")
            }
            Err(e) => {
                tracing::warn!(target: "sync", number, error = %e, "replay: block rejected")
            }
        }
    }
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("3x"), None);
    }
}
