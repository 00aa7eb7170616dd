//! Configuration of the discovery [`Protocol`](crate::Protocol).

use std::net::IpAddr;
use std::time::Duration;

use crate::cidr::NetRestrict;
use crate::node::Node;

/// Discovery settings. `Config::default()` suits a mainnet node.
#[derive(Clone, Debug)]
pub struct Config {
    /// Nodes contacted when the table is empty. Default: none.
    pub bootnodes: Vec<Node>,
    /// When set, only addresses inside these networks are contacted, answered or stored.
    /// Default: unrestricted.
    pub netrestrict: Option<NetRestrict>,
    /// A fixed external IP for our record (`--nat extip:IP`). Default: `None`, learned from
    /// the `to` field of Pongs by majority vote.
    pub external_ip: Option<IpAddr>,
    /// The RLPx TCP port advertised in Pings and the record; 0 for none. Default: 0.
    pub tcp_port: u16,
    /// How long an endpoint proof lasts. Default: 12 h (discv4.md "Endpoint Proof").
    pub bond_expiration: Duration,
    /// How long to wait for a Pong or Neighbors. Default: 500 ms (go-ethereum `respTimeout`).
    pub request_timeout: Duration,
    /// How long to wait for the remote's ping after ours, before sending FindNode anyway.
    /// Default: 500 ms (discv4.md "Known Issues": wait for a ping from the other side).
    pub bond_wait: Duration,
    /// Upper bound of the random revalidation interval. Default: 10 s.
    pub revalidate_interval: Duration,
    /// Period of the table refresh (self lookup plus random lookups). Default: 30 min.
    pub refresh_interval: Duration,
    /// Random-target lookups after the self lookup in a refresh, aimed at the farthest
    /// buckets that are not full. Default: 3 (as go-ethereum).
    pub refresh_random_lookups: usize,
    /// Below this many entries the table counts as nearly empty and is refreshed at once
    /// (at most every `revalidate_interval`). Default: 4.
    pub nearly_empty: usize,
    /// Lifetime we put in outgoing `expiration` fields. Default: 20 s (go-ethereum).
    pub packet_lifetime: Duration,
    /// Sustained packets per second accepted from one IP. Default: 50: a full lookup by a
    /// peer costs a few packets, while a flood is cut before signature recovery.
    pub rate_limit: u32,
    /// Burst allowance per IP. Default: 100.
    pub rate_burst: u32,
    /// Cap on remote nodes with bonding state, bounding memory under floods of fresh ids.
    /// When full, stale and unverified entries go first, then the least recently proven
    /// bond; each IP keeps at most [`crate::proto::BONDS_PER_IP`] bonds. Default: 10 000.
    pub max_peers: usize,
    /// Votes needed (and kept) before the majority external IP is adopted. Default: 3 of the
    /// last 20 Pongs.
    pub min_votes: usize,
    /// How often the service hands bonds buffered in memory to its database writer (and
    /// at shutdown). Default: 10 s: a node killed outright loses at most this much of
    /// its bonds, which it makes again on the next start, while each write is one redb
    /// commit (an fsync) for a whole batch, not one per bond.
    pub db_flush_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bootnodes: Vec::new(),
            netrestrict: None,
            external_ip: None,
            tcp_port: 0,
            bond_expiration: Duration::from_secs(12 * 3600),
            request_timeout: Duration::from_millis(500),
            bond_wait: Duration::from_millis(500),
            revalidate_interval: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(30 * 60),
            refresh_random_lookups: 3,
            nearly_empty: 4,
            packet_lifetime: Duration::from_secs(20),
            rate_limit: 50,
            rate_burst: 100,
            max_peers: 10_000,
            min_votes: 3,
            db_flush_interval: Duration::from_secs(10),
        }
    }
}
