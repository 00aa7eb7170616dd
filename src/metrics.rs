//! Prometheus metrics: the text exposition format at `GET /metrics`.
//!
//! [`serve`] answers scrapes on a bound listener through the bounded HTTP server of
//! [`crate::rpc::http`]; [`Source::render`] builds the text from the live counters of a
//! [`server::Handle`] and, when given, a [`discovery::Handle`].
//!
//! The exposition is rendered by hand on each scrape rather than through the `metrics` +
//! `metrics-exporter-prometheus` crates: every value already lives in an atomic counter
//! or a small map of the server and discovery service, so a registry would only copy
//! them, and the format is a few lines of text (the exporter also pulls in a hashing and
//! quantile stack we do not use).
//!
//! # Families
//!
//! | name | type | labels |
//! |---|---|---|
//! | `devp2p_peers` | gauge | `direction` = `inbound` / `outbound` |
//! | `devp2p_dials_started_total` | counter | |
//! | `devp2p_dials_total` | counter | `outcome` = `ok` / `failed` (reached Hello or not) |
//! | `devp2p_handshake_seconds` | histogram | `direction` (successful handshakes, TCP connection to Hello) |
//! | `devp2p_handshake_failures_total` | counter | `reason` (inbound handshakes) |
//! | `devp2p_rejected_total` | counter | `reason` (admission after Hello) |
//! | `devp2p_inbound_rejected_total` | counter | `reason` (before the handshake) |
//! | `devp2p_disconnects_total` | counter | `reason` (`local: …` / `remote: …`) |
//! | `devp2p_protocol_messages_total` | counter | `protocol`, `direction` = `in` / `out` |
//! | `devp2p_protocol_bytes_total` | counter | `protocol`, `direction` |
//! | `devp2p_discovery_table_nodes` | gauge | |
//! | `devp2p_discovery_packets_total` | counter | `direction` = `in` / `out` |
//! | `devp2p_discovery_dropped_total` | counter | `reason` |
//! | `devp2p_chain_head_block` | gauge | (with a chain, [`Source::with_chain`]) |
//! | `devp2p_sync_syncing` | gauge | 0 or 1 (with a sync task) |
//! | `devp2p_sync_current_block` | gauge | |
//! | `devp2p_sync_highest_block` | gauge | |
//! | `devp2p_txpool_transactions` | gauge | (with the pool, [`Source::with_pool`]) |
//! | `devp2p_txpool_bytes` | gauge | network encoding held |
//! | `devp2p_eth_message_handling_seconds` | histogram | `message` (eth message name; with eth, [`Source::with_eth`]) |
//! | `devp2p_eth_request_seconds` | histogram | `request` = `headers` / `bodies` / `pooled_transactions` / `cells` (round trip of our requests) |
//!
//! ## eth latencies
//!
//! The two eth histograms come from [`protocols::eth::metrics::Metrics`], shared by every
//! eth session. Their labels are fixed sets (the spec's message names, our four request
//! kinds), never peer-supplied strings; a message type's series appear once one such
//! message has been handled.
//!
//! ## Protocol traffic
//!
//! RLPx counts each peer's traffic per negotiated subprotocol
//! ([`rlpx::peer::Stats::protocols`]); the families sum it over peers by protocol name
//! (`protocol="eth"`, `protocol="snap"`, a custom protocol's name). Label values are
//! bounded to our own protocols' names, since only those are negotiated. Base-protocol
//! messages (ping, pong) are not counted here; bytes are uncompressed payloads.
//!
//! Counters must not go down across peers leaving, so [`serve`] follows peer events and
//! keeps the final counts of departed peers; each series is also never reported below
//! its previous value. Peers that come and go while the event stream lags are not
//! counted.
//!
//! ## Discovery
//!
//! [`discovery::proto::Metrics`] counts packets in and out and drops by reason, not by
//! packet kind, so `devp2p_discovery_packets_total` has a `direction` label only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use discovery::NodeId;
use hyper::{Method, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use crate::chain::Store;
use crate::rpc::http::{self, Endpoint, Limits, Reply};
use crate::server::{self, PeerEvent, PeerSummary};
use crate::sync;

/// The Prometheus text format content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a scrape waits for the discovery service before leaving its families out.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the numbers come from.
pub struct Source {
    server: server::Handle,
    discovery: Option<discovery::Handle>,
    traffic: Mutex<Traffic>,
    store: Option<Arc<Store>>,
    sync: Option<sync::Handle>,
    pool: Option<Arc<protocols::eth::pool::Pool>>,
    eth: Option<Arc<protocols::eth::metrics::Metrics>>,
}

/// Per-protocol traffic of one set of peers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    messages_in: u64,
    messages_out: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl Counts {
    /// A peer's traffic per negotiated protocol name.
    fn of(p: &PeerSummary) -> impl Iterator<Item = (&str, Self)> {
        let stats = &p.info.stats.protocols;
        p.info.shared.iter().zip(stats.iter()).map(|(shared, s)| {
            let c = Self {
                messages_in: s.messages_in.load(Ordering::Relaxed),
                messages_out: s.messages_out.load(Ordering::Relaxed),
                bytes_in: s.bytes_in.load(Ordering::Relaxed),
                bytes_out: s.bytes_out.load(Ordering::Relaxed),
            };
            (shared.cap.name.as_str(), c)
        })
    }

    fn add(&mut self, o: Self) {
        self.messages_in = self.messages_in.saturating_add(o.messages_in);
        self.messages_out = self.messages_out.saturating_add(o.messages_out);
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
    }

    /// Field-wise maximum.
    fn at_least(self, o: Self) -> Self {
        Self {
            messages_in: self.messages_in.max(o.messages_in),
            messages_out: self.messages_out.max(o.messages_out),
            bytes_in: self.bytes_in.max(o.bytes_in),
            bytes_out: self.bytes_out.max(o.bytes_out),
        }
    }
}

/// Peer traffic bookkeeping that keeps the protocol counters monotonic.
#[derive(Default)]
struct Traffic {
    /// Peers known from `Added` events (or a resync), not yet retired.
    tracked: HashMap<NodeId, Arc<PeerSummary>>,
    /// Final counts of departed peers, by protocol label.
    retired: BTreeMap<String, Counts>,
    /// Last values reported, by protocol label.
    reported: BTreeMap<String, Counts>,
}

impl Traffic {
    fn add(&mut self, p: Arc<PeerSummary>) {
        if let Some(old) = self.tracked.insert(p.id, p.clone())
            && !Arc::ptr_eq(&old, &p)
        {
            self.retire(&old);
        }
    }

    fn remove(&mut self, id: &NodeId) {
        if let Some(p) = self.tracked.remove(id) {
            self.retire(&p);
        }
    }

    fn retire(&mut self, p: &PeerSummary) {
        for (name, c) in Counts::of(p) {
            self.retired.entry(name.to_owned()).or_default().add(c);
        }
    }

    /// After missed events: retire tracked peers that are gone, track the live ones.
    fn resync(&mut self, live: Vec<Arc<PeerSummary>>) {
        let gone: Vec<NodeId> = self
            .tracked
            .iter()
            .filter(|(id, p)| !live.iter().any(|l| l.id == **id && Arc::ptr_eq(l, p)))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.remove(&id);
        }
        for p in live {
            self.add(p);
        }
    }
}

/// The protocol label of a peer: its negotiated protocol names joined with `+`.
impl Source {
    /// Numbers from a running server and, if it runs, the discovery service.
    pub fn new(server: server::Handle, discovery: Option<discovery::Handle>) -> Self {
        Self {
            server,
            discovery,
            traffic: Mutex::new(Traffic::default()),
            store: None,
            sync: None,
            pool: None,
            eth: None,
        }
    }

    /// Adds the chain head and, when it runs, the sync task's progress.
    pub fn with_chain(mut self, store: Arc<Store>, sync: Option<sync::Handle>) -> Self {
        self.store = Some(store);
        self.sync = sync;
        self
    }

    /// Adds the transaction pool gauges.
    pub fn with_pool(mut self, pool: Arc<protocols::eth::pool::Pool>) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Adds the eth handlers' latency histograms.
    pub fn with_eth(mut self, metrics: Arc<protocols::eth::metrics::Metrics>) -> Self {
        self.eth = Some(metrics);
        self
    }

    /// Follows peer events until the server's event channel closes, keeping departed
    /// peers' traffic in the protocol counters. [`serve`] runs this.
    pub async fn track_peers(&self) {
        let mut events = self.server.subscribe();
        self.lock().resync(self.server.peers());
        loop {
            match events.recv().await {
                Ok(PeerEvent::Added(p)) => self.lock().add(p),
                Ok(PeerEvent::Dropped { id, .. }) => self.lock().remove(&id),
                Err(RecvError::Lagged(missed)) => {
                    debug!(target: "metrics", missed, "peer events lagged; resyncing");
                    self.lock().resync(self.server.peers());
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Traffic> {
        self.traffic.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Per-protocol traffic: departed peers plus live ones, never below the last report.
    fn protocol_traffic(&self) -> BTreeMap<String, Counts> {
        let mut t = self.lock();
        // The snapshot is taken under the lock: the server removes a peer from its set
        // before announcing the drop, so a retired peer is never also in the snapshot.
        let live = self.server.peers();
        let mut totals = t.retired.clone();
        let mut seen = HashSet::new();
        for p in live.iter().chain(t.tracked.values()) {
            if seen.insert(Arc::as_ptr(p)) {
                for (name, c) in Counts::of(p) {
                    totals.entry(name.to_owned()).or_default().add(c);
                }
            }
        }
        for (label, c) in totals.iter_mut() {
            let last = t.reported.entry(label.clone()).or_default();
            *c = c.at_least(*last);
            *last = *c;
        }
        totals
    }

    /// The exposition text of every family.
    pub async fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let (inbound, outbound) = self.server.peer_counts();
        family(
            &mut out,
            "devp2p_peers",
            "gauge",
            "Connected peers by who dialled.",
        );
        sample(
            &mut out,
            "devp2p_peers",
            &[("direction", "inbound")],
            inbound as u64,
        );
        sample(
            &mut out,
            "devp2p_peers",
            &[("direction", "outbound")],
            outbound as u64,
        );

        let stats = self.server.stats();
        let name = "devp2p_dials_started_total";
        family(&mut out, name, "counter", "Outbound dials started.");
        sample(&mut out, name, &[], stats.dials.load(Ordering::Relaxed));
        let name = "devp2p_dials_total";
        family(
            &mut out,
            name,
            "counter",
            "Finished dials: ok reached Hello.",
        );
        let ok = stats.dials_ok.load(Ordering::Relaxed);
        let failed = stats.dials_failed.load(Ordering::Relaxed);
        sample(&mut out, name, &[("outcome", "ok")], ok);
        sample(&mut out, name, &[("outcome", "failed")], failed);

        let name = "devp2p_handshake_seconds";
        family(
            &mut out,
            name,
            "histogram",
            "Time from TCP connection to a completed Hello, successful handshakes.",
        );
        stats
            .handshake_inbound
            .render(&mut out, name, "direction=\"inbound\"");
        stats
            .handshake_outbound
            .render(&mut out, name, "direction=\"outbound\"");

        let labelled = stats.labelled();
        for (kind, name, help) in [
            (
                "handshake_failed",
                "devp2p_handshake_failures_total",
                "Inbound handshakes that failed, by reason.",
            ),
            (
                "rejected",
                "devp2p_rejected_total",
                "Peers refused after Hello, by Disconnect reason.",
            ),
            (
                "inbound_rejected",
                "devp2p_inbound_rejected_total",
                "Inbound connections dropped before the handshake, by reason.",
            ),
            (
                "disconnects",
                "devp2p_disconnects_total",
                "Sessions ended, by side and reason.",
            ),
        ] {
            family(&mut out, name, "counter", help);
            for (_, label, value) in labelled.iter().filter(|(k, _, _)| *k == kind) {
                sample(&mut out, name, &[("reason", label)], *value);
            }
        }

        let traffic = self.protocol_traffic();
        type Pick = fn(&Counts) -> (u64, u64);
        let families: [(&str, &str, Pick); 2] = [
            (
                "devp2p_protocol_messages_total",
                "Subprotocol messages, by protocol.",
                |c| (c.messages_in, c.messages_out),
            ),
            (
                "devp2p_protocol_bytes_total",
                "Uncompressed subprotocol payload bytes, by protocol.",
                |c| (c.bytes_in, c.bytes_out),
            ),
        ];
        for (name, help, pick) in families {
            family(&mut out, name, "counter", help);
            for (p, c) in &traffic {
                let (inn, outn) = pick(c);
                sample(&mut out, name, &[("protocol", p), ("direction", "in")], inn);
                sample(
                    &mut out,
                    name,
                    &[("protocol", p), ("direction", "out")],
                    outn,
                );
            }
        }

        if let Some(d) = &self.discovery {
            self.render_discovery(&mut out, d).await;
        }
        self.render_chain(&mut out);
        self.render_eth(&mut out);
        out
    }

    fn render_eth(&self, out: &mut String) {
        let Some(eth) = &self.eth else { return };
        let name = "devp2p_eth_message_handling_seconds";
        family(
            out,
            name,
            "histogram",
            "Time to handle one eth message (decode, checks, queueing the answer), by type.",
        );
        for (message, h) in eth.handling().filter(|(_, h)| h.count() > 0) {
            h.render(out, name, &format!("message=\"{message}\""));
        }
        let name = "devp2p_eth_request_seconds";
        family(
            out,
            name,
            "histogram",
            "Round trip of our eth requests to the peer's answer, by request type.",
        );
        for (request, h) in eth.round_trips() {
            h.render(out, name, &format!("request=\"{request}\""));
        }
    }

    fn render_chain(&self, out: &mut String) {
        if let Some(store) = &self.store {
            match store.head() {
                Ok(head) => {
                    let name = "devp2p_chain_head_block";
                    family(out, name, "gauge", "Number of the chain head in the store.");
                    sample(out, name, &[], head.number);
                }
                Err(e) => debug!(target: "metrics", error = %e, "chain head unavailable"),
            }
        }
        if let Some(sync) = &self.sync {
            let s = sync.status();
            for (name, help, v) in [
                (
                    "devp2p_sync_syncing",
                    "1 while a sync round is under way.",
                    u64::from(s.syncing),
                ),
                (
                    "devp2p_sync_current_block",
                    "Head number as the sync task last saw it.",
                    s.current,
                ),
                (
                    "devp2p_sync_highest_block",
                    "Highest head a peer announced.",
                    s.highest,
                ),
            ] {
                family(out, name, "gauge", help);
                sample(out, name, &[], v);
            }
        }
        if let Some(pool) = &self.pool {
            let stats = pool.stats();
            for (name, help, v) in [
                (
                    "devp2p_txpool_transactions",
                    "Transactions in the pool.",
                    stats.count,
                ),
                (
                    "devp2p_txpool_bytes",
                    "Bytes of transactions in the pool.",
                    stats.bytes,
                ),
            ] {
                family(out, name, "gauge", help);
                sample(out, name, &[], v as u64);
            }
        }
    }

    async fn render_discovery(&self, out: &mut String, d: &discovery::Handle) {
        let within = |f| tokio::time::timeout(DISCOVERY_TIMEOUT, f);
        if let Ok(Ok(n)) = within(d.table_len()).await {
            let name = "devp2p_discovery_table_nodes";
            family(out, name, "gauge", "Nodes in the discovery table.");
            sample(out, name, &[], n as u64);
        }
        let Ok(Ok(m)) = tokio::time::timeout(DISCOVERY_TIMEOUT, d.metrics()).await else {
            debug!(target: "metrics", "discovery metrics unavailable");
            return;
        };
        let name = "devp2p_discovery_packets_total";
        family(out, name, "counter", "Discovery packets received and sent.");
        sample(out, name, &[("direction", "in")], m.received);
        sample(out, name, &[("direction", "out")], m.sent);
        let name = "devp2p_discovery_dropped_total";
        family(
            out,
            name,
            "counter",
            "Discovery packets dropped, by reason.",
        );
        for (reason, v) in [
            ("rate_limited", m.rate_limited),
            ("restricted", m.restricted),
            ("malformed", m.malformed),
            ("expired", m.expired),
            ("unsolicited", m.unsolicited),
            ("unbonded", m.unbonded),
        ] {
            sample(out, name, &[("reason", reason)], v);
        }
    }
}

/// `# HELP` and `# TYPE` lines of a family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line, label values escaped as the text format requires.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            for ch in v.chars() {
                match ch {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// HTTP limits of the metrics endpoint: scrapes are bodiless GETs.
fn limits() -> Limits {
    Limits {
        max_body_bytes: 4 * 1024,
        ..Limits::default()
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` completes, and follows peer
/// events meanwhile (see the module docs). Other paths get 404, other methods 405.
pub async fn serve(listener: TcpListener, source: Source, shutdown: impl Future<Output = ()>) {
    let source = Arc::new(source);
    if let Ok(addr) = listener.local_addr() {
        debug!(target: "metrics", %addr, "metrics endpoint listening");
    }
    let tracker = source.clone();
    let handler = move |req: http::Request| {
        let source = source.clone();
        async move {
            if req.path != "/metrics" {
                return Reply::status(StatusCode::NOT_FOUND);
            }
            if req.method != Method::GET {
                return Reply::method_not_allowed("GET");
            }
            Reply::ok(CONTENT_TYPE, source.render().await)
        }
    };
    let track = async move {
        tracker.track_peers().await;
        // The event channel closed: keep serving what remains.
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = http::serve(Endpoint::Metrics, listener, limits(), handler, shutdown) => {}
        _ = track => {}
    }
}
