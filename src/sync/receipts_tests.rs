//! The receipts fetcher against scripted peers: bad receipts are penalised and asked of
//! others, withholding peers do not stall it, eth/70 partial lists are reassembled.

use super::*;

fn peer(i: u8) -> PeerId {
    let key = secp256k1::SecretKey::from_byte_array([i; 32]).expect("valid key");
    secp256k1::PublicKey::from_secret_key_global(&key)
}

fn block(i: u8) -> B256 {
    B256::repeat_byte(i)
}

fn receipt(gas: u64) -> Receipt69 {
    Receipt69 {
        tx_type: 2,
        post_state_or_status: alloy_primitives::Bytes::from_static(&[1]),
        cumulative_gas: gas,
        logs: Vec::new(),
    }
}

fn drain(f: &mut Fetcher) -> Vec<Action> {
    std::iter::from_fn(|| f.poll_action()).collect()
}

fn requests(actions: &[Action]) -> Vec<(RequestId, PeerId, Vec<B256>, u64)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Request {
                id,
                peer,
                hashes,
                first_index,
            } => Some((*id, *peer, hashes.clone(), *first_index)),
            _ => None,
        })
        .collect()
}

fn answer(lists: Vec<Vec<Receipt69>>, incomplete: bool) -> Result<Answer, Failure> {
    Ok(Answer {
        lists,
        last_block_incomplete: incomplete,
    })
}

/// Receipts that do not match (the store says so): the peer is penalised, and the block
/// is asked of another peer, never of the same one again.
#[test]
fn mismatched_receipts_penalise_and_go_to_another_peer() {
    let now = Instant::now();
    let mut f = Fetcher::new(Duration::from_secs(5));
    f.peer_joined(peer(1), now);
    f.on_accepted(block(1), true, now);
    f.on_accepted(block(2), false, now);
    let reqs = requests(&drain(&mut f));
    assert_eq!(reqs, [(0, peer(1), vec![block(1)], 0)]);
    f.on_answer(0, answer(vec![vec![receipt(1)]], false), now);
    let store = drain(&mut f);
    assert_eq!(
        store,
        [Action::Store {
            peer: peer(1),
            lists: vec![(block(1), vec![receipt(1)])]
        }]
    );
    f.on_stored(peer(1), &[block(1)], Err(block(1)), now);
    assert_eq!(drain(&mut f), [Action::Penalise { peer: peer(1) }]);
    f.peer_left(&peer(1), now);
    f.peer_joined(peer(2), now);
    let reqs = requests(&drain(&mut f));
    assert_eq!(reqs, [(1, peer(2), vec![block(1)], 0)]);
    f.on_answer(1, answer(vec![vec![receipt(2)]], false), now);
    drain(&mut f);
    f.on_stored(peer(2), &[block(1)], Ok(()), now);
    assert_eq!(f.pending(), 0);
    assert_eq!(f.given_up(), 0);
}

/// Peers that answer nothing (or time out) cost a block at most MAX_ATTEMPTS tries;
/// then it is given up, and later blocks are still fetched.
#[test]
fn withholding_peers_do_not_stall_it() {
    let now = Instant::now();
    let mut f = Fetcher::new(Duration::from_secs(5));
    for i in 1..=4 {
        f.peer_joined(peer(i), now);
    }
    f.on_accepted(block(1), true, now);
    let mut asked = Vec::new();
    let mut actions = drain(&mut f);
    let mut at = now;
    for round in 0..MAX_ATTEMPTS {
        let reqs = requests(&actions);
        assert_eq!(reqs.len(), 1, "round {round}: {actions:?}");
        let (id, p, hashes, _) = reqs[0].clone();
        assert_eq!(hashes, [block(1)]);
        assert!(!asked.contains(&p), "asked {p} twice");
        asked.push(p);
        if round == 0 {
            // No answer in time: penalised.
            at += Duration::from_secs(6);
            assert!(f.next_timeout().unwrap() <= at);
            f.handle_timeout(at);
            actions = drain(&mut f);
            assert!(
                actions.contains(&Action::Penalise { peer: p }),
                "{actions:?}"
            );
        } else {
            // The peer lacks them: no offence, but it rests.
            f.on_answer(id, answer(Vec::new(), false), at);
            actions = drain(&mut f);
            assert!(!actions.contains(&Action::Penalise { peer: p }));
            f.on_accepted(block(9), true, at);
            let again = requests(&drain(&mut f));
            assert!(again.iter().all(|r| r.1 != p), "a resting peer was asked");
            for (id, p, hashes, _) in again {
                f.on_answer(id, answer(vec![vec![receipt(1)]], false), at);
                f.on_stored(p, &hashes, Ok(()), at);
            }
            actions.extend(
                drain(&mut f)
                    .into_iter()
                    .filter(|a| !matches!(a, Action::Store { .. })),
            );
        }
    }
    assert!(requests(&actions).is_empty(), "{actions:?}");
    assert_eq!(f.given_up(), 1);
    assert_eq!(f.pending(), 0);
    f.on_accepted(block(2), true, now);
    assert_eq!(requests(&drain(&mut f)).len(), 1);
}

/// eth/70: an incomplete last list is completed from the same peer with
/// `firstBlockReceiptIndex`, and stored whole with the complete lists before it.
#[test]
fn partial_lists_are_reassembled_across_two_answers() {
    let now = Instant::now();
    let mut f = Fetcher::new(Duration::from_secs(5));
    f.peer_joined(peer(1), now);
    f.on_accepted(block(1), true, now);
    f.on_accepted(block(2), true, now);
    let reqs = requests(&drain(&mut f));
    assert_eq!(reqs, [(0, peer(1), vec![block(1)], 0)]);
    f.on_answer(0, answer(vec![vec![receipt(1)]], false), now);
    let reqs = requests(&drain(&mut f));
    assert_eq!(reqs, [(1, peer(1), vec![block(2)], 0)]);
    f.on_stored(peer(1), &[block(1)], Ok(()), now);
    f.on_answer(1, answer(vec![vec![receipt(1), receipt(2)]], true), now);
    let reqs = requests(&drain(&mut f));
    assert_eq!(reqs, [(2, peer(1), vec![block(2)], 2)]);
    f.on_answer(2, answer(vec![vec![receipt(3)]], false), now);
    assert_eq!(
        drain(&mut f),
        [Action::Store {
            peer: peer(1),
            lists: vec![(block(2), vec![receipt(1), receipt(2), receipt(3)])]
        }]
    );
}

/// The queue is bounded: the oldest blocks are given up.
#[test]
fn the_queue_is_bounded() {
    let now = Instant::now();
    let mut f = Fetcher::new(Duration::from_secs(5));
    for i in 0..MAX_QUEUE as u64 + 10 {
        f.on_accepted(B256::from(alloy_primitives::U256::from(i)), true, now);
    }
    assert_eq!(f.pending(), MAX_QUEUE);
    assert_eq!(f.given_up(), 10);
}
