//! What the watching examples (`tx_watcher`, `block_listener`) share: the node they run
//! and the loop printing one line per event.

use devp2p::node::Config;
use std::io::Write;
use tokio::sync::broadcast::{self, error::RecvError};

/// A node on a free port with a temporary datadir, `--chain NAME` and the peers to join
/// (enode URLs) from the command line. On a private chain block gossip counts only from
/// named sources, so the peers given are named.
pub(crate) fn config(name: &str) -> Result<Config, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("devp2p-{name}-{}", std::process::id()));
    let mut config = Config {
        port: 0,
        datadir: Some(dir),
        ..Config::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--chain" => config.chain = args.next().ok_or("--chain needs a name")?,
            url => {
                let node = discovery::parse_node(url)?;
                config.block_sources.push(node.id);
                config.static_nodes.push(node);
            }
        }
    }
    Ok(config)
}

/// Prints `line(event)` for each event to `out` until `limit` lines (or forever). When we
/// fall behind, the oldest events are lost: we print how many `what` we missed.
pub(crate) async fn print_each<T: Clone>(
    mut events: broadcast::Receiver<T>,
    out: &mut impl Write,
    limit: Option<usize>,
    what: &str,
    line: impl Fn(&T) -> String,
) -> usize {
    let mut printed = 0;
    while limit.is_none_or(|l| printed < l) {
        let text = match events.recv().await {
            Ok(e) => line(&e),
            Err(RecvError::Lagged(n)) => format!("({n} {what} missed)"),
            Err(RecvError::Closed) => break,
        };
        if writeln!(out, "{text}").is_err() {
            break;
        }
        printed += 1;
    }
    printed
}
