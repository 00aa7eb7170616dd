//! What the testnet reads from its nodes: their Prometheus metrics, `admin_peers`, their
//! log files (block times), and `/proc` (memory, descriptors, threads).
//!
//! Block times come from the logs rather than from polling: every node writes a line with
//! a microsecond UTC timestamp when it imports a block (`block propagated`, logged as it
//! relays a gossiped or replayed block; `Imported new chain segment`, after a sync batch)
//! and the replaying node when it replays one (`replayed block`). All processes share one
//! clock, so a node's delay for block N is its line's time minus the replayer's, at
//! microsecond resolution, where a poll would give only its period.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

/// One scrape of a node's `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Sample {
    pub(crate) peers_in: u64,
    pub(crate) peers_out: u64,
    pub(crate) head: u64,
    pub(crate) table: u64,
    /// eth/snap payload bytes received and sent (`devp2p_protocol_bytes_total`).
    pub(crate) bytes_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) disc_in: u64,
    pub(crate) disc_out: u64,
    pub(crate) dials: u64,
    pub(crate) dials_ok: u64,
    /// Peers refused after Hello (`too many peers` covers the per-subnet cap).
    pub(crate) rejected: u64,
    /// Of those, refused as `too many peers`: slots full, or the per-IP or per-subnet cap.
    pub(crate) too_many: u64,
    /// Inbound connections dropped before the handshake (throttle, per-subnet pending).
    pub(crate) inbound_rejected: u64,
}

impl Sample {
    /// Reads the families the testnet reports from a Prometheus text page.
    pub(crate) fn parse(text: &str) -> Sample {
        let mut s = Sample::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((key, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(v) = value.parse::<f64>() else {
                continue;
            };
            let v = v as u64;
            let (name, labels) = key.split_once('{').unwrap_or((key, ""));
            let has = |l: &str| labels.contains(l);
            match name {
                "devp2p_peers" if has("direction=\"inbound\"") => s.peers_in = v,
                "devp2p_peers" if has("direction=\"outbound\"") => s.peers_out = v,
                "devp2p_chain_head_block" => s.head = v,
                "devp2p_discovery_table_nodes" => s.table = v,
                "devp2p_protocol_bytes_total" if has("direction=\"in\"") => s.bytes_in += v,
                "devp2p_protocol_bytes_total" if has("direction=\"out\"") => s.bytes_out += v,
                "devp2p_discovery_packets_total" if has("direction=\"in\"") => s.disc_in = v,
                "devp2p_discovery_packets_total" if has("direction=\"out\"") => s.disc_out = v,
                "devp2p_dials_started_total" => s.dials = v,
                "devp2p_dials_total" if has("outcome=\"ok\"") => s.dials_ok = v,
                "devp2p_rejected_total" => {
                    s.rejected += v;
                    if has("reason=\"too many peers\"") {
                        s.too_many += v;
                    }
                }
                "devp2p_inbound_rejected_total" => s.inbound_rejected += v,
                _ => {}
            }
        }
        s
    }
}

/// The /24 of an IPv4 address (IPv6 addresses are not used in the testnet).
pub(crate) fn subnet(ip: IpAddr) -> Option<[u8; 3]> {
    match discovery::node::canonical_ip(ip) {
        IpAddr::V4(a) => {
            let [x, y, z, _] = a.octets();
            Some([x, y, z])
        }
        IpAddr::V6(_) => None,
    }
}

/// From an `admin_peers` answer: the most inbound peers from one /24, and how many
/// peers there are in all.
pub(crate) fn inbound_per_subnet(peers: &Value) -> (usize, usize) {
    let Some(list) = peers.as_array() else {
        return (0, 0);
    };
    let mut per: HashMap<[u8; 3], usize> = HashMap::new();
    for p in list {
        let net = &p["network"];
        if net["inbound"].as_bool() != Some(true) {
            continue;
        }
        let addr = net["remoteAddress"]
            .as_str()
            .and_then(|a| a.parse::<SocketAddr>().ok());
        if let Some(s) = addr.and_then(|a| subnet(a.ip())) {
            *per.entry(s).or_default() += 1;
        }
    }
    (per.values().copied().max().unwrap_or(0), list.len())
}

/// A process's resident memory (KiB), threads and open descriptors, from `/proc`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStats {
    pub(crate) rss_kib: u64,
    pub(crate) threads: u64,
    pub(crate) fds: u64,
}

impl ProcStats {
    /// `None` once the process is gone.
    pub(crate) fn of(pid: u32) -> Option<ProcStats> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
        Some(ProcStats {
            rss_kib: field("VmRSS:"),
            threads: field("Threads:"),
            fds,
        })
    }
}

/// When a node had each block, in microseconds since the UNIX epoch (earliest line).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct BlockTimes {
    /// Blocks imported as they were gossiped (or replayed, on the replaying node).
    pub(crate) gossip: BTreeMap<u64, i64>,
    /// Blocks imported by sync.
    pub(crate) sync: BTreeMap<u64, i64>,
}

impl BlockTimes {
    /// Adds the block lines of a log file's text (`NO_COLOR` text format).
    pub(crate) fn add_log(&mut self, text: &str) {
        for line in text.lines() {
            let replayed = line.contains("replayed block");
            let gossip = replayed || line.contains("block propagated");
            let synced = line.contains("Imported new chain segment");
            if !gossip && !synced {
                continue;
            }
            let Some(t) = line.split_whitespace().next().and_then(parse_time) else {
                continue;
            };
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            let Some(number) = field("number") else {
                continue;
            };
            let earliest = |m: &mut BTreeMap<u64, i64>, n: u64| {
                let e = m.entry(n).or_insert(t);
                *e = (*e).min(t);
            };
            if gossip {
                earliest(&mut self.gossip, number);
            } else {
                // A batch ending at `number`; every block of it was stored by then.
                let blocks = field("blocks").unwrap_or(1).clamp(1, number.max(1));
                for n in number + 1 - blocks..=number {
                    earliest(&mut self.sync, n);
                }
            }
        }
    }

    /// When the node had block `n`, by either path.
    pub(crate) fn at(&self, n: u64) -> Option<i64> {
        match (self.gossip.get(&n), self.sync.get(&n)) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }
}

/// An RFC 3339 UTC timestamp as tracing writes it (`2026-12-05T16:36:48.123456Z`), in
/// microseconds since the UNIX epoch: the crawler's RFC 3339 parser for the seconds, the
/// fraction (which it drops) read here.
pub(crate) fn parse_time(s: &str) -> Option<i64> {
    let secs = i64::try_from(crate::crawl::nodeset::time::parse(s)?).ok()?;
    let frac = s.split_once('.').map_or("", |(_, f)| f);
    // Microseconds: the first six digits of the fraction, padded.
    let digits: String = frac
        .chars()
        .take_while(char::is_ascii_digit)
        .take(6)
        .collect();
    let micros = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10i64.pow(6 - digits.len() as u32)
    };
    Some(secs * 1_000_000 + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_page() {
        let text = "# HELP x\n\
            devp2p_peers{direction=\"inbound\"} 3\n\
            devp2p_peers{direction=\"outbound\"} 5\n\
            devp2p_chain_head_block 412\n\
            devp2p_protocol_bytes_total{protocol=\"eth\",direction=\"in\"} 1000\n\
            devp2p_protocol_bytes_total{protocol=\"snap\",direction=\"in\"} 24\n\
            devp2p_protocol_bytes_total{protocol=\"eth\",direction=\"out\"} 7\n\
            devp2p_rejected_total{reason=\"too many peers\"} 2\n\
            devp2p_rejected_total{reason=\"already connected\"} 1\n";
        let s = Sample::parse(text);
        assert_eq!((s.peers_in, s.peers_out, s.head), (3, 5, 412));
        assert_eq!(
            (s.bytes_in, s.bytes_out, s.rejected, s.too_many),
            (1024, 7, 3, 2)
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_time("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            parse_time("2026-12-05T16:36:48.123456Z"),
            Some(1_796_488_608_123_456)
        );
        assert_eq!(parse_time("2026-12-05 16:36:48"), None);
    }

    #[test]
    fn block_lines() {
        let log = "\
2026-12-05T16:00:00.000100Z DEBUG sync: block propagated number=401 hash=0xab full=2 announced=3
2026-12-05T16:00:00.000050Z  INFO sync: Imported new chain segment number=400 hash=0xcd blocks=400 elapsed=1s
2026-12-05T16:00:00.000200Z DEBUG sync: block propagated number=401 hash=0xab full=0 announced=0
2026-12-05T16:00:01.000000Z  INFO sync: replayed block number=402";
        let mut b = BlockTimes::default();
        b.add_log(log);
        let t0 = parse_time("2026-12-05T16:00:00Z").unwrap();
        assert_eq!(b.gossip[&401], t0 + 100);
        assert_eq!(b.gossip[&402], t0 + 1_000_000);
        assert_eq!((b.sync.len(), b.sync[&1]), (400, t0 + 50));
        assert_eq!(b.at(400), Some(t0 + 50));
    }

    #[test]
    fn inbound_counted_per_subnet() {
        let peers = serde_json::json!([
            {"network": {"inbound": true, "remoteAddress": "10.77.1.10:4000"}},
            {"network": {"inbound": true, "remoteAddress": "10.77.1.11:4000"}},
            {"network": {"inbound": false, "remoteAddress": "10.77.1.12:30303"}},
            {"network": {"inbound": true, "remoteAddress": "10.77.2.10:4000"}},
        ]);
        assert_eq!(inbound_per_subnet(&peers), (2, 4));
    }
}
