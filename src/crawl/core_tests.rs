use super::*;
use secp256k1::SecretKey;

fn key(i: u8) -> SecretKey {
    let mut b = [0x11u8; 32];
    b[0] = i.max(1);
    SecretKey::from_byte_array(b).unwrap()
}

fn record(i: u8, seq: u64, tcp: u16) -> Enr {
    let mut b = discovery::enr::Builder::new()
        .ip([10, 0, 0, i].into())
        .udp(30303);
    if tcp != 0 {
        b = b.tcp(tcp);
    }
    b.build(seq, &key(i)).unwrap()
}

fn candidate(i: u8) -> Candidate {
    let r = record(i, 1, 30303);
    Candidate {
        node: r.to_node().unwrap(),
        record: None,
    }
}

fn config() -> Config {
    Config {
        max_nodes: 4,
        max_queue: 3,
        max_checks: 2,
        max_dials: 1,
        dials_per_sec: 1.0,
        revalidate: Duration::from_secs(60),
    }
}

fn drain(c: &mut Crawler, now: Instant) -> Vec<Action> {
    std::iter::from_fn(|| c.poll_action(now)).collect()
}

const T0: u64 = 1_700_000_000;

/// Checks and dials never exceed their concurrency caps, queues never exceed theirs, and
/// dials follow the rate: one a second here.
#[test]
fn caps_and_rates_hold() {
    let now = Instant::now();
    let mut c = Crawler::new(config(), NodeSet::new(), now, T0);
    for i in 1..=10 {
        c.on_candidate(now, candidate(i));
    }
    assert_eq!(c.progress().dropped, 7, "queue of 3");
    let a = drain(&mut c, now);
    assert_eq!(a.len(), 2, "two checks in flight: {a:?}");
    let ids: Vec<NodeId> = a
        .iter()
        .map(|a| match a {
            Action::Check(n) => n.id,
            Action::Dial(_) => panic!("no dial before a check"),
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        c.on_check(now, *id, Some(record(i as u8 + 1, 2, 30303)));
    }
    assert_eq!(c.progress().added, 2);
    assert_eq!(c.nodes()[&ids[0]].seq, 2, "the fresher record");
    let a = drain(&mut c, now);
    assert_eq!(
        a.iter().filter(|a| matches!(a, Action::Dial(_))).count(),
        1,
        "one dial in flight: {a:?}"
    );
    c.on_dial(now, ids[0], Err("x".repeat(500)));
    assert_eq!(c.nodes()[&ids[0]].dial_error.as_ref().unwrap().len(), 120);
    assert!(
        drain(&mut c, now)
            .iter()
            .all(|a| !matches!(a, Action::Dial(_))),
        "rate: 1/s"
    );
    let later = now + Duration::from_secs(1);
    assert_eq!(c.next_timeout(now), later);
    assert!(drain(&mut c, later).contains(&Action::Dial(record(2, 2, 30303).to_node().unwrap())));
}

/// go-ethereum's scoring: +1 per answer, halved per miss, removed at 0; a node never
/// seen answering is not added; a node checked recently is skipped.
#[test]
fn scores_like_geth_and_revalidates() {
    let now = Instant::now();
    let mut c = Crawler::new(config(), NodeSet::new(), now, T0);
    let id = candidate(1).node.id;
    c.on_candidate(now, candidate(1));
    assert_eq!(drain(&mut c, now).len(), 1);
    c.on_check(now, id, Some(record(1, 1, 30303)));
    let e = &c.nodes()[&id];
    assert_eq!((e.score, e.first_response, e.last_check), (1, T0, T0));
    c.on_candidate(now, candidate(1));
    assert_eq!(c.progress().recent, 1, "checked within the interval");

    // Due again after the interval: the scan queues it without a candidate.
    let t = now + Duration::from_secs(61);
    let checks: Vec<Action> = drain(&mut c, t)
        .into_iter()
        .filter(|a| matches!(a, Action::Check(_)))
        .collect();
    assert_eq!(checks.len(), 1, "{checks:?}");
    c.on_check(t, id, None);
    assert!(!c.nodes().contains_key(&id), "1 / 2 = 0: removed");
    assert_eq!(c.progress().removed, 1);

    let other = candidate(2);
    c.on_candidate(t, other.clone());
    drain(&mut c, t);
    c.on_check(t, other.node.id, None);
    assert_eq!(c.progress().unreachable, 1);
    assert!(c.nodes().is_empty());
}

/// A record for another node than the one checked is no answer (a source that mixes
/// them up, or a node lying about its record).
#[test]
fn a_record_of_another_node_is_no_answer() {
    let now = Instant::now();
    let mut c = Crawler::new(config(), NodeSet::new(), now, T0);
    let id = candidate(1).node.id;
    c.on_candidate(now, candidate(1));
    drain(&mut c, now);
    c.on_check(now, id, Some(record(2, 1, 1)));
    assert!(c.nodes().is_empty());
    // An answer nobody asked for changes nothing.
    c.on_check(now, id, Some(record(1, 1, 1)));
    assert!(c.nodes().is_empty());
}

/// The set never grows past its cap; a resumed input over it keeps the best scores.
#[test]
fn the_set_is_bounded() {
    let now = Instant::now();
    let mut input = NodeSet::new();
    for i in 1..=6u8 {
        let mut e = Entry::new(record(i, 1, 30303));
        e.score = i64::from(i);
        input.insert(e.record.node_id(), e);
    }
    let c = Crawler::new(config(), input, now, T0);
    let scores: Vec<i64> = c.nodes().values().map(|e| e.score).collect();
    assert_eq!(scores.len(), 4);
    assert!(scores.iter().all(|s| *s >= 3), "{scores:?}");

    let mut c = Crawler::new(
        Config {
            max_queue: 100,
            max_checks: 100,
            ..config()
        },
        NodeSet::new(),
        now,
        T0,
    );
    for i in 1..=9 {
        c.on_candidate(now, candidate(i));
    }
    for a in drain(&mut c, now) {
        if let Action::Check(n) = a {
            let i =
                n.ip.to_string()
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
            c.on_check(now, n.id, Some(record(i, 1, 0)));
        }
    }
    assert_eq!(c.nodes().len(), 4);
    assert_eq!(c.progress().dropped, 5);
    assert!(
        drain(&mut c, now).is_empty(),
        "no TCP port: nothing to dial"
    );
}

#[test]
fn rate_refills_up_to_burst() {
    let now = Instant::now();
    let mut r = Rate::new(2.0, 2.0, now);
    assert!(r.take(now) && r.take(now) && !r.take(now));
    assert_eq!(r.ready_at(now), Some(now + Duration::from_millis(500)));
    let later = now + Duration::from_secs(10);
    assert!(
        r.take(later) && r.take(later) && !r.take(later),
        "burst of 2"
    );
    let mut zero = Rate::new(0.0, 0.0, now);
    assert!(zero.take(now), "one token to start with");
    assert_eq!(zero.ready_at(later), None, "then none ever");
}
