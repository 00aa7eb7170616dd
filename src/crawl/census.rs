//! Counts over a node set: what `devp2p census` reports. Pure functions of the set, the
//! chain and a time, so the same file always gives the same census.
//!
//! Every count is of nodes: client share and versions over the nodes whose Hello was
//! read; eth versions offered (a node offering several counts in each); network ids
//! over the nodes whose Status was read; TCP ports of the records; fork readiness over
//! every node with a fork id (from its Status, else the `eth` entry of its record).
//!
//! Names come from the network: they are cut to [`MAX_NAME`] characters and tables keep
//! the [`TOP`] largest rows, the rest summed as `other`.

use std::collections::BTreeMap;

use protocols::eth::forkid::{self, ForkId};
use serde::Serialize;

use super::nodeset::{Entry, NodeSet};
use crate::chain::Spec;

/// Rows kept per table; the rest are summed into `other`.
pub const TOP: usize = 15;
/// Longest name shown (client ids may be 1 KiB).
pub const MAX_NAME: usize = 40;
/// Points of the nodes-over-time series.
const TIME_POINTS: usize = 48;

/// One row of a table.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// What is counted.
    pub name: String,
    /// How many nodes.
    pub count: usize,
}

/// Where the nodes stand on the chain's next scheduled fork.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Readiness {
    /// The fork id a node on the chain has at the census time.
    pub current: String,
    /// The next scheduled fork (a block number or unix time), if any.
    pub next_fork: Option<u64>,
    /// Nodes per category: `ready` (current fork, announcing the next one: it will
    /// follow it), `not ready` (current fork, announcing none or another), `behind` (an
    /// earlier fork of the chain: syncing), `stale` (an earlier fork without the one
    /// that followed: old software), `other chain` (another genesis),
    /// `incompatible` (a fork hash the chain never had), `no fork id`.
    pub counts: Vec<Row>,
}

/// One point of the nodes-over-time series.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Seen {
    /// Unix seconds.
    pub time: u64,
    /// Nodes that had answered a check by then.
    pub found: usize,
    /// Nodes answering around then (first answer before, last answer after).
    pub live: usize,
}

/// The census of a node set.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Census {
    /// The chain readiness is judged against.
    pub chain: String,
    /// The census time (unix seconds).
    pub at: u64,
    /// Nodes in the set.
    pub nodes: usize,
    /// Nodes whose Hello was read.
    pub with_hello: usize,
    /// Nodes whose Status was read.
    pub with_status: usize,
    /// Client names (the first part of the client id).
    pub clients: Vec<Row>,
    /// Client name and version (the second part, up to `-` or `+`).
    pub client_versions: Vec<Row>,
    /// eth versions offered in Hello.
    pub eth_versions: Vec<Row>,
    /// Network ids from Status.
    pub networks: Vec<Row>,
    /// TCP ports of the records (`none` without one).
    pub ports: Vec<Row>,
    /// Fork readiness.
    pub readiness: Readiness,
    /// Nodes over time.
    pub seen: Vec<Seen>,
}

/// Cuts a network-supplied name to [`MAX_NAME`] characters, control characters replaced.
pub fn clean(name: &str) -> String {
    let s: String = name
        .chars()
        .take(MAX_NAME)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if s.is_empty() { "(empty)".into() } else { s }
}

/// Splits a client id `Name/vX.Y.Z-extra/os/runtime` into name and version.
pub fn client(id: &str) -> (String, String) {
    let mut parts = id.split('/');
    let name = clean(parts.next().unwrap_or_default());
    let version = parts
        .next()
        .map(|v| v.split(['-', '+']).next().unwrap_or(v))
        .map(clean)
        .unwrap_or_else(|| "(none)".into());
    (name, version)
}

/// Rows by count (largest first, then by name), the rows past [`TOP`] summed as `other`.
fn table(counts: BTreeMap<String, usize>) -> Vec<Row> {
    let mut rows: Vec<Row> = counts
        .into_iter()
        .map(|(name, count)| Row { name, count })
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.name.cmp(&b.name)));
    if rows.len() > TOP {
        let other: usize = rows.drain(TOP..).map(|r| r.count).sum();
        rows.push(Row {
            name: "other".into(),
            count: other,
        });
    }
    rows
}

fn count<'a>(items: impl IntoIterator<Item = String> + 'a) -> Vec<Row> {
    let mut m = BTreeMap::new();
    for i in items {
        *m.entry(i).or_insert(0) += 1;
    }
    table(m)
}

/// The fork id of a record's `eth` entry (`[[hash, next], ...]`, EIP-2124).
pub fn enr_fork_id(e: &Entry) -> Option<ForkId> {
    let mut raw = e.record.eth()?;
    let outer = alloy_rlp::Header::decode(&mut raw).ok()?;
    if !outer.list {
        return None;
    }
    <ForkId as alloy_rlp::Decodable>::decode(&mut raw).ok()
}

/// The head block number the census assumes: every block-numbered fork passed (the
/// public networks are past the merge; their later forks are timestamps).
fn head_number(filter: &forkid::Filter) -> u64 {
    filter.block_forks().last().copied().unwrap_or(0)
}

fn readiness(spec: &Spec, at: u64, set: &NodeSet) -> Readiness {
    let filter = spec.fork_filter();
    let head = head_number(&filter);
    let current = filter.fork_id(head, at);
    let genesis = format!("{:#x}", spec.genesis_hash);
    let mut m: BTreeMap<String, usize> = BTreeMap::new();
    for e in set.values() {
        let status = e.status.as_ref();
        let fid = status
            .map(|s| ForkId::from(s.fork_id))
            .or_else(|| enr_fork_id(e));
        let class = match fid {
            None => "no fork id",
            Some(_) if status.is_some_and(|s| !s.genesis.eq_ignore_ascii_case(&genesis)) => {
                "other chain"
            }
            Some(f) => match filter.validate(f, head, at) {
                Err(forkid::Error::RemoteStale) => "stale",
                Err(forkid::Error::LocalIncompatibleOrStale) => "incompatible",
                Ok(()) if f.hash != current.hash => "behind",
                Ok(()) if current.next != 0 && f.next == current.next => "ready",
                Ok(()) => "not ready",
            },
        };
        *m.entry(class.to_owned()).or_insert(0) += 1;
    }
    Readiness {
        current: format!("0x{}/{}", hex::encode(current.hash), current.next),
        next_fork: (current.next != 0).then_some(current.next),
        counts: table(m),
    }
}

fn seen(set: &NodeSet) -> Vec<Seen> {
    let answered: Vec<(u64, u64)> = set
        .values()
        .filter(|e| e.first_response != 0)
        .map(|e| (e.first_response, e.last_response.max(e.first_response)))
        .collect();
    let (Some(start), Some(end)) = (
        answered.iter().map(|a| a.0).min(),
        answered.iter().map(|a| a.1).max(),
    ) else {
        return Vec::new();
    };
    let span = end - start;
    let steps = (TIME_POINTS as u64 - 1).min(span).max(1);
    (0..=steps)
        .map(|i| {
            let time = start + span * i / steps;
            Seen {
                time,
                found: answered.iter().filter(|a| a.0 <= time).count(),
                live: answered
                    .iter()
                    .filter(|a| a.0 <= time && time <= a.1)
                    .count(),
            }
        })
        .collect()
}

/// The census of `set` for chain `spec` at unix time `at`.
pub fn census(set: &NodeSet, spec: &Spec, at: u64) -> Census {
    let hellos: Vec<&super::nodeset::HelloInfo> =
        set.values().filter_map(|e| e.hello.as_ref()).collect();
    let clients = count(hellos.iter().map(|h| client(&h.client_id).0));
    let client_versions = count(hellos.iter().map(|h| {
        let (n, v) = client(&h.client_id);
        format!("{n} {v}")
    }));
    let eth_versions = count(hellos.iter().flat_map(|h| {
        let mut v: Vec<String> = h
            .caps
            .iter()
            .filter(|c| c.starts_with("eth/"))
            .map(|c| clean(c))
            .collect();
        v.sort();
        v.dedup();
        v
    }));
    let networks = count(
        set.values()
            .filter_map(|e| e.status.as_ref())
            .map(|s| s.network_id.to_string()),
    );
    let ports = count(set.values().map(|e| match e.record.tcp() {
        Some(p) => p.to_string(),
        None => "none".into(),
    }));
    Census {
        chain: spec.name.clone(),
        at,
        nodes: set.len(),
        with_hello: hellos.len(),
        with_status: set.values().filter(|e| e.status.is_some()).count(),
        clients,
        client_versions,
        eth_versions,
        networks,
        ports,
        readiness: readiness(spec, at, set),
        seen: seen(set),
    }
}

/// The count of `name` in `rows` (0 when absent): for tests and scripts.
pub fn lookup(rows: &[Row], name: &str) -> usize {
    rows.iter().find(|r| r.name == name).map_or(0, |r| r.count)
}

impl Census {
    /// The tables, in report order: (file stem, title, rows).
    pub fn tables(&self) -> Vec<(&'static str, &'static str, &[Row])> {
        vec![
            ("clients", "Client share", &self.clients),
            ("client-versions", "Client versions", &self.client_versions),
            ("eth-versions", "eth versions offered", &self.eth_versions),
            ("fork-readiness", "Fork readiness", &self.readiness.counts),
            ("networks", "Network ids", &self.networks),
            ("ports", "TCP ports", &self.ports),
        ]
    }

    /// The census as Markdown, with the plots (`<stem>.svg` beside it) inline.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Census of {} nodes\n\nChain `{}` at {}. Hello read from {} nodes, Status from {}.\n",
            self.nodes,
            md(&self.chain),
            super::nodeset::time::format(self.at),
            self.with_hello,
            self.with_status,
        );
        for (stem, title, rows) in self.tables() {
            s += &format!("\n## {title}\n\n");
            if stem == "fork-readiness" {
                s += &match self.readiness.next_fork {
                    Some(n) => format!(
                        "Current fork id `{}`; next fork at {n}.\n\n",
                        self.readiness.current
                    ),
                    None => format!(
                        "Current fork id `{}`; no fork scheduled.\n\n",
                        self.readiness.current
                    ),
                };
            }
            s += &format!("![{title}]({stem}.svg)\n\n| {title} | nodes |\n|---|---:|\n");
            for r in rows {
                s += &format!("| {} | {} |\n", md(&r.name), r.count);
            }
        }
        s += "\n## Nodes over time\n\n![Nodes over time](nodes-over-time.svg)\n\n| time | found | live |\n|---|---:|---:|\n";
        for p in &self.seen {
            s += &format!(
                "| {} | {} | {} |\n",
                super::nodeset::time::format(p.time),
                p.found,
                p.live
            );
        }
        s
    }

    /// The census as CSV: `table,name,count` rows (and `seen,<time>,<found>/<live>`).
    pub fn to_csv(&self) -> String {
        let mut s = String::from("table,name,count\n");
        for (stem, _, rows) in self.tables() {
            for r in rows {
                s += &format!("{stem},{},{}\n", csv(&r.name), r.count);
            }
        }
        for p in &self.seen {
            s += &format!("found,{},{}\nlive,{},{}\n", p.time, p.found, p.time, p.live);
        }
        s
    }
}

/// Escapes a Markdown table cell.
fn md(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('`', "'")
}

/// Quotes a CSV field when needed.
fn csv(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_split_into_name_and_version() {
        assert_eq!(
            client("Geth/v1.14.0-stable-abc/linux-amd64/go1.22"),
            ("Geth".into(), "v1.14.0".into())
        );
        assert_eq!(
            client("Nethermind/v1.25.4+20b10b35/linux-x64/dotnet8"),
            ("Nethermind".into(), "v1.25.4".into())
        );
        assert_eq!(client("weird"), ("weird".into(), "(none)".into()));
        assert_eq!(client("").0, "(empty)");
        let long = format!("{}\n/v1", "x".repeat(2000));
        assert_eq!(client(&long).0.len(), MAX_NAME);
    }

    #[test]
    fn tables_keep_the_top_rows() {
        let rows = count((0..40).map(|i| format!("c{}", i % 20)));
        assert_eq!(rows.len(), TOP + 1);
        assert_eq!(rows.last().unwrap().name, "other");
        assert_eq!(rows.iter().map(|r| r.count).sum::<usize>(), 40);
        assert_eq!(md("a|b"), "a\\|b");
        assert_eq!(csv("a,\"b"), "\"a,\"\"b\"");
    }
}
