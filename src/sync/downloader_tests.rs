//! The downloader against scripted peers in virtual time: honest, corrupt-body, silent,
//! eth/68 (head number unknown), gap-lying peers, and a longer side chain.

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

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Honest,
    CorruptBodies,
    Silent,
}

struct Peer {
    chain: Vec<Header>,
    by_hash: HashMap<B256, u64>,
    mode: Mode,
}

impl Peer {
    fn headers(&self, req: &GetBlockHeaders) -> Vec<Header> {
        let start = match req.origin {
            BlockId::Number(n) => n,
            BlockId::Hash(h) => match self.by_hash.get(&h) {
                Some(n) => *n,
                None => return Vec::new(),
            },
        };
        (0..req.amount)
            .map(|i| start + i * (req.skip + 1))
            .map_while(|n| self.chain.get(n as usize).cloned())
            .collect()
    }

    fn bodies(&self, hashes: &[B256]) -> Vec<Body> {
        hashes
            .iter()
            .filter(|h| self.by_hash.contains_key(*h))
            .map(|_| {
                let mut b = Body::default();
                if self.mode == Mode::CorruptBodies {
                    b.ommers.push(Header::default());
                }
                b
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
    /// Every imported block: hash → (number, parent).
    side: HashMap<B256, (u64, B256)>,
}

impl Harness {
    fn new(local_chain: &[Header]) -> Self {
        let local = Mem::default();
        *local.0.borrow_mut() = local_chain.iter().map(|h| h.hash_slow()).collect();
        let now = Instant::now();
        Self {
            dl: Downloader::new(Config::default(), local.clone()),
            local,
            peers: HashMap::new(),
            now,
            start: now,
            penalties: Vec::new(),
            imports: 0,
            requests: 0,
            side: HashMap::new(),
        }
    }

    fn add(&mut self, peer: PeerId, chain: Vec<Header>, mode: Mode, eth68: bool) {
        let top = &chain[chain.len() - 1];
        let head = PeerHead {
            hash: top.hash_slow(),
            number: (!eth68).then_some(top.number),
        };
        let by_hash = chain.iter().map(|h| (h.hash_slow(), h.number)).collect();
        self.peers.insert(
            peer,
            Peer {
                chain,
                by_hash,
                mode,
            },
        );
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
                self.requests += 1;
                let Some(p) = self.peers.get(&peer) else {
                    return self.dl.on_headers(id, Err(Failure::Gone), self.now);
                };
                if p.mode != Mode::Silent {
                    let headers = p.headers(&req);
                    self.dl.on_headers(id, Ok(headers), self.now);
                }
            }
            Action::Bodies { id, peer, hashes } => {
                self.requests += 1;
                let Some(p) = self.peers.get(&peer) else {
                    return self.dl.on_bodies(id, Err(Failure::Gone), self.now);
                };
                if p.mode != Mode::Silent {
                    let bodies = p.bodies(&hashes);
                    self.dl.on_bodies(id, Ok(bodies), self.now);
                }
            }
            Action::Import { blocks } => {
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
    let mut h = Harness::new(&theirs[..1]);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty());
    let s = h.dl.status();
    assert_eq!(
        (s.starting, s.current, s.highest, s.syncing),
        (0, 600, 600, false)
    );
    // No request timed out: the only timers are the pacing of requests, 20 ms apart per
    // peer, so the virtual clock moved by about that per request.
    let paced = Config::default().min_request_interval * (h.requests - 1);
    assert!(
        h.now - h.start >= paced,
        "{:?} < {paced:?}",
        h.now - h.start
    );
    assert!(h.now - h.start < paced + Duration::from_millis(100));
}

#[test]
fn long_chain_takes_several_rounds() {
    // More than max_skeleton * span blocks: the round ends at its last point.
    let theirs = chain(192 * 128 + 500, 0, 0);
    let mut h = Harness::new(&theirs[..1]);
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
    // The round's requests are paced 20 ms apart after the grace period.
    let grace = Config::default().grace;
    assert!(h.now >= h.start + grace && h.now < h.start + grace + Duration::from_secs(1));
}
