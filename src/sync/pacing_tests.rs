//! Request sizing and pacing (`super::super::pacing`) against scripted peers in virtual
//! time: body requests sized by bytes, a peer cutting answers at its soft limit, the
//! serving side's request budget never exceeded, and the byte window.

use std::time::{Duration, Instant};

use alloy_consensus::Header;
use alloy_primitives::{B256, Bytes};
use protocols::eth::requests::Budget;

use super::{Config, Harness, Mode, Peer, chain, id, top};
use crate::chain::Body;

/// A chain of `len` blocks whose bodies are `bytes` large or a little more (one ommer
/// carrying `bytes` of extra data, its root in the header), and the bodies by hash.
fn sized_chain(len: u64, bytes: usize) -> (Vec<Header>, Vec<(B256, Body)>) {
    let mut headers = vec![Header::default()];
    let mut bodies = Vec::new();
    for n in 1..=len {
        let body = Body {
            ommers: vec![Header {
                number: n,
                extra_data: Bytes::from(vec![n as u8; bytes]),
                ..Header::default()
            }],
            ..Body::default()
        };
        let header = Header {
            number: n,
            parent_hash: headers[headers.len() - 1].hash_slow(),
            transactions_root: alloy_trie::EMPTY_ROOT_HASH,
            ommers_hash: alloy_consensus::proofs::calculate_ommers_root(&body.ommers),
            ..Header::default()
        };
        bodies.push((header.hash_slow(), body));
        headers.push(header);
    }
    (headers, bodies)
}

fn sized_peer(headers: &[Header], bodies: &[(B256, Body)], soft_limit: Option<u64>) -> Peer {
    let mut p = Peer::new(headers.to_vec(), Mode::Honest, None);
    p.sized = bodies.iter().cloned().collect();
    p.soft_limit = soft_limit;
    p
}

fn body_len(bodies: &[(B256, Body)]) -> u64 {
    alloy_rlp::Encodable::length(&bodies[0].1) as u64
}

#[test]
fn body_requests_are_sized_by_bytes() {
    let (theirs, bodies) = sized_chain(3_000, 3_000);
    let each = body_len(&bodies);
    let mut h = Harness::with(Config::default(), &theirs[..1]);
    h.add_peer(id(1), sized_peer(&theirs, &bodies, None), false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty());
    // The first asks before any body arrived; then each is 2 MiB of bodies.
    let fit = (2 * 1024 * 1024 / each) as usize;
    assert!((550..650).contains(&fit), "{fit}");
    assert_eq!(h.body_asks[0], 32);
    let rest = &h.body_asks[1..];
    // (The sizes vary by a few bytes: the estimate, by a body or two a request.)
    assert!(
        rest[..rest.len() - 1].iter().all(|n| n.abs_diff(fit) <= 2),
        "{rest:?}"
    );
    assert_eq!(
        h.body_asks.iter().sum::<usize>(),
        3_000,
        "each body asked once"
    );
}

#[test]
fn peer_cutting_at_its_soft_limit_is_asked_the_rest_without_fault() {
    // A peer whose soft limit is a tenth of the 2 MiB we size requests for: each answer
    // is a prefix, and the rest is asked again. Never a strike: three in a row would
    // drop it (`trust::MAX_STRIKES`), and it answers all 3,000 blocks in ~150 answers.
    let (theirs, bodies) = sized_chain(3_000, 3_000);
    let each = body_len(&bodies);
    let mut h = Harness::with(Config::default(), &theirs[..1]);
    h.add_peer(id(1), sized_peer(&theirs, &bodies, Some(200 * 1024)), false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty(), "{:?}", h.penalties);
    // Its answers were cut: more asks than 2 MiB answers would take, each body asked
    // until delivered.
    let cut = (200 * 1024u64).div_ceil(each) as usize;
    assert!(h.body_asks.len() >= 3_000 / cut, "{}", h.body_asks.len());
    // The estimate is the bodies' size: cut answers are real bodies too.
    let estimate = h.dl.body_size.estimate().unwrap_or_default();
    assert!(estimate.abs_diff(each) < 8, "{estimate} for {each}");
}

#[test]
fn requests_never_exceed_the_serving_peers_budget() {
    // Tiny requests (8 headers, 4 bodies) over 4,000 blocks: ~750 requests to each of two
    // peers, three times the serving side's burst. Answers come back at once, so only
    // the pacing holds the downloader back. Each peer checks its requests as our serving
    // side does (`eth::requests::Budget` with eth's defaults): none may be refused.
    let theirs = chain(4_000, 0, 0);
    let config = Config {
        span: 8,
        max_skeleton: 1024,
        bodies_per_request: 4,
        ..Config::default()
    };
    let mut h = Harness::with(config.clone(), &theirs[..1]);
    h.add(id(1), theirs.clone(), Mode::Honest, false);
    h.add(id(2), theirs.clone(), Mode::Honest, false);
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty());
    let eth = protocols::eth::Config::default();
    for peer in [id(1), id(2)] {
        let times: Vec<Instant> = h
            .sent
            .iter()
            .filter(|(_, p)| *p == peer)
            .map(|(t, _)| *t)
            .collect();
        assert!(
            times.len() > 2 * eth.request_burst as usize,
            "{}",
            times.len()
        );
        let mut budget = Budget::new(eth.request_burst, eth.requests_per_second, h.start);
        for (i, t) in times.iter().enumerate() {
            assert!(
                budget.try_take(*t),
                "request {i} at {:?} refused",
                *t - h.start
            );
        }
        // Our own bucket: within any second, at most its burst and rate.
        let most = (config.request_burst + config.requests_per_second) as usize;
        for (i, t) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|u| **u < *t + Duration::from_secs(1));
            assert!(within.count() <= most);
        }
    }
}

#[test]
fn body_window_holds_at_most_its_bytes() {
    // Imports held back: downloads go on until the window is full, and no further.
    let (theirs, bodies) = sized_chain(3_000, 3_000);
    let each = body_len(&bodies);
    let config = Config {
        window_bytes: 256 * 1024,
        response_bytes: 32 * 1024,
        requests_per_second: 10_000,
        request_burst: 10_000,
        ..Config::default()
    };
    let mut h = Harness::with(config.clone(), &theirs[..1]);
    h.add_peer(id(1), sized_peer(&theirs, &bodies, None), false);
    h.add_peer(id(2), sized_peer(&theirs, &bodies, None), false);
    h.held_imports = Some(Vec::new());
    while let Some(action) = h.dl.poll_action() {
        h.execute(action);
    }
    let held =
        h.dl.round
            .as_ref()
            .map(|r| r.held_bytes())
            .unwrap_or_default();
    // Full, within one request's worth (the last one went out just under the bound; the
    // first, before any size was known, asked 32 bodies).
    let over = config.response_bytes.max(32 * each);
    assert!(held >= config.window_bytes - over, "{held}");
    assert!(held <= config.window_bytes + over, "{held}");
    let asked: usize = h.body_asks.iter().sum();
    assert!(asked < 3_000 / 2, "{asked}");
    // Imports resume: the window drains and the sync completes.
    for blocks in h.held_imports.take().unwrap_or_default() {
        let r = h.import(&blocks);
        h.dl.on_imported(r, h.now);
    }
    h.run();
    assert_eq!(h.head(), top(&theirs));
    assert!(h.penalties.is_empty());
}
