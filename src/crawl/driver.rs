//! The tokio driver of a crawl: one task running the discv4 [`Protocol`] over a UDP
//! socket, the v4 [`Checks`], the [`Crawler`] core, DNS node lists and the RLPx probes
//! (each a task, at most `max_dials` at once), until the timeout or the stop future.
//!
//! Outgoing datagrams pass a token bucket ([`Settings::packets_per_sec`]); what waits
//! is bounded ([`MAX_OUTGOING`], the oldest dropped beyond it), and lookups start only
//! when the send queue is short and the core wants candidates, so the crawl never
//! sends faster than asked. Incoming packets go through the protocol's own checks
//! (size, signature, per-IP rate limit, unsolicited answers dropped, at most 16 nodes
//! taken from a Neighbours reply).

use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use discovery::dns::{Client, TreeUrl, driver as dns};
use discovery::packet::MAX_PACKET_SIZE;
use discovery::proto::Transmit;
use discovery::{Event, Node, Protocol};
use secp256k1::SecretKey;
use secp256k1::rand::SeedableRng;
use secp256k1::rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::core::{Action, Candidate, Crawler, Progress, Rate};
use super::nodeset::{self, NodeSet};
use super::probe::Prober;
use super::v4::{Checks, Step};

/// Datagrams waiting for the send rate, at most: a few seconds at the default rate; a
/// lookup is not started while more than [`LOOKUP_QUEUE`] wait.
pub const MAX_OUTGOING: usize = 1024;
/// Send-queue length under which a new lookup may start.
const LOOKUP_QUEUE: usize = 16;
/// Nodes from DNS lists waiting for the core, at most (the DNS driver waits beyond it).
const DNS_QUEUE: usize = 64;
/// Longest pause between lookups that find nothing new (a small or fully crawled
/// network): doubled from [`LOOKUP_BACKOFF_MIN`] per fruitless lookup, reset by one that
/// finds a new node.
const LOOKUP_BACKOFF_MAX: Duration = Duration::from_secs(30);
const LOOKUP_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Random table nodes offered as candidates after each lookup (the lookup's own result
/// is the 16 closest that answered; the table holds more that were only mentioned).
const TABLE_SAMPLE: usize = 16;

/// Crawl errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The UDP socket could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// Our discovery record could not be built.
    #[error(transparent)]
    Enr(#[from] discovery::enr::EnrError),
    /// A DNS list could not be used.
    #[error("DNS discovery: {0}")]
    Dns(#[from] discovery::dns::Error),
}

/// Settings of one crawl.
pub struct Settings {
    /// Our discovery identity (a fresh key per crawl is fine).
    pub key: SecretKey,
    /// UDP address to bind. Default `0.0.0.0:0`.
    pub bind: SocketAddr,
    /// Walk discovery v4 (lookups); off, only the input and the DNS lists are checked.
    pub v4: bool,
    /// Discovery settings (bootnodes, timeouts); `tcp_port` stays 0: we do not listen.
    pub discovery: discovery::Config,
    /// EIP-1459 lists to take nodes from.
    pub dns: Vec<TreeUrl>,
    /// The DNS server for the lists (tests), instead of the system's.
    pub dns_resolver: Option<SocketAddr>,
    /// Discovery datagrams sent per second, at most. Default 200.
    pub packets_per_sec: f64,
    /// Limits of the core.
    pub crawl: super::core::Config,
    /// How long to crawl.
    pub timeout: Duration,
    /// Where to save the set every [`Settings::save_interval`] (so a killed crawl
    /// resumes from there), if anywhere.
    pub save: Option<PathBuf>,
    /// Default 30 s.
    pub save_interval: Duration,
    /// A progress line on stderr (info level, target `crawl`) this often; zero: none.
    pub progress_interval: Duration,
}

impl Settings {
    /// Defaults around `key`.
    pub fn new(key: SecretKey) -> Self {
        Self {
            key,
            bind: SocketAddr::from(([0, 0, 0, 0], 0)),
            v4: true,
            discovery: discovery::Config::default(),
            dns: Vec::new(),
            dns_resolver: None,
            packets_per_sec: 200.0,
            crawl: super::core::Config::default(),
            timeout: Duration::from_secs(30 * 60),
            save: None,
            save_interval: Duration::from_secs(30),
            progress_interval: Duration::from_secs(8),
        }
    }
}

/// What a crawl returns.
pub struct Outcome {
    /// The node set.
    pub nodes: NodeSet,
    /// The last counters.
    pub progress: Progress,
    /// Datagrams sent, and dropped while waiting for the send rate.
    pub sent: u64,
    /// Datagrams dropped from the full send queue.
    pub send_dropped: u64,
}

struct Driver {
    proto: Protocol,
    socket: UdpSocket,
    checks: Checks,
    crawler: Crawler,
    outgoing: VecDeque<Transmit>,
    send_rate: Rate,
    lookup_running: bool,
    /// No lookup before this; pushed back while lookups find nothing new.
    lookup_at: Instant,
    lookup_backoff: Duration,
    v4: bool,
    dials: JoinSet<(discovery::NodeId, Result<super::core::Probe, String>)>,
    prober: Prober,
    sent: u64,
    send_dropped: u64,
}

/// Crawls from `input` (the set of an earlier crawl, possibly empty) until the timeout or
/// `stop`, probing nodes with `prober`.
pub async fn crawl(
    settings: Settings,
    prober: Prober,
    input: NodeSet,
    stop: impl Future<Output = ()>,
) -> Result<Outcome, Error> {
    let socket = UdpSocket::bind(settings.bind)
        .await
        .map_err(|source| Error::Bind {
            addr: settings.bind,
            source,
        })?;
    let local = socket.local_addr().map_err(|source| Error::Bind {
        addr: settings.bind,
        source,
    })?;
    let now = Instant::now();
    let unix = unix_now();
    // Bootnodes are discovery v4's entry points: checked only when walking v4.
    let bootnodes = if settings.v4 {
        settings.discovery.bootnodes.clone()
    } else {
        Vec::new()
    };
    let mut dconfig = settings.discovery.clone();
    dconfig.tcp_port = 0;
    if !settings.v4 {
        dconfig.bootnodes.clear();
    }
    let proto = Protocol::new(
        settings.key,
        local,
        dconfig,
        now.into_std(),
        unix,
        StdRng::from_os_rng(),
        1,
    )?;
    let mut crawler = Crawler::new(settings.crawl.clone(), input, now.into_std(), unix);
    for b in bootnodes {
        crawler.on_candidate(
            now.into_std(),
            Candidate {
                node: b,
                record: None,
            },
        );
    }
    let (dns_tx, mut dns_rx) = mpsc::channel(DNS_QUEUE);
    let _dns = if settings.dns.is_empty() {
        drop(dns_tx);
        None
    } else {
        let resolver = match settings.dns_resolver {
            Some(a) => dns::Resolver::At(a),
            None => dns::Resolver::System,
        };
        let client = Client::new(
            settings.dns.clone(),
            discovery::dns::Config::default(),
            now.into_std(),
        );
        Some(dns::spawn(client, &resolver, dns_tx)?)
    };
    info!(target: "crawl", %local, input = crawler.nodes().len(), "crawl started");
    let mut d = Driver {
        proto,
        socket,
        checks: Checks::default(),
        crawler,
        outgoing: VecDeque::new(),
        send_rate: Rate::new(
            settings.packets_per_sec,
            settings.packets_per_sec,
            now.into_std(),
        ),
        lookup_running: false,
        lookup_at: now,
        lookup_backoff: Duration::ZERO,
        v4: settings.v4,
        dials: JoinSet::new(),
        prober,
        sent: 0,
        send_dropped: 0,
    };
    let end = now + settings.timeout;
    let never = now + Duration::from_secs(365 * 86_400);
    let tick = |i: Duration| if i.is_zero() { never } else { now + i };
    let mut progress_at = tick(settings.progress_interval);
    let mut save_at = match settings.save {
        Some(_) => tick(settings.save_interval),
        None => never,
    };
    let mut buf = vec![0u8; MAX_PACKET_SIZE * 2];
    let mut dns_open = !settings.dns.is_empty();
    tokio::pin!(stop);
    loop {
        let now = Instant::now();
        d.pump(now).await;
        if now >= end {
            break;
        }
        if now >= progress_at {
            progress_at = now + settings.progress_interval;
            let p = d.crawler.progress();
            info!(target: "crawl", nodes = p.nodes, added = p.added, updated = p.updated,
                removed = p.removed, unreachable = p.unreachable, checking = p.checking,
                dialing = p.dialing, probed = p.probed, probe_failed = p.probe_failed,
                dropped = p.dropped, sent = d.sent, "crawling");
        }
        if now >= save_at
            && let Some(path) = settings.save.clone()
        {
            save_at = now + settings.save_interval;
            let set = d.crawler.nodes().clone();
            // Serializing and writing tens of MB: off the runtime's threads.
            tokio::task::spawn_blocking(move || {
                if let Err(e) = nodeset::save(&path, &set) {
                    warn!(target: "crawl", error = %e, "saving the node set failed");
                }
            });
        }
        let wake = d.next_wake(now).min(end).min(progress_at).min(save_at);
        tokio::select! {
            r = d.socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    d.proto.handle_packet(Instant::now().into_std(), from, data);
                }
                Err(e) => debug!(target: "crawl", error = %e, "receive failed"),
            },
            Some(done) = d.dials.join_next(), if !d.dials.is_empty() => {
                if let Ok((id, result)) = done {
                    d.crawler.on_dial(Instant::now().into_std(), id, result);
                }
            }
            n = dns_rx.recv(), if dns_open => match n {
                Some(node) => {
                    d.crawler.on_candidate(
                        Instant::now().into_std(),
                        Candidate { node, record: None },
                    );
                }
                None => dns_open = false,
            },
            _ = tokio::time::sleep_until(wake) => {
                let now = Instant::now().into_std();
                d.proto.handle_timeout(now);
                d.checks.handle_timeout(now);
            }
            _ = &mut stop => break,
        }
    }
    d.dials.abort_all();
    let progress = d.crawler.progress();
    info!(target: "crawl", nodes = progress.nodes, added = progress.added, probed = progress.probed, sent = d.sent, "crawl done");
    Ok(Outcome {
        nodes: d.crawler.into_nodes(),
        progress,
        sent: d.sent,
        send_dropped: d.send_dropped,
    })
}

impl Driver {
    /// Moves work between the parts until none has anything new, then sends what the
    /// rate allows.
    async fn pump(&mut self, now: Instant) {
        let std_now = now.into_std();
        loop {
            let mut moved = false;
            while let Some(e) = self.proto.poll_event() {
                moved = true;
                match e {
                    Event::Bonded(n) => self.checks.on_bonded(std_now, &n.id),
                    Event::PingFailed(id) => self.checks.on_ping_failed(&id),
                    Event::Enr(enr) => self.checks.on_enr(enr),
                    Event::LookupDone { nodes, .. } => {
                        self.lookup_running = false;
                        let sample = self.proto.random_nodes(TABLE_SAMPLE);
                        let mut new = false;
                        for node in nodes.into_iter().chain(sample) {
                            new |= self.candidate(std_now, node);
                        }
                        self.lookup_backoff = if new {
                            Duration::ZERO
                        } else {
                            (self.lookup_backoff * 2).clamp(LOOKUP_BACKOFF_MIN, LOOKUP_BACKOFF_MAX)
                        };
                        self.lookup_at = now + self.lookup_backoff;
                    }
                    Event::Removed(_) | Event::LocalEnrUpdated(_) => {}
                }
            }
            for step in self.checks.drain_steps() {
                moved = true;
                match step {
                    Step::Ping(n) => self.proto.ping(std_now, n),
                    Step::RequestEnr(n) => self.proto.request_enr(std_now, n),
                    Step::Done(id, enr) => self.crawler.on_check(std_now, id, enr),
                }
            }
            while let Some(a) = self.crawler.poll_action(std_now) {
                moved = true;
                match a {
                    Action::Check(n) => self.checks.start(std_now, n),
                    Action::Dial(n) => {
                        let prober = self.prober.clone();
                        self.dials.spawn(async move {
                            let r = prober.probe(n).await.map_err(|e| e.to_string());
                            (n.id, r)
                        });
                    }
                }
            }
            while let Some(t) = self.proto.poll_transmit() {
                moved = true;
                if self.outgoing.len() >= MAX_OUTGOING {
                    self.outgoing.pop_front();
                    self.send_dropped += 1;
                }
                self.outgoing.push_back(t);
            }
            if self.v4
                && !self.lookup_running
                && now >= self.lookup_at
                && self.outgoing.len() < LOOKUP_QUEUE
                && self.crawler.wants_candidates()
            {
                let target = self.proto.random_target();
                self.proto.lookup(std_now, target);
                self.lookup_running = true;
                moved = true;
            }
            if !moved {
                break;
            }
        }
        while !self.outgoing.is_empty() && self.send_rate.take(std_now) {
            let Some(t) = self.outgoing.pop_front() else {
                break;
            };
            self.sent += 1;
            if let Err(e) = self.socket.send_to(&t.data, t.to).await {
                debug!(target: "crawl", to = %t.to, error = %e, "send failed");
            }
        }
    }

    fn candidate(&mut self, now: std::time::Instant, node: Node) -> bool {
        self.crawler
            .on_candidate(now, Candidate { node, record: None })
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let std_now = now.into_std();
        let mut at = self.crawler.next_timeout(std_now);
        for t in [self.proto.next_timeout(), self.checks.next_timeout()]
            .into_iter()
            .flatten()
        {
            at = at.min(t);
        }
        if !self.outgoing.is_empty()
            && let Some(t) = self.send_rate.ready_at(std_now)
        {
            at = at.min(t);
        }
        if self.v4 && !self.lookup_running && self.lookup_at > now {
            at = at.min(self.lookup_at.into_std());
        }
        Instant::from_std(at.max(std_now))
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
