//! Dial scheduler tests with virtual time.

use super::*;

fn node(i: u8) -> Node {
    let mut id = [0u8; 64];
    id[0] = i;
    Node {
        id: NodeId(id),
        ip: [127, 0, 0, 1].into(),
        udp: 30303,
        tcp: 30303,
    }
}

fn sched(max_dynamic: usize, max_dials: usize) -> Scheduler {
    let limits = Limits {
        max_dynamic,
        max_dials,
        ..Limits::default()
    };
    Scheduler::new(node(0).id, limits, None)
}

#[test]
fn never_dials_self_and_respects_in_flight_limit() {
    let now = Instant::now();
    let mut s = sched(10, 3);
    s.offer(node(0), now); // ourselves
    for i in 1..=8 {
        s.offer(node(i), now);
    }
    let dials = s.next_dials(now);
    assert_eq!(dials.len(), 3);
    assert!(
        dials
            .iter()
            .all(|(n, k)| n.id != node(0).id && *k == Kind::Dynamic)
    );
    assert!(s.next_dials(now).is_empty(), "limit of 3 in flight");
    s.dial_done(&node(1).id, true, now);
    s.peer_added(node(1).id, true);
    assert_eq!(s.next_dials(now).len(), 1);
}

#[test]
fn dynamic_slots_cap_outbound_peers() {
    let now = Instant::now();
    let mut s = sched(2, 16);
    for i in 1..=5 {
        s.offer(node(i), now);
    }
    let d = s.next_dials(now);
    assert_eq!(d.len(), 2);
    for (n, _) in &d {
        s.dial_done(&n.id, true, now);
        s.peer_added(n.id, true);
    }
    assert!(!s.wants_candidates());
    assert!(s.next_dials(now).is_empty());
    s.peer_removed(&d[0].0.id, true, now);
    assert_eq!(s.next_dials(now).len(), 1);
}

#[test]
fn failed_or_departed_nodes_wait_for_the_history_period() {
    let now = Instant::now();
    let mut s = sched(5, 5);
    s.offer(node(1), now);
    let d = s.next_dials(now);
    assert_eq!(d.len(), 1);
    s.dial_done(&node(1).id, false, now);
    s.offer(node(1), now + Duration::from_secs(29));
    assert!(s.next_dials(now + Duration::from_secs(29)).is_empty());
    s.offer(node(1), now + Duration::from_secs(31));
    assert_eq!(s.next_dials(now + Duration::from_secs(31)).len(), 1);
}

#[test]
fn static_nodes_redial_with_backoff_and_ignore_dynamic_limits() {
    let now = Instant::now();
    let mut s = sched(0, 16);
    assert!(!s.add_static(node(0), now), "never ourselves");
    assert!(s.add_static(node(7), now));
    let d = s.next_dials(now);
    assert_eq!(d, vec![(node(7), Kind::Static)]);
    s.dial_done(&node(7).id, false, now);
    assert!(s.next_dials(now + Duration::from_millis(900)).is_empty());
    assert_eq!(s.next_dials(now + Duration::from_secs(1)).len(), 1);
    s.dial_done(&node(7).id, false, now + Duration::from_secs(1));
    // Second failure: 2 s.
    assert!(s.next_dials(now + Duration::from_millis(2900)).is_empty());
    assert_eq!(s.next_dials(now + Duration::from_secs(3)).len(), 1);
    s.dial_done(&node(7).id, true, now + Duration::from_secs(3));
    s.peer_added(node(7).id, false);
    assert!(
        s.next_dials(now + Duration::from_secs(60)).is_empty(),
        "connected"
    );
    s.peer_removed(&node(7).id, false, now + Duration::from_secs(60));
    assert_eq!(s.next_dials(now + Duration::from_secs(61)).len(), 1);
}

#[test]
fn netrestrict_filters_candidates() {
    let now = Instant::now();
    let restrict: NetRestrict = NetRestrict(vec!["10.0.0.0/8".parse().unwrap()]);
    let mut s = Scheduler::new(node(0).id, Limits::default(), Some(restrict));
    s.offer(node(1), now); // 127.0.0.1: outside
    let mut inside = node(2);
    inside.ip = [10, 1, 2, 3].into();
    s.offer(inside, now);
    assert_eq!(s.next_dials(now), vec![(inside, Kind::Dynamic)]);
}

/// The admin API cannot grow the static set without bound.
#[test]
fn static_set_is_capped() {
    let now = Instant::now();
    let mut s = sched(10, 10);
    let mut added = 0;
    for i in 0..MAX_STATIC as u32 + 50 {
        let mut n = node(1);
        n.id.0[..4].copy_from_slice(&i.to_be_bytes());
        n.id.0[4] = 0xaa;
        added += usize::from(s.add_static(n, now));
    }
    assert_eq!(added, MAX_STATIC);
    let mut known = node(1);
    known.id.0[..4].copy_from_slice(&0u32.to_be_bytes());
    known.id.0[4] = 0xaa;
    assert!(
        s.add_static(known, now),
        "re-adding a known node still works"
    );
}

/// The driver sleeps until a static node's backoff ends, and not at all while only an
/// event can make a dial due.
#[test]
fn next_deadline_is_the_earliest_static_redial() {
    let now = Instant::now();
    let mut s = sched(10, 1);
    assert_eq!(s.next_deadline(), None, "nothing to dial");
    s.add_static(node(1), now);
    s.add_static(node(2), now);
    assert_eq!(s.next_deadline(), Some(now), "due at once");
    let first = s.next_dials(now);
    assert_eq!(first.len(), 1);
    assert_eq!(
        s.next_deadline(),
        None,
        "every dial slot busy: wait for it to end"
    );
    s.dial_done(&first[0].0.id, false, now);
    let second = s.next_dials(now);
    assert_eq!(second.len(), 1);
    s.dial_done(&second[0].0.id, true, now);
    s.peer_added(second[0].0.id, false);
    // The failed one waits out its backoff; the connected one needs nothing.
    assert_eq!(
        s.next_deadline(),
        Some(now + Limits::default().static_backoff)
    );
    s.peer_removed(&second[0].0.id, false, now);
    assert_eq!(
        s.next_deadline(),
        Some(now + Limits::default().static_backoff)
    );
}
