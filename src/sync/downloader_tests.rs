//! The downloader against scripted peers in virtual time: honest, corrupt-body, silent,
//! eth/68 (head number unknown), gap-lying peers, and a longer side chain; and hostile
//! peers that claim heads they cannot back or withhold what they claimed (issue 11).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use alloy_consensus::Header;
use alloy_primitives::{B256, Bytes};
use protocols::eth::{BlockId, GetBlockHeaders, PeerId};
use rlpx::DisconnectReason;
use secp256k1::{PublicKey, SecretKey};

use super::{Action, Config, Downloader, Failure, Imported, Local, PeerHead};
use crate::chain::Body;

/// Canonical hashes by number, shared by the test and the downloader.
#[derive(Clone, Default)]
struct Mem(Rc<RefCell<Vec<B256>>>);

impl Local for Mem {
    fn head(&self) -> (u64, B256) {
        let v = self.0.borrow();
        ((v.len() - 1) as u64, v[v.len() - 1])
    }
    fn canonical_hash(&self, number: u64) -> Option<B256> {
        self.0.borrow().get(number as usize).copied()
    }
}

/// A chain of `len` blocks after a shared genesis; blocks above `fork` carry `salt`.
fn chain(len: u64, fork: u64, salt: u8) -> Vec<Header> {
    let mut v = vec![Header::default()];
    for n in 1..=len {
        let parent_hash = v[v.len() - 1].hash_slow();
        v.push(Header {
            number: n,
            parent_hash,
            transactions_root: alloy_trie::EMPTY_ROOT_HASH,
            ommers_hash: alloy_consensus::constants::EMPTY_OMMER_ROOT_HASH,
            extra_data: if n > fork {
                Bytes::from(vec![salt])
            } else {
                Bytes::new()
            },
            ..Header::default()
        });
    }
    v
}

/// A header no chain has: what a liar shows for its made-up head and skeleton points.
fn forged(number: u64) -> Header {
    Header {
        number,
        parent_hash: B256::repeat_byte(0xee),
        extra_data: Bytes::from_static(b"forged"),
        ..Header::default()
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Honest,
    CorruptBodies,
    Silent,
    /// Answers every request with nothing.
    Empty,
    /// Answers requests for its head (by hash), nothing else.
    HeadOnly,
    /// Answers single headers (its head, the ancestor search, skeleton points) but no
    /// header ranges and no bodies.
    Withhold,
    /// Answers headers, no bodies.
    WithholdBodies,
    /// Answers single headers; header ranges and bodies fail as if it were always busy
    /// ([`Failure::Gone`]: not its fault as far as the downloader can tell).
    Busy,
    /// Answers requests for its head (by hash); everything else fails as busy.
    BusyAll,
}

struct Peer {
    chain: Vec<Header>,
    by_hash: HashMap<B256, u64>,
    mode: Mode,
    /// Shows forged headers above its chain, up to this (made-up) head.
    forged_head: Option<u64>,
    /// Header ranges answered with nothing before it answers them (a peer catching up).
    empty_ranges: std::cell::Cell<u32>,
    /// Bodies by block hash where not empty ([`sized_chain`]).
    sized: HashMap<B256, Body>,
    /// Answers stop growing once they reach this many bytes (the body crossing it
    /// included), as a serving peer's soft limit (`eth::serve::SOFT_RESPONSE_LIMIT`).
    soft_limit: Option<u64>,
}

impl Peer {
    fn new(chain: Vec<Header>, mode: Mode, forged_head: Option<u64>) -> Self {
        let mut by_hash: HashMap<B256, u64> =
            chain.iter().map(|h| (h.hash_slow(), h.number)).collect();
        if let Some(n) = forged_head {
            by_hash.insert(forged(n).hash_slow(), n);
        }
        Self {
            chain,
            by_hash,
            mode,
            forged_head,
            empty_ranges: std::cell::Cell::new(0),
            sized: HashMap::new(),
            soft_limit: None,
        }
    }

    /// The head it claims.
    fn head(&self) -> Header {
        match self.forged_head {
            Some(n) => forged(n),
            None => self.chain[self.chain.len() - 1].clone(),
        }
    }

    fn header_at(&self, n: u64) -> Option<Header> {
        match self.chain.get(n as usize) {
            Some(h) => Some(h.clone()),
            None => self.forged_head.filter(|top| n <= *top).map(|_| forged(n)),
        }
    }

    /// A request for a contiguous range (a gap), as opposed to single headers.
    fn is_range(req: &GetBlockHeaders) -> bool {
        req.skip == 0 && req.amount > 1
    }

    fn headers(&self, req: &GetBlockHeaders) -> Vec<Header> {
        let by_hash = matches!(req.origin, BlockId::Hash(_));
        if self.mode == Mode::Empty
            || self.mode == Mode::Withhold && Self::is_range(req)
            || self.mode == Mode::HeadOnly && !by_hash
        {
            return Vec::new();
        }
        if Self::is_range(req) && self.empty_ranges.get() > 0 {
            self.empty_ranges.set(self.empty_ranges.get() - 1);
            return Vec::new();
        }
        let start = match req.origin {
            BlockId::Number(n) => n,
            BlockId::Hash(h) => match self.by_hash.get(&h) {
                Some(n) => *n,
                None => return Vec::new(),
            },
        };
        (0..req.amount)
            .map_while(|i| start.checked_add(i.checked_mul(req.skip + 1)?))
            .map_while(|n| self.header_at(n))
            .collect()
    }

    fn bodies(&self, hashes: &[B256]) -> Vec<Body> {
        if matches!(
            self.mode,
            Mode::Empty | Mode::Withhold | Mode::HeadOnly | Mode::WithholdBodies
        ) {
            return Vec::new();
        }
        let mut bytes = 0u64;
        hashes
            .iter()
            .filter(|h| self.by_hash.contains_key(*h))
            .map_while(|h| {
                if self.soft_limit.is_some_and(|limit| bytes >= limit) {
                    return None;
                }
                let mut b = self.sized.get(h).cloned().unwrap_or_default();
                if self.mode == Mode::CorruptBodies {
                    b.ommers.push(Header::default());
                }
                bytes += alloy_rlp::Encodable::length(&b) as u64;
                Some(b)
            })
            .collect()
    }
}

fn id(i: u8) -> PeerId {
    let key = SecretKey::from_byte_array([i; 32]).expect("valid key");
    PublicKey::from_secret_key_global(&key)
}

struct Harness {
    dl: Downloader<Mem>,
    local: Mem,
    peers: HashMap<PeerId, Peer>,
    now: Instant,
    start: Instant,
    penalties: Vec<(PeerId, DisconnectReason)>,
    imports: usize,
    /// Header and body requests sent.
    requests: u32,
    /// Requests sent, by peer.
    asked: HashMap<PeerId, u32>,
    /// Every imported block: hash → (number, parent).
    side: HashMap<B256, (u64, B256)>,
    /// Every request sent: when, and to whom.
    sent: Vec<(Instant, PeerId)>,
    /// The count of every body request.
    body_asks: Vec<usize>,
    /// Imports held back (not carried out) while `Some`.
    held_imports: Option<Vec<Vec<crate::chain::Block>>>,
}

/// Request shapes small enough that a 600-block chain takes several gaps and body
/// requests, spread over the peers (what the hostile-peer tests need): the spans and
/// counts before requests were sized by bytes.
fn small_requests() -> Config {
    Config {
        span: 192,
        max_skeleton: 128,
        bodies_per_request: 256,
        ..Config::default()
    }
}

impl Harness {
    fn new(local_chain: &[Header]) -> Self {
        Self::with(small_requests(), local_chain)
    }

    fn with(config: Config, local_chain: &[Header]) -> Self {
        let local = Mem::default();
        *local.0.borrow_mut() = local_chain.iter().map(|h| h.hash_slow()).collect();
        let now = Instant::now();
        Self {
            dl: Downloader::new(config, local.clone()),
            local,
            peers: HashMap::new(),
            now,
            start: now,
            penalties: Vec::new(),
            imports: 0,
            requests: 0,
            asked: HashMap::new(),
            side: HashMap::new(),
            sent: Vec::new(),
            body_asks: Vec::new(),
            held_imports: None,
        }
    }

    fn add(&mut self, peer: PeerId, chain: Vec<Header>, mode: Mode, eth68: bool) {
        self.add_peer(peer, Peer::new(chain, mode, None), eth68);
    }

    fn add_peer(&mut self, peer: PeerId, p: Peer, eth68: bool) {
        let top = p.head();
        let head = PeerHead {
            hash: top.hash_slow(),
            number: (!eth68).then_some(top.number),
        };
        self.peers.insert(peer, p);
        self.dl.peer_joined(peer, head, self.now);
    }

    /// `peer` claims `head` (a Status, NewBlock or NewBlockHashes), whatever it has.
    fn claim(&mut self, peer: PeerId, head: PeerHead) {
        self.dl.peer_joined(peer, head, self.now);
    }

    /// Stores like [`crate::chain::Store::insert_blocks`]: a block needs a stored
    /// parent; a block higher than the head becomes the head, with its ancestors canonical.
    fn import(&mut self, blocks: &[crate::chain::Block]) -> Imported {
        self.imports += 1;
        let mut local = self.local.0.borrow_mut();
        for b in blocks {
            let parent = b.header.parent_hash;
            let parent_known = local.contains(&parent) || self.side.contains_key(&parent);
            assert!(
                parent_known,
                "block {} has no stored parent",
                b.header.number
            );
            let hash = b.header.hash_slow();
            self.side.insert(hash, (b.header.number, parent));
            if b.header.number as usize >= local.len() {
                // Rewrite the canonical index back to where it meets this chain.
                local.truncate(b.header.number as usize);
                let mut at = hash;
                let mut n = b.header.number as usize;
                let mut back = Vec::new();
                while local.get(n) != Some(&at) {
                    back.push(at);
                    let Some(&(_, p)) = self.side.get(&at) else {
                        break;
                    };
                    at = p;
                    n -= 1;
                }
                local.truncate(n + 1);
                local.extend(back.into_iter().rev());
            }
        }
        Imported::Ok {
            number: (local.len() - 1) as u64,
            hash: local[local.len() - 1],
        }
    }

    /// Runs until nothing is left to do, advancing virtual time to each timeout.
    fn run(&mut self) {
        for _ in 0..10_000 {
            if let Some(action) = self.dl.poll_action() {
                self.execute(action);
                continue;
            }
            match self.dl.next_timeout() {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.dl.handle_timeout(self.now);
                }
                None => return,
            }
        }
        panic!("no end: {:?}", self.dl.status());
    }

    fn execute(&mut self, action: Action) {
        match action {
            Action::Headers { id, peer, req } => {
                self.sent.push((self.now, peer));
                self.requests += 1;
                *self.asked.entry(peer).or_default() += 1;
                let Some(p) = self.peers.get(&peer) else {
                    return self.dl.on_headers(id, Err(Failure::Gone), self.now);
                };
                let by_hash = matches!(req.origin, BlockId::Hash(_));
                if p.mode == Mode::Busy && Peer::is_range(&req)
                    || p.mode == Mode::BusyAll && !by_hash
                {
                    return self.dl.on_headers(id, Err(Failure::Gone), self.now);
                }
                if p.mode != Mode::Silent {
                    let headers = p.headers(&req);
                    self.dl.on_headers(id, Ok(headers), self.now);
                }
            }
            Action::Bodies {
                id,
                peer,
                hashes,
                headers,
            } => {
                self.sent.push((self.now, peer));
                self.body_asks.push(hashes.len());
                self.requests += 1;
                *self.asked.entry(peer).or_default() += 1;
                let Some(p) = self.peers.get(&peer) else {
                    return self.dl.on_bodies(id, Err(Failure::Gone), self.now);
                };
                if matches!(p.mode, Mode::Busy | Mode::BusyAll) {
                    return self.dl.on_bodies(id, Err(Failure::Gone), self.now);
                }
                if p.mode != Mode::Silent {
                    let bodies = p.bodies(&hashes);
                    // Every other answer checked by the caller, as the driver does off
                    // the runtime: both paths see every scenario.
                    if id % 2 == 0 {
                        let matched = super::matched_bodies(&headers, &bodies);
                        self.dl.on_checked_bodies(id, Ok(bodies), matched, self.now);
                    } else {
                        self.dl.on_bodies(id, Ok(bodies), self.now);
                    }
                }
            }
            Action::Import { blocks } => {
                if let Some(held) = self.held_imports.as_mut() {
                    return held.push(blocks);
                }
                let r = self.import(&blocks);
                self.dl.on_imported(r, self.now);
            }
            Action::Penalise { peer, reason } => {
                self.penalties.push((peer, reason));
                self.peers.remove(&peer);
                self.dl.peer_left(&peer, self.now);
            }
        }
    }

    fn head(&self) -> (u64, B256) {
        self.local.head()
    }
}

fn top(chain: &[Header]) -> (u64, B256) {
    let h = &chain[chain.len() - 1];
    (h.number, h.hash_slow())
}

#[test]
fn syncs_from_one_peer() {
    let theirs = chain(600, 0, 0);
    let mut h = Harness::with(Config::default(), &theirs[..1]);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty());
    let s = h.dl.status();
    assert_eq!(
        (s.starting, s.current, s.highest, s.syncing),
        (0, 600, 600, false)
    );
    // No request timed out: the only timer is the pacing, and the few requests (the
    // head's probe, one gap of 600 headers, one request for all 600 bodies) fit the
    // bucket's burst, so no virtual time passed.
    assert!(
        h.requests <= Config::default().request_burst,
        "{}",
        h.requests
    );
    assert_eq!(h.now, h.start);
}

#[test]
fn long_chain_takes_several_rounds() {
    // More than max_skeleton * span blocks: the round ends at its last point.
    let c = Config::default();
    let theirs = chain(c.span * c.max_skeleton + 500, 0, 0);
    let mut h = Harness::with(c, &theirs[..1]);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    h.add(id(2), theirs.clone(), Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty());
}

#[test]
fn corrupt_bodies_are_rejected_before_import() {
    let theirs = chain(600, 0, 0);
    let mut h = Harness::new(&theirs[..1]);
    h.add(id(1), theirs.clone(), Mode::CorruptBodies, false);
    h.add(id(2), theirs.clone(), Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert_eq!(
        h.penalties,
        vec![(id(1), DisconnectReason::BreachOfProtocol)]
    );
}

#[test]
fn silent_peer_times_out_and_its_work_moves() {
    let theirs = chain(600, 0, 0);
    let mut h = Harness::new(&theirs[..1]);
    for i in 1..=3 {
        let mode = if i == 2 { Mode::Silent } else { Mode::Honest };
        h.add(id(i), theirs.clone(), mode, false);
    }
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert_eq!(h.penalties, vec![(id(2), DisconnectReason::UselessPeer)]);
    assert!(h.now >= h.start + Config::default().request_timeout);
    assert!(h.now < h.start + Duration::from_secs(60));
}

#[test]
fn eth68_peer_head_number_is_fetched() {
    let theirs = chain(300, 0, 0);
    let mut h = Harness::new(&theirs[..1]);
    h.add(id(1), theirs.clone(), Mode::Honest, true);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert_eq!(h.dl.status().highest, 300);
}

#[test]
fn longer_side_chain_is_imported_from_the_ancestor() {
    let ours = chain(300, 300, 0);
    let theirs = chain(450, 123, 7);
    let mut h = Harness::new(&ours);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert_eq!(h.local.canonical_hash(200), Some(theirs[200].hash_slow()));
    assert_eq!(h.local.canonical_hash(123), Some(ours[123].hash_slow()));
    assert!(h.penalties.is_empty());
}

#[test]
fn peer_filling_gaps_from_another_chain_is_penalised() {
    let theirs = chain(601, 0, 0);
    let liar = chain(600, 10, 9);
    let mut h = Harness::new(&theirs[..1]);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    h.add(id(2), liar, Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert_eq!(
        h.penalties,
        vec![(id(2), DisconnectReason::BreachOfProtocol)]
    );
}

#[test]
fn not_behind_no_sync() {
    let ours = chain(100, 100, 0);
    let mut h = Harness::new(&ours);
    h.add(id(1), ours[..51].to_vec(), Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&ours));
    assert!(!h.dl.status().syncing);
    assert_eq!(h.imports, 0);
}

#[test]
fn a_little_behind_waits_for_propagation_then_syncs() {
    // Three blocks behind: within the threshold, block propagation's to fetch. Nothing is
    // asked until the grace period has passed; then a round catches up.
    let theirs = chain(403, 0, 0);
    let mut h = Harness::new(&theirs[..401]);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    assert!(
        h.dl.poll_action().is_none(),
        "no request during the grace period"
    );
    assert!(!h.dl.status().syncing);
    assert_eq!(h.dl.next_timeout(), Some(h.start + Config::default().grace));
    h.run();
    assert_eq!(h.head(), top(&theirs));
    // The round's few requests go out at once after the grace period.
    let grace = Config::default().grace;
    assert!(h.now >= h.start + grace && h.now < h.start + grace + Duration::from_secs(1));
}

// Hostile peers (issue 11, item 3): a claimed head is believed only once the peer shows
// it, empty or short answers for what a peer claimed count against it, a round without
// progress drops its peer, and disputed gaps go to other peers.

/// An honest chain of 600 blocks; we are at genesis.
fn honest_600() -> (Vec<Header>, Harness) {
    let theirs = chain(600, 0, 0);
    let h = Harness::new(&theirs[..1]);
    (theirs, h)
}

/// Virtual time the hostile tests may take: a few request timeouts and one stall.
fn bounded(h: &Harness) {
    let c = Config::default();
    let limit = c.stall_timeout + c.request_timeout * 3;
    assert!(h.now - h.start < limit, "{:?}", h.now - h.start);
}

/// Runs the sync; checks that it reaches `theirs` (the honest head) in bounded time and
/// that only `liar` was dropped, for `reason`.
fn run_past(h: &mut Harness, theirs: &[Header], liar: PeerId, reason: DisconnectReason) {
    h.run();
    assert_eq!(h.head(), top(theirs));
    assert_eq!(h.penalties, vec![(liar, reason)]);
    bounded(h);
}

/// `liar` (as `id(9)`) beside an honest peer with 600 blocks: the sync reaches 600 and
/// drops the liar for `reason`.
fn liar_beside_honest_600(liar: Peer, reason: DisconnectReason) -> Harness {
    let (theirs, mut h) = honest_600();
    h.add_peer(id(9), liar, false);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    run_past(&mut h, &theirs, id(9), reason);
    h
}

/// A liar whose head (800) is real and above the honest peer's (600), behaving as
/// `mode`: the sync reaches 600 and drops the liar as useless.
fn liar_with_a_longer_chain(mode: Mode) -> Harness {
    let long = chain(800, 0, 0);
    let theirs = long[..601].to_vec();
    let mut h = Harness::new(&theirs[..1]);
    let liar = id(9);
    h.add(liar, long, mode, false);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    run_past(&mut h, &theirs, liar, DisconnectReason::UselessPeer);
    h
}

#[test]
fn huge_claimed_head_is_not_believed_before_the_peer_shows_it() {
    // A Status (eth/69) claiming u64::MAX with a made-up hash; nothing behind it.
    let (theirs, mut h) = honest_600();
    let liar = id(9);
    h.peers
        .insert(liar, Peer::new(theirs[..1].to_vec(), Mode::Empty, None));
    h.claim(
        liar,
        PeerHead {
            hash: B256::repeat_byte(0xab),
            number: Some(u64::MAX),
        },
    );
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    run_past(&mut h, &theirs, liar, DisconnectReason::UselessPeer);
    // Asked once, for its head, which it could not show; never the highest we report.
    assert_eq!(h.asked.get(&liar), Some(&1));
    assert_eq!(h.dl.status().highest, 600);
}

#[test]
fn announced_head_the_peer_cannot_show_gets_it_dropped() {
    // A peer with the real chain announces (NewBlockHashes) a head it does not have.
    let (theirs, mut h) = honest_600();
    let liar = id(9);
    h.add(liar, theirs.clone(), Mode::Honest, false);
    h.claim(
        liar,
        PeerHead {
            hash: B256::repeat_byte(0xcd),
            number: Some(u64::MAX),
        },
    );
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    run_past(&mut h, &theirs, liar, DisconnectReason::UselessPeer);
    assert_eq!(h.dl.status().highest, 600);
}

#[test]
fn forged_head_without_a_skeleton_is_dropped() {
    // The liar shows a header for its claimed head (anyone can make one up) and nothing
    // else: no ancestor, no skeleton, no gaps.
    liar_beside_honest_600(
        Peer::new(Vec::new(), Mode::HeadOnly, Some(u64::MAX)),
        DisconnectReason::UselessPeer,
    );
}

#[test]
fn skeleton_peer_with_a_forged_head_withholding_gaps_does_not_stall_sync() {
    // The attack of issue 11: the liar has the honest chain, claims u64::MAX (and shows
    // a forged header for it), leads the round, shows forged skeleton points above 600
    // and answers every gap with nothing. Only it claims the gaps above 600, so before
    // the fix the round waited on it forever.
    let h = liar_beside_honest_600(
        Peer::new(chain(600, 0, 0), Mode::Withhold, Some(u64::MAX)),
        DisconnectReason::UselessPeer,
    );
    let s = h.dl.status();
    assert_eq!((s.syncing, s.highest), (false, 600));
}

#[test]
fn disputed_gap_the_skeleton_peer_will_not_fill_drops_it() {
    // The liar has only genesis and shows forged skeleton points: the honest peer's gaps
    // do not link to them, and the liar, asked to settle, answers with nothing.
    liar_beside_honest_600(
        Peer::new(chain(0, 0, 0), Mode::Withhold, Some(1_000_000)),
        DisconnectReason::UselessPeer,
    );
}

#[test]
fn real_head_then_withholding_is_dropped() {
    // The liar's head is a real block (800, beyond the honest peer's 600), it shows it,
    // and the skeleton, then withholds the gaps and bodies only it can give.
    liar_with_a_longer_chain(Mode::Withhold);
}

#[test]
fn round_without_progress_drops_its_peer() {
    // The round's peer (real head 800) answers single headers but fails every gap and
    // body request as busy: nothing it can be blamed for request by request, yet the
    // round above 600 never moves. The stall timer drops it.
    let h = liar_with_a_longer_chain(Mode::Busy);
    assert!(h.now - h.start >= Config::default().stall_timeout);
}

#[test]
fn rounds_abandoned_in_a_row_do_not_reset_the_stall_clock() {
    // The best peer shows its head, then fails the skeleton as busy: each round is
    // abandoned and retried a second later with the same peer, and no round progresses.
    let h = liar_with_a_longer_chain(Mode::BusyAll);
    assert!(h.now - h.start >= Config::default().stall_timeout);
}

#[test]
fn disputed_gap_goes_to_another_peer() {
    // The round's peer is always busy for gaps; a third peer settles the gaps a liar
    // disputed (filled from another chain), and the liar pays for it.
    let theirs = chain(601, 0, 0);
    let mut ids = [id(1), id(3)];
    ids.sort_by_key(|i| std::cmp::Reverse(i.serialize()));
    let [round_peer, third] = ids;
    let liar = id(2);
    let mut h = Harness::new(&theirs[..1]);
    h.add(round_peer, theirs.clone(), Mode::Busy, false);
    h.add(third, theirs.clone(), Mode::Honest, false);
    h.add(liar, chain(600, 10, 9), Mode::Honest, false);
    run_past(&mut h, &theirs, liar, DisconnectReason::BreachOfProtocol);
}

#[test]
fn head_shown_with_another_number_is_a_breach() {
    // An announcement pairs a real hash (block 600) with a number it does not have.
    let (theirs, mut h) = honest_600();
    let liar = id(9);
    h.peers
        .insert(liar, Peer::new(theirs.clone(), Mode::Honest, None));
    h.claim(
        liar,
        PeerHead {
            hash: theirs[600].hash_slow(),
            number: Some(5_000),
        },
    );
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    run_past(&mut h, &theirs, liar, DisconnectReason::BreachOfProtocol);
    assert_eq!(h.dl.status().highest, 600);
}

#[test]
fn round_peer_withholding_bodies_is_dropped() {
    // The liar's head (800) is real and it gives every header, but no bodies: above the
    // honest peer's 600 nobody else can give them.
    liar_with_a_longer_chain(Mode::WithholdBodies);
}

#[test]
fn a_few_empty_answers_in_a_row_are_forgiven() {
    // An honest peer may answer a range empty now and then (a reorg racing the request):
    // fewer than MAX_STRIKES in a row cost it a pause, not the connection.
    let theirs = chain(600, 0, 0);
    let mut h = Harness::new(&theirs[..1]);
    let p = Peer::new(theirs.clone(), Mode::Honest, None);
    p.empty_ranges.set(super::super::trust::MAX_STRIKES - 1);
    h.add_peer(id(1), p, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty());
}

#[test]
fn a_lower_announced_head_must_be_shown_again() {
    // A peer shows head 600, then announces a shorter chain (head 300 of another fork):
    // the 600 it showed is no longer believed (nor reported) until it shows 300.
    let (theirs, mut h) = honest_600();
    let fork = chain(300, 100, 5);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    for _ in 0..4 {
        let Some(action) = h.dl.poll_action() else {
            break;
        };
        h.execute(action);
        if h.dl.status().highest == 600 {
            break;
        }
    }
    assert_eq!(h.dl.status().highest, 600, "head shown");
    h.peers
        .insert(id(1), Peer::new(fork.clone(), Mode::Honest, None));
    h.claim(
        id(1),
        PeerHead {
            hash: fork[300].hash_slow(),
            number: Some(300),
        },
    );
    assert_eq!(h.dl.status().highest, 0, "600 no longer believed");
    h.run();
    assert_eq!(h.dl.status().highest, 300);
    assert_eq!(h.head(), top(&fork));
    assert!(h.penalties.is_empty());
}

#[path = "pacing_tests.rs"]
mod pacing;
