//! The sans-IO crawl core: which node to check or dial next, at what rate, and what the
//! answers do to the node set. No sockets, no clock: the driver passes `now`.
//!
//! Nodes arrive as [`Candidate`]s from any source (discv4 lookups, DNS lists, and later
//! discv5). Each is first *checked* (a liveness check that also fetches its current
//! record: ping and ENRRequest on discv4), as go-ethereum's crawler does; a node that
//! answers enters the set (or gains score), one that does not loses half its score and
//! leaves at 0. A node whose record has a TCP port is then *dialled* (an RLPx probe:
//! Hello, `eth` Status, Disconnect), at most once per revalidation interval. Nodes of the
//! set not checked for [`Config::revalidate`] are checked again, so a resumed crawl
//! revalidates its input first.
//!
//! Everything held is bounded: the set ([`Config::max_nodes`]), the queues
//! ([`Config::max_queue`] each), checks and dials in flight ([`Config::max_checks`],
//! [`Config::max_dials`]); dials also by rate ([`Config::dials_per_sec`]). Candidates
//! beyond a bound are dropped and counted, never buffered.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use discovery::{Enr, Node, NodeId};

use super::nodeset::{Entry, HelloInfo, NodeSet, StatusInfo};

/// Limits and periods of a crawl.
#[derive(Clone, Debug)]
pub struct Config {
    /// Nodes held in the set, at most. Default 50 000: a mainnet crawl finds some 10 000
    /// to 20 000 nodes answering discv4; an entry takes about 1 KiB (record of at most
    /// 300 bytes, client id of at most 1 KiB, rarely full), so about 50 MiB at worst.
    pub max_nodes: usize,
    /// Candidates waiting for a check, and checked nodes waiting for a dial, at most
    /// each. Default 10 000; more are dropped (discovery finds them again).
    pub max_queue: usize,
    /// Liveness checks in flight. Default 64: at the default packet rate (two or three
    /// packets each, 0.5 to 1 s apiece) about the rate's worth.
    pub max_checks: usize,
    /// RLPx probes in flight. Default 16: each holds a socket and up to a few handshake
    /// timeouts (5 s each) against a node that answers slowly or not at all.
    pub max_dials: usize,
    /// RLPx probes started per second, at most. Default 8.
    pub dials_per_sec: f64,
    /// A node is not checked (nor dialled) again sooner than this. Default 10 min
    /// (go-ethereum's crawler: `revalidateInterval`).
    pub revalidate: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_nodes: 50_000,
            max_queue: 10_000,
            max_checks: 64,
            max_dials: 16,
            dials_per_sec: 8.0,
            revalidate: Duration::from_secs(600),
        }
    }
}

/// A token bucket over injected time: `per_sec` tokens a second, up to `burst` saved.
#[derive(Clone, Debug)]
pub struct Rate {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl Rate {
    /// A full bucket at `now`. A rate of 0 or less never gives a token.
    pub fn new(per_sec: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self {
            per_sec,
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        self.at = now;
    }

    /// Takes a token if one is there.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// When the next token is there (`now` if it is); `None` for a zero rate.
    pub fn ready_at(&self, now: Instant) -> Option<Instant> {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        let tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if tokens >= 1.0 {
            return Some(now);
        }
        if self.per_sec <= 0.0 {
            return None;
        }
        Duration::try_from_secs_f64((1.0 - tokens) / self.per_sec)
            .ok()
            .map(|d| now + d)
    }
}

/// A node found by a discovery source, with its record when the source has one (DNS
/// lists, discv5).
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its endpoint.
    pub node: Node,
    /// Its record, if known (the check fetches the current one anyway).
    pub record: Option<Enr>,
}

/// What the driver must do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Check that the node is alive and fetch its record; answer with
    /// [`Crawler::on_check`].
    Check(Node),
    /// Probe the node over RLPx; answer with [`Crawler::on_dial`].
    Dial(Node),
}

/// What an RLPx probe learned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    /// The Hello.
    pub hello: HelloInfo,
    /// The eth Status, when the node speaks eth and sent one.
    pub status: Option<StatusInfo>,
    /// Why the Status was not read, when the node speaks eth.
    pub error: Option<String>,
}

/// Counters for the progress line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Nodes in the set.
    pub nodes: usize,
    /// Nodes that entered the set.
    pub added: u64,
    /// Checks of nodes already in the set that answered.
    pub updated: u64,
    /// Nodes that left the set (score fell to 0).
    pub removed: u64,
    /// Candidates not in the set that did not answer their check.
    pub unreachable: u64,
    /// Candidates skipped: checked within the revalidation interval, or already queued.
    pub recent: u64,
    /// Candidates dropped because a queue or the set was full.
    pub dropped: u64,
    /// Probes that read a Hello.
    pub probed: u64,
    /// Probes that failed.
    pub probe_failed: u64,
    /// Checks waiting or in flight.
    pub checking: usize,
    /// Probes waiting or in flight.
    pub dialing: usize,
}

/// Longest `dialError` kept (an error text may quote what a peer sent).
const MAX_ERROR_LEN: usize = 120;
/// How often nodes due for revalidation are looked for: a scan of the set, cheap at
/// [`Config::max_nodes`] once a second.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// The crawl state machine. See the [module docs](self).
pub struct Crawler {
    config: Config,
    set: NodeSet,
    /// `(now, unix seconds)` at creation: output times are wall-clock seconds.
    epoch: (Instant, u64),
    check_queue: VecDeque<Node>,
    dial_queue: VecDeque<Node>,
    /// Ids in `check_queue` or being checked.
    checking: HashSet<NodeId>,
    checks_in_flight: usize,
    /// Ids in `dial_queue` or being dialled.
    dialing: HashSet<NodeId>,
    dials_in_flight: usize,
    dial_rate: Rate,
    scan_at: Instant,
    progress: Progress,
}

impl Crawler {
    /// A crawl starting from `input` (a loaded node set, possibly empty) at `now`, which
    /// is `unix` seconds on the wall clock. Input nodes beyond [`Config::max_nodes`] are
    /// dropped, lowest score first.
    pub fn new(config: Config, mut input: NodeSet, now: Instant, unix: u64) -> Self {
        if input.len() > config.max_nodes {
            let mut scores: Vec<(i64, NodeId)> =
                input.iter().map(|(id, e)| (e.score, *id)).collect();
            scores.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
            for (_, id) in scores.drain(config.max_nodes..) {
                input.remove(&id);
            }
        }
        let dial_rate = Rate::new(config.dials_per_sec, config.dials_per_sec, now);
        let progress = Progress {
            nodes: input.len(),
            ..Progress::default()
        };
        Self {
            config,
            set: input,
            epoch: (now, unix),
            check_queue: VecDeque::new(),
            dial_queue: VecDeque::new(),
            checking: HashSet::new(),
            checks_in_flight: 0,
            dialing: HashSet::new(),
            dials_in_flight: 0,
            dial_rate,
            scan_at: now,
            progress,
        }
    }

    /// Wall-clock seconds at `now`.
    pub fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    /// The node set so far.
    pub fn nodes(&self) -> &NodeSet {
        &self.set
    }

    /// The set, at the end of the crawl.
    pub fn into_nodes(self) -> NodeSet {
        self.set
    }

    /// Counters.
    pub fn progress(&self) -> Progress {
        Progress {
            nodes: self.set.len(),
            checking: self.checking.len(),
            dialing: self.dialing.len(),
            ..self.progress.clone()
        }
    }

    /// Whether the check queue has room for more candidates: a source may pause its
    /// lookups when not.
    pub fn wants_candidates(&self) -> bool {
        self.check_queue.len() < self.config.max_queue / 2
    }

    fn recently_checked(&self, id: &NodeId, unix: u64) -> bool {
        self.set.get(id).is_some_and(|e| {
            e.last_check != 0 && unix < e.last_check + self.config.revalidate.as_secs()
        })
    }

    /// A node found by a source. Returns whether it was queued for a check (a source
    /// finding nothing new may slow down).
    pub fn on_candidate(&mut self, now: Instant, c: Candidate) -> bool {
        let id = c.node.id;
        if self.checking.contains(&id) || self.recently_checked(&id, self.unix(now)) {
            self.progress.recent += 1;
            return false;
        }
        if (!self.set.contains_key(&id) && self.set.len() >= self.config.max_nodes)
            || self.check_queue.len() >= self.config.max_queue
        {
            self.progress.dropped += 1;
            return false;
        }
        // A record known to be newer than the endpoint carries the better address.
        let node = c.record.as_ref().and_then(Enr::to_node).unwrap_or(c.node);
        self.checking.insert(id);
        self.check_queue.push_back(node);
        true
    }

    /// Queues the set's nodes due for revalidation (not checked for
    /// [`Config::revalidate`]), as far as the queue has room.
    fn scan(&mut self, now: Instant) {
        self.scan_at = now + SCAN_INTERVAL;
        let unix = self.unix(now);
        let room = self.config.max_queue.saturating_sub(self.check_queue.len());
        let due: Vec<Node> = self
            .set
            .iter()
            .filter(|(id, _)| !self.checking.contains(id) && !self.recently_checked(id, unix))
            .filter_map(|(_, e)| e.record.to_node())
            .take(room)
            .collect();
        for n in due {
            self.checking.insert(n.id);
            self.check_queue.push_back(n);
        }
    }

    /// The next thing to do, if any is allowed now: dials first (they are the scarcer
    /// resource), then checks.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        if now >= self.scan_at {
            self.scan(now);
        }
        if self.dials_in_flight < self.config.max_dials
            && !self.dial_queue.is_empty()
            && self.dial_rate.take(now)
            && let Some(n) = self.dial_queue.pop_front()
        {
            self.dials_in_flight += 1;
            return Some(Action::Dial(n));
        }
        if self.checks_in_flight < self.config.max_checks
            && let Some(n) = self.check_queue.pop_front()
        {
            self.checks_in_flight += 1;
            return Some(Action::Check(n));
        }
        None
    }

    /// When [`Crawler::poll_action`] may have something new without any other input.
    pub fn next_timeout(&self, now: Instant) -> Instant {
        let mut at = self.scan_at;
        if self.dials_in_flight < self.config.max_dials
            && !self.dial_queue.is_empty()
            && let Some(t) = self.dial_rate.ready_at(now)
        {
            at = at.min(t);
        }
        at
    }

    /// The answer to [`Action::Check`]: the node's current record, or `None` when it did
    /// not answer. The record must be the node's (the source checks it).
    pub fn on_check(&mut self, now: Instant, id: NodeId, record: Option<Enr>) {
        if !self.checking.remove(&id) {
            return;
        }
        self.checks_in_flight = self.checks_in_flight.saturating_sub(1);
        let unix = self.unix(now);
        let Some(record) = record.filter(|r| r.node_id() == id) else {
            match self.set.get_mut(&id) {
                Some(e) => {
                    e.last_check = unix;
                    e.score /= 2;
                    if e.score <= 0 {
                        self.set.remove(&id);
                        self.progress.removed += 1;
                    }
                }
                None => self.progress.unreachable += 1,
            }
            return;
        };
        if !self.set.contains_key(&id) && self.set.len() >= self.config.max_nodes {
            self.progress.dropped += 1;
            return;
        }
        let entry = self
            .set
            .entry(id)
            .or_insert_with(|| Entry::new(record.clone()));
        if record.seq() >= entry.record.seq() {
            entry.seq = record.seq();
            entry.record = record;
        }
        entry.score += 1;
        entry.last_check = unix;
        entry.last_response = unix;
        if entry.first_response == 0 {
            entry.first_response = unix;
            self.progress.added += 1;
        } else {
            self.progress.updated += 1;
        }
        let due =
            entry.last_dial == 0 || unix >= entry.last_dial + self.config.revalidate.as_secs();
        let node = entry.record.to_node().filter(|n| n.tcp != 0);
        if let Some(node) = node
            && due
            && !self.dialing.contains(&id)
            && self.dial_queue.len() < self.config.max_queue
        {
            self.dialing.insert(id);
            self.dial_queue.push_back(node);
        }
    }

    /// The answer to [`Action::Dial`]: what the probe learned, or why it failed (kept
    /// short in the output).
    pub fn on_dial(&mut self, now: Instant, id: NodeId, result: Result<Probe, String>) {
        if !self.dialing.remove(&id) {
            return;
        }
        self.dials_in_flight = self.dials_in_flight.saturating_sub(1);
        let unix = self.unix(now);
        match &result {
            Ok(_) => self.progress.probed += 1,
            Err(_) => self.progress.probe_failed += 1,
        }
        let Some(e) = self.set.get_mut(&id) else {
            return;
        };
        e.last_dial = unix;
        match result {
            Ok(p) => {
                e.hello = Some(p.hello);
                if p.status.is_some() {
                    e.status = p.status;
                }
                e.dial_error = p.error.map(truncate);
            }
            Err(err) => e.dial_error = Some(truncate(err)),
        }
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
