//! The propagation core in virtual time (explicit `now`, no sleeps, no sockets): the
//! gossip policy, the orphan queue's bounds, the fetch quota, penalties for announcers
//! that time out, deny or lie, and blocks arriving out of order.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;

use alloy_primitives::Bytes;
use secp256k1::{PublicKey, SecretKey};

use super::*;
use crate::propagate::{MAX_QUEUED, MAX_QUEUED_BYTES, MAX_QUEUED_PER_PEER, block_memory};

/// Stored hashes and the head number, shared by the test and the core.
#[derive(Clone, Default)]
struct Mem(Rc<RefCell<(u64, HashSet<B256>)>>);

impl Local for Mem {
    fn head_number(&self) -> u64 {
        self.0.borrow().0
    }
    fn has_block(&self, hash: &B256) -> bool {
        self.0.borrow().1.contains(hash)
    }
}

impl Mem {
    /// Stores `block` (as the import the core asked for would).
    fn store(&self, block: &Block) {
        let mut m = self.0.borrow_mut();
        m.0 = m.0.max(block.header.number);
        m.1.insert(block.header.hash_slow());
    }
}

fn peer() -> PeerId {
    let key = SecretKey::new(&mut secp256k1::rand::rng());
    PublicKey::from_secret_key_global(&key)
}

/// A chain of `len` blocks after a genesis; blocks carry `salt` in their extra data.
fn chain(len: u64, salt: u8) -> Vec<Block> {
    let mut v: Vec<Block> = vec![Block::default()];
    for n in 1..=len {
        let parent_hash = v[v.len() - 1].header.hash_slow();
        let mut b = Block::default();
        b.header.number = n;
        b.header.parent_hash = parent_hash;
        b.header.extra_data = Bytes::from(vec![salt]);
        v.push(b);
    }
    v
}

/// A core over the genesis of `blocks`, with `sources` allowed.
fn core(blocks: &[Block], sources: &[PeerId]) -> (Core<Mem>, Mem) {
    let mem = Mem::default();
    mem.store(&blocks[0]);
    let gossip = Gossip::From(sources.iter().copied().collect());
    (Core::new(mem.clone(), gossip), mem)
}

fn drain<L: Local>(c: &mut Core<L>) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action()).collect()
}

/// Carries out imports as the driver would (storing each block), returning every other
/// action and the numbers imported, in order.
fn run(c: &mut Core<Mem>, mem: &Mem, now: Instant) -> (Vec<Action>, Vec<u64>) {
    let (mut other, mut imported) = (Vec::new(), Vec::new());
    while let Some(a) = c.poll_action() {
        match a {
            Action::Import { from, hash, block } => {
                let number = block.header.number;
                mem.store(&block);
                imported.push(number);
                c.on_imported(
                    from,
                    hash,
                    number,
                    ImportResult::Stored(Arc::new(*block)),
                    now,
                );
            }
            a => other.push(a),
        }
    }
    (other, imported)
}

fn penalties(actions: &[Action]) -> Vec<(PeerId, DisconnectReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Penalise { peer, reason } => Some((*peer, *reason)),
            _ => None,
        })
        .collect()
}

fn header_fetches(actions: &[Action]) -> Vec<(PeerId, B256, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::FetchHeaders { peer, hash, req } => Some((*peer, *hash, req.amount)),
            _ => None,
        })
        .collect()
}

#[test]
fn gossip_from_strangers_is_ignored_and_refused_gossip_disconnects() {
    let blocks = chain(1, 0);
    let (source, stranger) = (peer(), peer());
    let (mut c, _) = core(&blocks, &[source]);
    let now = Instant::now();
    let hash = blocks[1].header.hash_slow();
    c.on_block(stranger, blocks[1].clone(), eth::Held::default(), now);
    c.on_announcement(stranger, hash, 1, now);
    assert!(drain(&mut c).is_empty(), "no import, no fetch, no penalty");
    assert_eq!(c.full_blocks_received(&hash), 0);

    let mut refused = Core::new(Mem::default(), Gossip::Refused);
    refused.on_announcement(source, hash, 1, now);
    let actions = drain(&mut refused);
    assert_eq!(
        penalties(&actions),
        [(source, DisconnectReason::SubprotocolError)]
    );
    assert_eq!(actions.len(), 1);
    assert!(!refused.relays());
}

#[test]
fn out_of_order_blocks_connect_and_are_relayed_after_import() {
    let blocks = chain(3, 0);
    let p = peer();
    let (mut c, mem) = core(&blocks, &[p]);
    let now = Instant::now();
    // 3 and 2 before 1: queued, and the gap asked of their sender.
    for i in [3, 2] {
        c.on_block(p, blocks[i].clone(), eth::Held::default(), now);
    }
    assert_eq!(c.queued(), 2);
    let (actions, imported) = run(&mut c, &mem, now);
    assert!(imported.is_empty());
    assert_eq!(header_fetches(&actions).len(), 2);
    c.on_block(p, blocks[1].clone(), eth::Held::default(), now);
    let (actions, imported) = run(&mut c, &mem, now);
    assert_eq!(imported, [1, 2, 3]);
    assert_eq!(c.queued(), 0);
    // Each relayed once it was stored, never back to its sender.
    let relayed: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Relay { hash, except, .. } => Some((*hash, *except)),
            _ => None,
        })
        .collect();
    let expected: Vec<_> = blocks[1..]
        .iter()
        .map(|b| (b.header.hash_slow(), Some(p)))
        .collect();
    assert_eq!(relayed, expected);
    // The fetches started for 2 and 3 are over with them.
    assert_eq!(c.fetching(), 0);
    assert_eq!(c.full_blocks_received(&blocks[3].header.hash_slow()), 1);
}

#[test]
fn one_import_at_a_time() {
    let blocks = chain(2, 0);
    let p = peer();
    let (mut c, _) = core(&blocks, &[p]);
    let now = Instant::now();
    c.on_block(p, blocks[1].clone(), eth::Held::default(), now);
    c.on_block(p, blocks[2].clone(), eth::Held::default(), now);
    let actions = drain(&mut c);
    assert_eq!(actions.len(), 1);
    let Action::Import { hash, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert_eq!(*hash, blocks[1].header.hash_slow());
    // 2 waits behind its parent (lined up, not queued as an orphan).
    assert_eq!(c.queued(), 0);
    c.on_imported(Some(p), *hash, 1, ImportResult::Known, now);
    let actions = drain(&mut c);
    assert!(matches!(&actions[..], [Action::Import { block, .. }] if block.header.number == 2));
}

#[test]
fn a_bad_block_penalises_its_sender_and_drops_what_follows_it() {
    let blocks = chain(2, 0);
    let p = peer();
    let (mut c, _) = core(&blocks, &[p]);
    let now = Instant::now();
    for i in [1, 2] {
        c.on_block(p, blocks[i].clone(), eth::Held::default(), now);
    }
    let hash = match drain(&mut c).pop() {
        Some(Action::Import { hash, .. }) => hash,
        a => panic!("{a:?}"),
    };
    c.on_imported(Some(p), hash, 1, ImportResult::Bad { permanent: true }, now);
    let actions = drain(&mut c);
    assert_eq!(
        penalties(&actions),
        [(p, DisconnectReason::BreachOfProtocol)]
    );
    assert_eq!(actions.len(), 1, "block 2 is not imported: {actions:?}");
    // A refusal that depends on us (clock, reorg depth, side budget) is no proof.
    c.on_block(p, blocks[1].clone(), eth::Held::default(), now);
    let _ = drain(&mut c);
    c.on_imported(
        Some(p),
        hash,
        1,
        ImportResult::Bad { permanent: false },
        now,
    );
    assert_eq!(
        penalties(&drain(&mut c)),
        [(p, DisconnectReason::UselessPeer)]
    );
}

#[test]
fn orphans_are_bounded_per_peer_in_all_and_in_memory() {
    let blocks = chain(1, 0);
    let peers: Vec<_> = (0..6).map(|_| peer()).collect();
    let (mut c, _) = core(&blocks, &peers);
    let now = Instant::now();
    // Orphans at height 2 (parent unknown), distinct by extra data.
    let orphan = |i: usize, k: usize, extra: usize| {
        let mut b = blocks[1].clone();
        b.header.number = 2;
        b.header.parent_hash = B256::repeat_byte(0xaa);
        let mut data = vec![0u8; extra.max(2)];
        data[0] = i as u8;
        data[1] = k as u8;
        b.header.extra_data = Bytes::from(data);
        b
    };
    for (i, p) in peers.iter().enumerate() {
        for k in 0..MAX_QUEUED_PER_PEER + 4 {
            c.on_block(*p, orphan(i, k, 0), eth::Held::default(), now);
        }
    }
    assert_eq!(c.queued(), MAX_QUEUED, "16 of each of 6 peers, 64 in all");
    // Large ones: bounded by memory, whatever the count.
    let (mut c, _) = core(&blocks, &peers);
    let mut sent = 0;
    for (i, p) in peers.iter().enumerate() {
        for k in 0..8 {
            let b = orphan(i, k, 1 << 20);
            sent += block_memory(&b);
            c.on_block(*p, b, eth::Held::default(), now);
        }
    }
    assert!(sent > MAX_QUEUED_BYTES);
    assert!(c.queued_bytes() <= MAX_QUEUED_BYTES, "{}", c.queued_bytes());
    assert!(c.queued() > 0);
    // Too far ahead, or behind: not queued at all.
    let (mut c, _) = core(&blocks, &peers);
    for number in [0, super::super::MAX_QUEUE_DIST + 1] {
        let mut b = orphan(0, 0, 0);
        b.header.number = number;
        c.on_block(peers[0], b, eth::Held::default(), now);
    }
    assert_eq!(c.queued(), 0);
}

#[test]
fn an_announcer_may_start_a_few_fetches_and_all_of_them_are_bounded() {
    let blocks = chain(1, 0);
    let peers: Vec<_> = (0..20).map(|_| peer()).collect();
    let (mut c, _) = core(&blocks, &peers);
    let now = Instant::now();
    // Made-up hashes at heights 1..=4 (within reach of our head 0), ten per peer.
    for (i, p) in peers.iter().enumerate() {
        for k in 0..10u8 {
            let mut hash = B256::repeat_byte(0x11);
            hash[0] = i as u8;
            hash[1] = k;
            c.on_announcement(*p, hash, 1 + u64::from(k % 4), now);
        }
        let started = header_fetches(&drain(&mut c));
        let expected = if i < MAX_FETCHING / MAX_FETCHING_PER_PEER {
            MAX_FETCHING_PER_PEER
        } else {
            0
        };
        assert_eq!(started.len(), expected, "peer {i}");
        assert!(started.iter().all(|(q, _, _)| q == p));
    }
    assert_eq!(c.fetching(), MAX_FETCHING);
    // Beyond the fetch window, or at our head: not fetched.
    let (mut c, _) = core(&blocks, &peers);
    c.on_announcement(peers[0], B256::repeat_byte(1), MAX_FETCH_AHEAD + 1, now);
    c.on_announcement(peers[0], B256::repeat_byte(2), 0, now);
    assert!(drain(&mut c).is_empty());
}

#[test]
fn an_announcer_that_times_out_is_penalised_and_the_next_one_asked() {
    let blocks = chain(2, 0);
    let (a, b) = (peer(), peer());
    let (mut c, mem) = core(&blocks, &[a, b]);
    let t0 = Instant::now();
    let hash = blocks[2].header.hash_slow();
    c.on_announcement(a, hash, 2, t0);
    c.on_announcement(b, hash, 2, t0 + Duration::from_secs(1));
    assert_eq!(header_fetches(&drain(&mut c)), [(a, hash, 2)]);
    assert_eq!(c.next_timeout(), Some(t0 + FETCH_TIMEOUT));
    c.handle_timeout(t0 + FETCH_TIMEOUT - Duration::from_millis(1));
    assert!(drain(&mut c).is_empty(), "not yet");
    let t1 = t0 + FETCH_TIMEOUT;
    c.handle_timeout(t1);
    let actions = drain(&mut c);
    assert_eq!(penalties(&actions), [(a, DisconnectReason::UselessPeer)]);
    assert_eq!(header_fetches(&actions), [(b, hash, 2)]);
    // A's late answer is ignored; B's is followed by the bodies, then the imports.
    let headers = vec![blocks[2].header.clone(), blocks[1].header.clone()];
    c.on_headers(a, hash, Ok(headers.clone()), t1);
    assert!(drain(&mut c).is_empty());
    c.on_headers(b, hash, Ok(headers), t1);
    let actions = drain(&mut c);
    let expected = vec![blocks[1].header.hash_slow(), hash];
    assert!(
        matches!(&actions[..], [Action::FetchBodies { peer, hashes, .. }] if *peer == b && *hashes == expected),
        "{actions:?}"
    );
    c.on_bodies(b, hash, Ok(vec![Body::default(), Body::default()]), t1);
    let (_, imported) = run(&mut c, &mem, t1);
    assert_eq!(imported, [1, 2]);
    assert_eq!(c.fetching(), 0);
    assert_eq!(c.next_timeout(), None);
}

#[test]
fn announcers_that_deny_or_lie_are_penalised() {
    let blocks = chain(2, 0);
    let other = chain(2, 9);
    let (a, b, d) = (peer(), peer(), peer());
    let (mut c, _) = core(&blocks, &[a, b, d]);
    let now = Instant::now();
    let hash = blocks[2].header.hash_slow();
    for p in [a, b, d] {
        c.on_announcement(p, hash, 2, now);
    }
    let _ = drain(&mut c);
    // A denies having it; B answers with another chain's headers; D is gone.
    c.on_headers(a, hash, Ok(Vec::new()), now);
    let actions = drain(&mut c);
    assert_eq!(penalties(&actions), [(a, DisconnectReason::UselessPeer)]);
    assert_eq!(header_fetches(&actions), [(b, hash, 2)]);
    let lie = vec![other[2].header.clone(), other[1].header.clone()];
    c.on_headers(b, hash, Ok(lie), now);
    let actions = drain(&mut c);
    assert_eq!(
        penalties(&actions),
        [(b, DisconnectReason::BreachOfProtocol)]
    );
    assert_eq!(header_fetches(&actions), [(d, hash, 2)]);
    c.on_headers(d, hash, Err(Failure::Gone), now);
    assert!(
        penalties(&drain(&mut c)).is_empty(),
        "leaving is no offence"
    );
    assert_eq!(c.fetching(), 0, "no announcer left");
}

#[test]
fn an_unconnected_fetch_ends_with_its_blocks_queued() {
    let ours = chain(3, 0);
    let theirs = chain(3, 7);
    let p = peer();
    let (mut c, mem) = core(&ours, &[p]);
    mem.store(&ours[1]);
    let now = Instant::now();
    let hash = theirs[3].header.hash_slow();
    c.on_announcement(p, hash, 3, now);
    assert_eq!(header_fetches(&drain(&mut c)), [(p, hash, 2)]);
    let headers = vec![theirs[3].header.clone(), theirs[2].header.clone()];
    c.on_headers(p, hash, Ok(headers), now);
    let _ = drain(&mut c);
    c.on_bodies(p, hash, Ok(vec![Body::default(), Body::default()]), now);
    let (actions, imported) = run(&mut c, &mem, now);
    assert!(imported.is_empty() && actions.is_empty(), "{actions:?}");
    assert_eq!(c.fetching(), 0, "fetched once, not again");
    assert_eq!(c.queued(), 2);
}

#[test]
fn blocks_stored_elsewhere_release_their_children() {
    let blocks = chain(2, 0);
    let p = peer();
    let (mut c, mem) = core(&blocks, &[p]);
    let now = Instant::now();
    c.on_block(p, blocks[2].clone(), eth::Held::default(), now);
    let _ = drain(&mut c);
    // Block 1 arrives by sync or a local import.
    mem.store(&blocks[1]);
    let hash = blocks[1].header.hash_slow();
    c.on_imported(None, hash, 1, ImportResult::Known, now);
    let (actions, imported) = run(&mut c, &mem, now);
    assert_eq!(imported, [2]);
    assert!(
        actions
            .iter()
            .all(|a| !matches!(a, Action::Relay { hash: h, .. } if *h == hash)),
        "a block we did not store now is not relayed"
    );
}
