use super::*;

fn peer(i: u8) -> PeerId {
    let k = secp256k1::SecretKey::from_byte_array([i.max(1); 32]).unwrap();
    secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &k)
}

fn h(i: u16) -> B256 {
    B256::left_padding_from(&i.to_be_bytes())
}

const M: Meta = Meta { kind: 2, size: 100 };

fn items(range: std::ops::Range<u16>) -> Vec<(B256, Meta)> {
    range.map(|i| (h(i), M)).collect()
}

fn hashes(f: &Fetch) -> Vec<B256> {
    f.hashes.iter().map(|x| x.0).collect()
}

/// A fetcher with `config` where each `(peer, hashes)` was announced at the returned time.
fn announced(config: Config, by: &[(u8, std::ops::Range<u16>)]) -> (Fetcher, Instant) {
    let t0 = Instant::now();
    let mut f = Fetcher::new(config);
    for (p, range) in by {
        f.announce(peer(*p), items(range.clone()), |_| false, t0);
    }
    (f, t0)
}

/// Requests in flight.
fn in_flight(f: &Fetcher) -> usize {
    f.peers
        .iter()
        .flatten()
        .filter(|s| s.request.is_some())
        .count()
}

/// Hashes charged to `p`.
fn owned(f: &Fetcher, p: PeerId) -> usize {
    f.peers[f.slots[&p] as usize].as_ref().unwrap().owned.len()
}

/// The fetcher's indexes agree with its table: every tracked hash is announced by,
/// charged to and (when nobody is asked for it) listed as idle by the right peers, and
/// the peers' sets hold nothing else.
fn check(f: &Fetcher) {
    for (&p, &slot) in &f.slots {
        assert_eq!(f.peers[slot as usize].as_ref().unwrap().id, p);
    }
    let present = f.peers.iter().flatten().count();
    assert_eq!(present, f.slots.len());
    let mut charged = 0;
    for (slot, s) in f.peers.iter().enumerate() {
        let Some(s) = s else { continue };
        let slot = slot as Slot;
        charged += s.owned.len();
        assert!(s.announced.len() <= f.config.max_per_peer);
        for h in &s.announced {
            assert!(f.tracked[h].announcers.iter().any(|(p, _)| *p == slot));
        }
        for h in &s.owned {
            assert_eq!(f.tracked[h].owner, slot);
        }
        for (seq, h) in &s.idle {
            let t = &f.tracked[h];
            assert_eq!((t.seq, t.fetching), (*seq, None));
            assert!(s.announced.contains(h));
        }
    }
    assert_eq!(charged, f.len());
    for (h, t) in &f.tracked {
        assert!(!t.announcers.is_empty() && t.announcers.len() <= f.config.max_announcers);
        assert!(t.announcers.iter().any(|(p, _)| *p == t.owner));
        if let Some(p) = t.fetching {
            assert!(t.announcers.iter().any(|(a, _)| *a == p));
        }
        for (p, _) in &t.announcers {
            let s = f.peers[*p as usize].as_ref().unwrap();
            assert!(s.announced.contains(h));
            assert_eq!(s.idle.get(&t.seq) == Some(h), t.fetching.is_none());
        }
    }
}

#[test]
fn waits_for_broadcast_then_fetches_once() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config::default());
    f.announce(peer(1), items(0..3), |x| *x == h(2), t0);
    f.announce(peer(2), items(0..3), |_| false, t0);
    assert_eq!(f.len(), 3);
    // Nothing before the arrival wait; h(1) arrives by broadcast meanwhile.
    assert!(f.poll(t0).is_empty());
    assert_eq!(f.next_deadline(), Some(t0 + Duration::from_millis(500)));
    f.arrived([h(1)]);
    let t1 = t0 + Duration::from_millis(500);
    let reqs = f.poll(t1);
    // One request, to the first announcer; h(2) (which peer 1 had) from peer 2 only.
    assert_eq!(reqs.len(), 2);
    let by = |p| reqs.iter().find(|r| r.peer == p).map(hashes).unwrap();
    assert_eq!(by(peer(1)), vec![h(0)]);
    assert_eq!(by(peer(2)), vec![h(2)]);
    // Nothing is asked twice while in flight.
    assert!(f.poll(t1).is_empty());
    let id = |p| reqs.iter().find(|r| r.peer == p).unwrap().id;
    f.delivered(peer(1), id(peer(1)), &[h(0)]);
    f.delivered(peer(2), id(peer(2)), &[h(2)]);
    assert!(f.is_empty());
    assert!(f.poll(t1 + Duration::from_secs(1)).is_empty());
}

#[test]
fn timeout_retries_another_announcer() {
    let (mut f, t0) = announced(Config::default(), &[(1, 0..2), (2, 0..2)]);
    let t1 = t0 + Duration::from_secs(1);
    let reqs = f.poll(t1);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].peer, peer(1));
    assert_eq!(f.next_deadline(), Some(t1 + Duration::from_secs(5)));
    // Peer 1 never answers.
    assert!(f.expire(t1 + Duration::from_secs(4)).is_empty());
    let t2 = t1 + Duration::from_secs(5);
    assert_eq!(f.expire(t2), vec![peer(1)]);
    let reqs = f.poll(t2);
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].peer, peer(2));
    assert_eq!(hashes(&reqs[0]), vec![h(0), h(1)]);
    // Peer 2 delivers one and lacks the other: nobody else has it, it is forgotten.
    // An answer to the expired request does not end the new one.
    f.delivered(peer(2), reqs[0].id - 1, &[]);
    assert_eq!(in_flight(&f), 1);
    check(&f);
    f.delivered(peer(2), reqs[0].id, &[h(0)]);
    assert!(f.is_empty());
}

#[test]
fn partial_answer_and_disconnect_move_work() {
    let (mut f, t0) = announced(Config::default(), &[(1, 0..2), (2, 0..2), (3, 0..2)]);
    let t1 = t0 + Duration::from_secs(1);
    let r = f.poll(t1);
    assert_eq!(r[0].peer, peer(1));
    f.delivered(peer(1), r[0].id, &[h(0)]);
    let r = f.poll(t1);
    assert_eq!((r[0].peer, hashes(&r[0])), (peer(2), vec![h(1)]));
    f.peer_left(&peer(2));
    let r = f.poll(t1);
    assert_eq!((r[0].peer, hashes(&r[0])), (peer(3), vec![h(1)]));
    f.peer_left(&peer(3));
    assert!(f.is_empty());
    assert!(f.peers.iter().flatten().all(|s| s.announced.is_empty()));
    check(&f);
}

#[test]
fn requests_are_bounded() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config {
        max_hashes: 10,
        max_bytes: 550,
        ..Config::default()
    });
    f.announce(peer(1), items(0..20), |_| false, t0);
    let r = f.poll(t0 + Duration::from_secs(1));
    assert_eq!(r.len(), 1);
    // 5 x 100 bytes fit in 550, a sixth does not.
    assert_eq!(r[0].hashes.len(), 5);
    // An oversized transaction still goes, alone.
    let mut f = Fetcher::new(Config {
        max_bytes: 50,
        ..Config::default()
    });
    f.announce(peer(1), items(0..2), |_| false, t0);
    assert_eq!(f.poll(t0 + Duration::from_secs(1))[0].hashes.len(), 1);
}

#[test]
fn tracking_is_bounded() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config {
        max_per_peer: 100,
        max_tracked: 150,
        max_announcers: 2,
        ..Config::default()
    });
    f.announce(peer(1), items(0..1000), |_| false, t0);
    assert_eq!(f.len(), 100);
    // Full at 150: peer 2 then takes room from peer 1 until they own the same share.
    f.announce(peer(2), items(500..1000), |_| false, t0);
    assert_eq!(f.len(), 150);
    assert_eq!(owned(&f, peer(1)), 75);
    assert_eq!(owned(&f, peer(2)), 75);
    f.announce(peer(3), items(0..100), |_| false, t0);
    f.announce(peer(4), items(0..100), |_| false, t0);
    assert!(f.len() <= 150);
    assert!(f.tracked.values().all(|t| t.announcers.len() <= 2));
    assert!(f.peers.iter().flatten().all(|s| s.announced.len() <= 100));
    // Every tracked hash is charged to exactly one of its announcers.
    check(&f);
}

/// Eight peers have announced 4096 hashes each: the default table (32768) is full.
fn silent_table() -> (Fetcher, Config, Instant) {
    let config = Config::default();
    let by: Vec<_> = (0..8u16)
        .map(|i| (i as u8 + 1, i * 4096..(i + 1) * 4096))
        .collect();
    let (f, t0) = announced(config.clone(), &by);
    assert_eq!(f.len(), config.max_tracked);
    (f, config, t0)
}

/// A poll at `now` asks `honest` for `tx` alone, which it delivers.
fn fetched_from(f: &mut Fetcher, honest: PeerId, tx: B256, now: Instant) {
    let reqs = f.poll(now);
    let mine = reqs
        .iter()
        .find(|r| r.peer == honest)
        .expect("honest peer asked");
    assert_eq!(hashes(mine), vec![tx]);
    f.delivered(honest, mine.id, &[tx]);
}

/// Eight peers announce 4096 hashes each (the default table holds 32768) and never
/// answer; an honest peer's announcement must still be fetched.
#[test]
fn silent_announcers_leave_room_for_honest_ones() {
    let (mut f, config, t0) = silent_table();
    let honest = peer(9);
    let tx = h(u16::MAX);
    f.announce(honest, [(tx, M)], |_| false, t0);
    let t1 = t0 + config.arrival_wait;
    fetched_from(&mut f, honest, tx, t1);
    // The silent ones time out again and again and are reported, once each.
    let mut now = t1;
    let mut useless = Vec::new();
    for _ in 0..config.max_timeouts {
        now += config.timeout;
        f.expire(now);
        useless.extend(f.take_useless());
        f.poll(now);
    }
    useless.sort_by_key(|p| p.serialize());
    let mut silent: Vec<_> = (1..=8).map(peer).collect();
    silent.sort_by_key(|p| p.serialize());
    assert_eq!(useless, silent);
    assert!(f.take_useless().is_empty());
}

#[test]
fn a_delivery_clears_the_timeouts() {
    let t0 = Instant::now();
    let config = Config::default();
    let mut f = Fetcher::new(config.clone());
    let mut now = t0;
    for round in 0..2 * config.max_timeouts as u16 {
        f.announce(peer(1), items(round * 10..round * 10 + 2), |_| false, now);
        now += config.arrival_wait;
        let r = f.poll(now);
        if round % 2 == 0 {
            // Times out.
            now += config.timeout;
            f.expire(now);
        } else {
            f.delivered(peer(1), r[0].id, &hashes(&r[0])[..1]);
        }
    }
    assert!(f.take_useless().is_empty());
}

#[test]
fn busy_announcers_set_no_deadline() {
    // 20 hashes, requests of at most 10: after the first request nothing else can go to
    // the only (busy) announcer, so the next deadline is the request's, not the past
    // arrival time of the waiting hashes (which would wake the driver in a loop).
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config {
        max_hashes: 10,
        ..Config::default()
    });
    f.announce(peer(1), items(0..20), |_| false, t0);
    let t1 = t0 + Duration::from_secs(1);
    let r = f.poll(t1);
    assert_eq!(r[0].hashes.len(), 10);
    assert_eq!(f.next_deadline(), Some(t1 + Duration::from_secs(5)));
    // Answered: the other ten are due at once.
    f.delivered(peer(1), r[0].id, &hashes(&r[0]));
    assert_eq!(f.next_deadline(), Some(t0 + Duration::from_millis(500)));
    assert_eq!(f.poll(t1)[0].hashes.len(), 10);
}

#[test]
fn each_announcer_is_checked_against_its_own_announcement() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config::default());
    let liar = Meta { kind: 0, size: 1 };
    f.announce(peer(1), [(h(0), liar)], |_| false, t0);
    f.announce(peer(2), [(h(0), M)], |_| false, t0);
    let t1 = t0 + Duration::from_secs(1);
    let r = f.poll(t1);
    assert_eq!(r[0].hashes, vec![(h(0), liar)]);
    f.delivered(peer(1), r[0].id, &[]);
    let r = f.poll(t1);
    assert_eq!((r[0].peer, r[0].hashes.clone()), (peer(2), vec![(h(0), M)]));
}

/// Eight peers announce 4096 hashes each (the whole 32,768-hash table) and never answer.
/// While their requests are in flight, an honest peer's announcements must be fetched at
/// a cost per event that does not grow with the silent peers' hashes: the fetcher looks at
/// the hashes it schedules and a few per peer, never the whole table.
#[test]
fn silent_announcers_do_not_make_each_event_scan_the_table() {
    let (mut f, config, t0) = silent_table();
    let mut now = t0 + config.arrival_wait;
    // Each silent peer is asked for its first 256 and never answers.
    assert_eq!(f.poll(now).len(), 8);
    let honest = peer(9);
    let before = f.visited.get();
    let rounds = 200u64;
    for i in 0..rounds {
        // Made room for by evicting a silent peer's hash (the table is full).
        let tx = B256::repeat_byte(0xee) ^ B256::left_padding_from(&i.to_be_bytes());
        f.announce(honest, [(tx, M)], |_| false, now);
        assert!(f.next_deadline().is_some());
        now += config.arrival_wait;
        fetched_from(&mut f, honest, tx, now);
        assert!(f.next_deadline().is_some());
    }
    let per_round = (f.visited.get() - before) / rounds;
    assert!(
        per_round <= 64,
        "{per_round} tracked hashes looked at per announcement (table: {})",
        f.len()
    );
}

/// Hashes whose request failed keep their age: they go out before hashes announced after
/// them, and to the next announcer, even when that peer's own list holds newer ones.
#[test]
fn retried_hashes_keep_their_place() {
    let config = Config {
        max_hashes: 2,
        ..Config::default()
    };
    let (mut f, t0) = announced(config, &[(1, 0..2), (2, 2..4), (2, 0..2)]);
    let t1 = t0 + Duration::from_secs(1);
    let r = f.poll(t1);
    let by = |r: &[Fetch], p| r.iter().find(|x| x.peer == p).map(hashes);
    assert_eq!(by(&r, peer(1)), Some(vec![h(0), h(1)]));
    assert_eq!(by(&r, peer(2)), Some(vec![h(2), h(3)]));
    check(&f);
    // Peer 2 delivers; peer 1 answers without h(1): it goes to peer 2, announced first.
    f.delivered(peer(2), r[1].id, &[h(2), h(3)]);
    f.announce(peer(2), items(4..6), |_| false, t1);
    f.delivered(peer(1), r[0].id, &[h(0)]);
    check(&f);
    let r = f.poll(t1 + Duration::from_secs(1));
    assert_eq!(by(&r, peer(2)), Some(vec![h(1), h(4)]));
    check(&f);
}

/// An announcement stamped earlier than one before it (the driver's clock never does
/// this; a caller's might) counts as arriving with the later one: announcement order is
/// arrival order, which lets a peer's list be walked only up to its first hash not yet due.
#[test]
fn arrival_times_never_go_backwards() {
    let t0 = Instant::now();
    let wait = Config::default().arrival_wait;
    let mut f = Fetcher::new(Config::default());
    f.announce(peer(1), items(0..1), |_| false, t0 + wait);
    f.announce(peer(1), items(1..2), |_| false, t0);
    assert_eq!(f.next_deadline(), Some(t0 + 2 * wait));
    assert!(f.poll(t0 + wait).is_empty());
    let r = f.poll(t0 + 2 * wait);
    assert_eq!(hashes(&r[0]), vec![h(0), h(1)]);
}

/// A request ends at the first hash that does not fit (by count or announced bytes): the
/// rest of the peer's list waits for the next request rather than being searched for
/// smaller ones, so a poll looks at no more than it sends plus one hash per peer.
#[test]
fn a_request_stops_at_the_first_hash_that_does_not_fit() {
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config {
        max_bytes: 250,
        ..Config::default()
    });
    let sized = |i: u16, size: u32| (h(i), Meta { kind: 2, size });
    f.announce(
        peer(1),
        [sized(0, 100), sized(1, 100), sized(2, 200), sized(3, 10)],
        |_| false,
        t0,
    );
    let t1 = t0 + Duration::from_secs(1);
    let before = f.visited.get();
    let r = f.poll(t1);
    assert_eq!(hashes(&r[0]), vec![h(0), h(1)]);
    assert_eq!(f.visited.get() - before, 3);
    f.delivered(peer(1), r[0].id, &[h(0), h(1)]);
    let r = f.poll(t1);
    assert_eq!(hashes(&r[0]), vec![h(2), h(3)]);
}

/// A peer's number is reused once it leaves: nothing of the old peer is left to be
/// mistaken for the new one's.
#[test]
fn a_departed_peers_slot_is_reused_clean() {
    let (mut f, t0) = announced(Config::default(), &[(1, 0..4), (2, 2..6)]);
    let t1 = t0 + Duration::from_secs(1);
    let r = f.poll(t1);
    assert_eq!(r.len(), 2);
    f.peer_left(&peer(1));
    check(&f);
    assert_eq!(f.len(), 4);
    f.announce(peer(3), items(0..1), |_| false, t1);
    assert_eq!(f.slots[&peer(3)], 0);
    check(&f);
    // Peer 3 is not peer 1: it has no request, and an answer to peer 1's request id from
    // it is ignored.
    f.delivered(peer(3), r[0].id, &[]);
    assert_eq!(f.len(), 5);
    let r = f.poll(t1 + Duration::from_secs(1));
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].peer, hashes(&r[0])), (peer(3), vec![h(0)]));
    check(&f);
}

/// Many rounds of every input, in an order drawn from a fixed seed, with small limits so
/// every bound is hit: the indexes stay consistent with the table throughout, and every
/// hash due with an idle announcer is asked for by the end of each poll.
#[test]
fn indexes_stay_consistent_under_any_sequence() {
    let mut f = Fetcher::new(Config {
        max_hashes: 4,
        max_bytes: 350,
        max_per_peer: 12,
        max_tracked: 30,
        max_announcers: 3,
        ..Config::default()
    });
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut sent: Vec<Fetch> = Vec::new();
    for _ in 0..4000 {
        let p = peer(rand(6) as u8 + 1);
        match rand(7) {
            0 | 1 => {
                let start = rand(60) as u16;
                let size = 50 + rand(200) as u32;
                let list: Vec<_> = (start..start + 1 + rand(8) as u16)
                    .map(|i| (h(i), Meta { kind: 2, size }))
                    .collect();
                f.announce(p, list, |x| *x == h(59), now);
            }
            2 if !sent.is_empty() => {
                let r = sent.swap_remove(rand(sent.len() as u64) as usize);
                let some: Vec<_> = hashes(&r).into_iter().filter(|_| rand(2) == 0).collect();
                f.delivered(r.peer, r.id, &some);
            }
            3 => f.arrived([h(rand(60) as u16)]),
            4 if rand(4) == 0 => f.peer_left(&p),
            _ => {
                now += Duration::from_millis(100 * rand(30));
                f.expire(now);
                f.take_useless();
                sent.extend(f.poll(now));
                // Nothing left that an idle announcer could be asked for now.
                for (slot, s) in f.peers.iter().enumerate() {
                    let Some(s) = s else { continue };
                    if s.request.is_some() {
                        continue;
                    }
                    if let Some((_, h)) = s.idle.first_key_value() {
                        let t = &f.tracked[h];
                        assert!(t.first_seen + f.config.arrival_wait > now, "slot {slot}");
                    }
                }
            }
        }
        check(&f);
        assert!(f.len() <= 30);
    }
}
