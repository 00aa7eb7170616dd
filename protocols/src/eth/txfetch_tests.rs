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

/// Requests in flight.
fn in_flight(f: &Fetcher) -> usize {
    f.peers.iter().flatten().filter(|s| s.request.is_some()).count()
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
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config::default());
    f.announce(peer(1), items(0..2), |_| false, t0);
    f.announce(peer(2), items(0..2), |_| false, t0);
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
    let t0 = Instant::now();
    let mut f = Fetcher::new(Config::default());
    f.announce(peer(1), items(0..2), |_| false, t0);
    f.announce(peer(2), items(0..2), |_| false, t0);
    f.announce(peer(3), items(0..2), |_| false, t0);
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

/// Eight peers announce 4096 hashes each (the default table holds 32768) and never
/// answer; an honest peer's announcement must still be fetched.
#[test]
fn silent_announcers_leave_room_for_honest_ones() {
    let t0 = Instant::now();
    let config = Config::default();
    let mut f = Fetcher::new(config.clone());
    for i in 0..8u16 {
        f.announce(
            peer(i as u8 + 1),
            items(i * 4096..(i + 1) * 4096),
            |_| false,
            t0,
        );
    }
    assert_eq!(f.len(), config.max_tracked);
    let honest = peer(9);
    let tx = h(u16::MAX);
    f.announce(honest, [(tx, M)], |_| false, t0);
    let t1 = t0 + config.arrival_wait;
    let reqs = f.poll(t1);
    let mine = reqs
        .iter()
        .find(|r| r.peer == honest)
        .expect("honest peer asked");
    assert_eq!(hashes(mine), vec![tx]);
    f.delivered(honest, mine.id, &[tx]);
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
    let t0 = Instant::now();
    let config = Config::default();
    let mut f = Fetcher::new(config.clone());
    for i in 0..8u16 {
        let items = items(i * 4096..(i + 1) * 4096);
        f.announce(peer(i as u8 + 1), items, |_| false, t0);
    }
    assert_eq!(f.len(), config.max_tracked);
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
        let reqs = f.poll(now);
        let mine = reqs.iter().find(|r| r.peer == honest).expect("honest peer asked");
        assert_eq!(hashes(mine), vec![tx]);
        f.delivered(honest, mine.id, &[tx]);
        assert!(f.next_deadline().is_some());
    }
    let per_round = (f.visited.get() - before) / rounds;
    assert!(
        per_round <= 64,
        "{per_round} tracked hashes looked at per announcement (table: {})",
        f.len()
    );
}
