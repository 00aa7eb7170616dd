//! Sans-IO tests with virtual time.

use super::*;
use crate::packet::Neighbors;
use crate::table::BUCKET_SIZE;
use rand::SeedableRng;

const UNIX: u64 = 1_700_000_000;

fn key(i: u8) -> SecretKey {
    SecretKey::from_byte_array([i.max(1); 32]).unwrap()
}

fn addr(i: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, i, 1)), 30303)
}

fn node_of(i: u8) -> Node {
    Node {
        id: NodeId::from_secret_key(&key(i)),
        ip: addr(i).ip(),
        udp: 30303,
        tcp: 0,
    }
}

fn proto(i: u8, config: Config, now: Instant) -> Protocol {
    Protocol::new(
        key(i),
        addr(i),
        config,
        now,
        UNIX,
        StdRng::seed_from_u64(u64::from(i)),
        1,
    )
    .unwrap()
}

/// A tiny network delivering every datagram instantly.
struct Net {
    nodes: Vec<Protocol>,
    now: Instant,
    /// Addresses whose inbound packets are dropped.
    dead: Vec<SocketAddr>,
}

impl Net {
    fn new(n: u8, config: impl Fn(u8) -> Config) -> Net {
        let now = Instant::now();
        Net {
            nodes: (1..=n).map(|i| proto(i, config(i), now)).collect(),
            now,
            dead: Vec::new(),
        }
    }

    fn get(&mut self, i: u8) -> &mut Protocol {
        &mut self.nodes[usize::from(i) - 1]
    }

    fn deliver(&mut self) -> usize {
        let mut count = 0;
        loop {
            let mut batch = Vec::new();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while let Some(t) = n.poll_transmit() {
                    batch.push((addr(i as u8 + 1), t));
                }
            }
            if batch.is_empty() {
                return count;
            }
            for (from, t) in batch {
                count += 1;
                if self.dead.contains(&t.to) {
                    continue;
                }
                if let Some(n) = self
                    .nodes
                    .iter_mut()
                    .enumerate()
                    .find(|(i, _)| addr(*i as u8 + 1) == t.to)
                {
                    n.1.handle_packet(self.now, from, &t.data);
                }
            }
        }
    }

    /// Advances virtual time in steps, firing timers and delivering packets.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(50);
            for n in &mut self.nodes {
                if n.next_timeout().is_some_and(|t| t <= self.now) {
                    n.handle_timeout(self.now);
                }
            }
            self.deliver();
        }
    }
}

fn events(p: &mut Protocol) -> Vec<Event> {
    std::iter::from_fn(|| p.poll_event()).collect()
}

fn lookup_done(p: &mut Protocol) -> Option<Event> {
    events(p)
        .into_iter()
        .find(|e| matches!(e, Event::LookupDone { .. }))
}

fn with_boot(i: u8) -> Config {
    Config {
        bootnodes: if i == 1 { vec![] } else { vec![node_of(1)] },
        ..Config::default()
    }
}

fn msg(k: u8, m: Message) -> Vec<u8> {
    m.encode(&key(k)).0
}

fn findnode(k: u8, exp: u64) -> Vec<u8> {
    msg(
        k,
        Message::FindNode(FindNode {
            target: node_of(k).id,
            expiration: exp,
        }),
    )
}

fn ping(k: u8) -> Message {
    let ep = Endpoint {
        ip: addr(k).ip(),
        udp: 30303,
        tcp: 0,
    };
    Message::Ping(Ping {
        from: ep,
        to: ep,
        expiration: UNIX + 3600,
        enr_seq: None,
    })
}

#[test]
fn bonding_and_lookup_between_two_nodes() {
    let mut net = Net::new(2, with_boot);
    let now = net.now;
    net.get(2).handle_timeout(now); // first refresh: self lookup through the bootnode
    net.deliver();
    assert!(net.get(1).table().get(&node_of(2).id).is_some());
    assert!(
        net.get(2)
            .table()
            .get(&node_of(1).id)
            .is_some_and(|e| e.last_pong.is_some())
    );
    let ev = events(net.get(2));
    assert!(ev.contains(&Event::Bonded(node_of(1))), "{ev:?}");
    // The FindNode waited for the bootnode's ping and was then answered.
    assert_eq!(net.get(1).metrics().unbonded, 0);
    let id = net.get(2).lookup(now, node_of(1).id);
    net.deliver();
    let done = lookup_done(net.get(2));
    let Some(Event::LookupDone {
        id: got,
        target: t,
        nodes,
        ..
    }) = done
    else {
        panic!("no lookup result: {done:?}");
    };
    assert_eq!((got, t, nodes), (id, node_of(1).id, vec![node_of(1)]));
}

#[test]
fn findnode_needs_bond_from_same_ip_and_bond_expires() {
    let mut net = Net::new(2, |_| Config::default());
    let now = net.now;
    // Unbonded: no reply.
    net.get(1)
        .handle_packet(now, addr(2), &findnode(2, UNIX + 60));
    assert_eq!(net.get(1).metrics().unbonded, 1);
    assert!(net.get(1).poll_transmit().is_none());
    // Node 2 pings node 1; node 1 pings back and 2 answers: node 2 is now bonded.
    net.get(2).ping(now, node_of(1));
    net.deliver();
    net.get(1)
        .handle_packet(now, addr(2), &findnode(2, UNIX + 60));
    assert!(net.get(1).poll_transmit().is_some(), "bonded: answered");
    // Same node id from another IP: no reply.
    net.get(1)
        .handle_packet(now, addr(9), &findnode(2, UNIX + 60));
    assert!(net.get(1).poll_transmit().is_none());
    assert_eq!(net.get(1).metrics().unbonded, 2);
    // Twelve hours later the bond has expired.
    let later = now + Duration::from_secs(12 * 3600 + 1);
    net.get(1)
        .handle_packet(later, addr(2), &findnode(2, UNIX + 13 * 3600));
    assert!(net.get(1).poll_transmit().is_none());
    assert_eq!(net.get(1).metrics().unbonded, 3);
}

#[test]
fn enr_request_only_for_bonded_nodes() {
    let mut net = Net::new(2, |_| Config::default());
    let now = net.now;
    let req = msg(
        2,
        Message::EnrRequest(EnrRequest {
            expiration: UNIX + 60,
        }),
    );
    net.get(1).handle_packet(now, addr(2), &req);
    assert!(net.get(1).poll_transmit().is_none());
    net.get(2).ping(now, node_of(1));
    net.deliver();
    net.get(2).request_enr(now, node_of(1));
    net.deliver();
    let enr = net.get(1).local_enr().clone();
    assert!(events(net.get(2)).contains(&Event::Enr(enr)));
    // An unsolicited response is dropped.
    let bogus = EnrResponse {
        request_hash: [9; 32],
        enr: net.get(1).local_enr().clone(),
    };
    net.get(2)
        .handle_packet(now, addr(1), &msg(1, Message::EnrResponse(bogus)));
    assert_eq!(net.get(2).metrics().unsolicited, 1);
}

#[test]
fn pong_with_wrong_hash_and_unsolicited_neighbors_are_dropped() {
    let mut net = Net::new(2, |_| Config::default());
    let now = net.now;
    net.get(1).ping(now, node_of(2));
    let _ = net.get(1).poll_transmit();
    let ep = Endpoint {
        ip: addr(1).ip(),
        udp: 30303,
        tcp: 0,
    };
    let pong = Pong {
        to: ep,
        ping_hash: [1; 32],
        expiration: UNIX + 60,
        enr_seq: None,
    };
    net.get(1)
        .handle_packet(now, addr(2), &msg(2, Message::Pong(pong)));
    assert_eq!(net.get(1).metrics().unsolicited, 1);
    assert!(events(net.get(1)).is_empty());
    assert!(net.get(1).table().is_empty());
    let n = Neighbors {
        nodes: vec![node_of(3), node_of(4)],
        expiration: UNIX + 60,
    };
    net.get(1)
        .handle_packet(now, addr(2), &msg(2, Message::Neighbors(n)));
    assert_eq!(net.get(1).metrics().unsolicited, 2);
    assert!(net.get(1).table().is_empty());
}

/// go-ethereum reads `expiration` as a signed UNIX time (`v4wire.Expired` casts it to
/// int64), and its `discv4 test` Ping/PastExpiration and Findnode/PastExpiration cases
/// send `-(now + 20 s)` wrapped to uint64: a time in the past, not in the far future.
#[test]
fn expiration_with_the_sign_bit_set_is_in_the_past() {
    let mut p = proto(
        1,
        Config {
            rate_burst: 1000,
            ..Config::default()
        },
        Instant::now(),
    );
    let now = Instant::now();
    let past = (UNIX + 20).wrapping_neg();
    let Message::Ping(mut ping) = ping(2) else {
        unreachable!()
    };
    ping.expiration = past;
    p.handle_packet(now, addr(2), &msg(2, Message::Ping(ping)));
    p.handle_packet(now, addr(2), &findnode(2, past));
    assert_eq!(p.metrics().expired, 2);
    assert!(p.poll_transmit().is_none(), "no reply to an expired packet");
}

#[test]
fn expired_and_malformed_packets_are_counted() {
    let mut p = proto(
        1,
        Config {
            rate_burst: 1000,
            ..Config::default()
        },
        Instant::now(),
    );
    let now = Instant::now();
    p.handle_packet(now, addr(2), &findnode(2, UNIX - 1));
    assert_eq!(p.metrics().expired, 1);
    let good = msg(2, ping(2));
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![],
        vec![0; 97],
        vec![0; 2000],
        good[..good.len() - 1].to_vec(),
    ];
    let mut flipped = good.clone();
    flipped[40] ^= 0xff;
    inputs.push(flipped);
    for kind in 0..=255u8 {
        let mut v = good.clone();
        v[97] = kind;
        inputs.push(v);
    }
    for i in &inputs {
        p.handle_packet(now, addr(3), i);
    }
    assert_eq!(
        p.metrics().malformed as usize,
        inputs.len() - 1,
        "only the untouched type 1 passes"
    );
}

#[test]
fn ping_flood_is_rate_limited_with_bounded_state() {
    let config = Config {
        max_peers: 64,
        ..Config::default()
    };
    let mut p = proto(1, config.clone(), Instant::now());
    let start = Instant::now();
    let flood = msg(2, ping(2));
    let mut replies = 0;
    for i in 0..5000u32 {
        let now = start + Duration::from_millis(u64::from(i / 5)); // 5000 packets/s for 1 s
        p.handle_packet(now, addr(2), &flood);
        while p.poll_transmit().is_some() {
            replies += 1;
        }
    }
    let allowed = (config.rate_burst + config.rate_limit) as usize;
    assert!(p.metrics().rate_limited >= 5000 - allowed as u64);
    assert!(replies <= 2 * allowed, "{replies} replies");
    // Many identities from many addresses: bonding state stays capped.
    for i in 0..200u8 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)), 30303);
        p.handle_packet(start, from, &msg(i.wrapping_add(10), ping(i)));
    }
    assert!(p.tracked_peers() <= 64);
}

#[test]
fn revalidation_replaces_dead_node() {
    let mut net = Net::new(1, |_| Config::default());
    let me = net.get(1).local_id().hash();
    // Fill node 1's farthest bucket with live nodes 2.. and one replacement.
    let mut far = Vec::new();
    for i in 2..=120u8 {
        if crate::node::log_distance(&me, &node_of(i).id.hash()) == 256 {
            far.push(i);
        }
    }
    assert!(far.len() > BUCKET_SIZE);
    let far = &far[..BUCKET_SIZE + 1];
    let now = net.now;
    // The Net addresses nodes by position: far[k] runs at position k + 2.
    net.nodes
        .extend(far.iter().map(|&i| proto(i, Config::default(), now)));
    let at = |k: usize| Node {
        ip: addr(k as u8 + 2).ip(),
        ..node_of(far[k])
    };
    for k in 0..far.len() {
        net.get(1).add_node(at(k));
    }
    assert_eq!(net.get(1).table().len(), BUCKET_SIZE);
    assert_eq!(net.get(1).table().replacements_len(), 1);
    let (head, replacement) = (far[0], far[BUCKET_SIZE]);
    net.dead.push(at(0).udp_addr());
    net.run_for(Duration::from_secs(600));
    let t = net.get(1).table();
    assert!(t.get(&node_of(head).id).is_none(), "dead head removed");
    assert!(
        t.get(&node_of(replacement).id).is_some(),
        "replacement promoted"
    );
    assert_eq!(t.len(), BUCKET_SIZE);
    assert!(
        t.entries()
            .all(|e| e.node.id == node_of(head).id || e.last_pong.is_some())
    );
}

#[test]
fn lookup_times_out_on_dead_nodes() {
    let mut net = Net::new(1, |_| Config {
        bootnodes: vec![node_of(2), node_of(3)],
        ..Config::default()
    });
    let target = node_of(9).id;
    let now = net.now;
    let id = net.get(1).lookup(now, target);
    net.run_for(Duration::from_secs(5));
    let done = lookup_done(net.get(1));
    let Some(Event::LookupDone {
        id: got,
        target: t,
        nodes,
        ..
    }) = done
    else {
        panic!("no lookup result: {done:?}");
    };
    assert_eq!((got, t, nodes), (id, target, vec![]));
}

#[test]
fn external_address_by_majority_and_eth_entry() {
    let mut net = Net::new(4, |_| Config::default());
    let now = net.now;
    // Node 1 bound to 0.0.0.0 would advertise no IP; here it is told 10.0.1.1 by its peers.
    let seq = net.get(1).local_enr().seq();
    net.nodes[0] = Protocol::new(
        key(1),
        "0.0.0.0:30303".parse().unwrap(),
        Config {
            min_votes: 2,
            ..Config::default()
        },
        now,
        UNIX,
        StdRng::seed_from_u64(1),
        1,
    )
    .unwrap();
    assert_eq!(net.get(1).local_enr().ip4(), None);
    for i in 2..=4 {
        net.get(1).ping(now, node_of(i));
    }
    net.deliver();
    assert_eq!(
        net.get(1).local_enr().ip4(),
        Some(Ipv4Addr::new(10, 0, 1, 1))
    );
    assert!(net.get(1).local_enr().seq() > seq);
    let eth = vec![0xc7, 0xc6, 0x84, 1, 2, 3, 4, 0x80];
    net.get(1).set_eth_entry(Some(eth.clone())).unwrap();
    assert_eq!(net.get(1).local_enr().eth(), Some(&eth[..]));
    // Fixed external IP ignores votes.
    let cfg = Config {
        external_ip: Some("1.2.3.4".parse().unwrap()),
        min_votes: 1,
        ..Config::default()
    };
    net.nodes[0] =
        Protocol::new(key(1), addr(1), cfg, now, UNIX, StdRng::seed_from_u64(1), 1).unwrap();
    net.get(1).ping(now, node_of(2));
    net.deliver();
    assert_eq!(
        net.get(1).local_enr().ip4(),
        Some(Ipv4Addr::new(1, 2, 3, 4))
    );
}

/// A NAT mapping's endpoint replaces the voted address and ports in the record (seq
/// bumped, once), and later votes do not move it back.
#[test]
fn external_endpoint_from_a_port_mapping_overrides_votes() {
    let mut net = Net::new(3, |_| Config {
        min_votes: 1,
        ..Config::default()
    });
    let now = net.now;
    let ext: IpAddr = "203.0.114.7".parse().unwrap();
    let seq = net.get(1).local_enr().seq();
    net.get(1).set_external_endpoint(ext, 40001, 40002).unwrap();
    let enr = net.get(1).local_enr().clone();
    assert_eq!(enr.seq(), seq + 1);
    assert_eq!(
        (enr.ip4(), enr.udp(), enr.tcp()),
        (
            Some("203.0.114.7".parse().unwrap()),
            Some(40001),
            Some(40002)
        )
    );
    net.get(1).set_external_endpoint(ext, 40001, 40002).unwrap();
    assert_eq!(
        net.get(1).local_enr().seq(),
        seq + 1,
        "unchanged: no new seq"
    );
    for i in 2..=3 {
        net.get(1).ping(now, node_of(i));
    }
    net.deliver();
    assert_eq!(
        net.get(1).local_enr().ip4(),
        Some("203.0.114.7".parse().unwrap()),
        "votes ignored"
    );
    let v6: IpAddr = "2001:db9::1".parse().unwrap();
    net.get(1).set_external_endpoint(v6, 0, 0).unwrap();
    let enr = net.get(1).local_enr();
    assert_eq!(
        (enr.ip6(), enr.udp(), enr.tcp()),
        (
            Some("2001:db9::1".parse().unwrap()),
            Some(40001),
            Some(40002)
        ),
        "0 keeps the ports"
    );
}

fn wide_key(i: u16) -> SecretKey {
    let mut b = [7u8; 32];
    b[..2].copy_from_slice(&i.to_be_bytes());
    SecretKey::from_byte_array(b).unwrap()
}

/// The endpoint of a node at `from`.
fn endpoint_of(from: SocketAddr) -> Endpoint {
    Endpoint {
        ip: from.ip(),
        udp: from.port(),
        tcp: 0,
    }
}

/// The node with key `k` at `from` pings `p`.
fn ping_from(p: &mut Protocol, now: Instant, k: &SecretKey, from: SocketAddr) {
    let ep = endpoint_of(from);
    let ping = Message::Ping(Ping {
        from: ep,
        to: ep,
        expiration: UNIX + 3600,
        enr_seq: None,
    });
    p.handle_packet(now, from, &ping.encode(k).0);
}

/// The node with key `k` at `from` pings `p` and answers the ping back: a full bond.
fn bond(p: &mut Protocol, now: Instant, k: &SecretKey, from: SocketAddr) {
    bond_saying(p, now, k, from, endpoint_of(from));
}

/// [`bond`], the Pong saying `p` is at `ep` (a vote on `p`'s external address).
fn bond_saying(p: &mut Protocol, now: Instant, k: &SecretKey, from: SocketAddr, ep: Endpoint) {
    ping_from(p, now, k, from);
    let mut ours = None;
    while let Some(t) = p.poll_transmit() {
        if let Ok(pk) = packet::decode(&t.data)
            && t.to.ip() == canonical_ip(from.ip())
            && matches!(pk.message, Message::Ping(_))
        {
            ours = Some(pk.hash);
        }
    }
    let Some(hash) = ours else { return };
    let pong = Message::Pong(Pong {
        to: ep,
        ping_hash: hash,
        expiration: UNIX + 3600,
        enr_seq: None,
    });
    p.handle_packet(now, from, &pong.encode(k).0);
    while p.poll_transmit().is_some() {}
}

/// Whether `p` answers a FindNode from key `k` at `from` (it does only for a live bond).
fn answers_findnode(p: &mut Protocol, now: Instant, k: &SecretKey, from: SocketAddr) -> bool {
    let req = Message::FindNode(FindNode {
        target: NodeId([1; 64]),
        expiration: UNIX + 3600,
    });
    p.handle_packet(now, from, &req.encode(k).0);
    let to = canonical_ip(from.ip());
    std::iter::from_fn(|| p.poll_transmit()).any(|t| t.to.ip() == to)
}

/// One address with hundreds of node ids holds [`BONDS_PER_IP`] bonds; a map full of
/// bonds from many addresses still lets a newcomer bond (the least recently proven goes).
#[test]
fn bonds_are_bounded_per_ip_and_evictable() {
    let config = Config {
        max_peers: 64,
        rate_limit: 1_000_000,
        rate_burst: 1_000_000,
        ..Config::default()
    };
    let mut p = proto(1, config, Instant::now());
    let now = Instant::now();
    let host = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8)), 30303);
    for i in 0..200u16 {
        bond(&mut p, now, &wide_key(i), host);
    }
    assert!(
        answers_findnode(&mut p, now, &wide_key(199), host),
        "newest kept"
    );
    assert!(
        p.bonds_from(host.ip(), now) <= BONDS_PER_IP,
        "{} bonds from one address",
        p.bonds_from(host.ip(), now)
    );
    // Fill the map with bonds from 64 addresses, a minute apart so their age differs.
    for i in 0..64u16 {
        let at = now + Duration::from_secs(60 + u64::from(i));
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(9, 9, i as u8, 1)), 30303);
        bond(&mut p, at, &wide_key(1000 + i), from);
    }
    assert!(p.tracked_peers() <= 64);
    let later = now + Duration::from_secs(600);
    // Pings from fresh ids (no pong) do not push bonds out.
    for i in 0..100u16 {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(7, 7, i as u8, 1)), 30303);
        ping_from(&mut p, later, &wide_key(3000 + i), from);
        while p.poll_transmit().is_some() {}
    }
    let oldest = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(9, 9, 0, 1)), 30303);
    assert!(
        answers_findnode(&mut p, later, &wide_key(1000), oldest),
        "bond kept"
    );
    let newcomer = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(5, 5, 5, 5)), 30303);
    bond(&mut p, later, &wide_key(5000), newcomer);
    assert!(
        answers_findnode(&mut p, later, &wide_key(5000), newcomer),
        "a newcomer bonds although the map is full of bonds"
    );
    assert!(p.tracked_peers() <= 64);
    // Loopback (local test networks) is exempt.
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 30303);
    for i in 0..20u16 {
        bond(&mut p, later, &wide_key(6000 + i), local);
    }
    assert_eq!(p.bonds_from(local.ip(), later), 20);
}

/// A sender seen through a dual-stack socket as `::ffff:a.b.c.d` bonds as the IPv4 address.
#[test]
fn mapped_sender_is_its_ipv4_address() {
    let config = Config {
        rate_limit: 1_000_000,
        rate_burst: 1_000_000,
        ..Config::default()
    };
    let mut p = proto(1, config, Instant::now());
    let now = Instant::now();
    let mapped: SocketAddr = "[::ffff:8.8.4.4]:30303".parse().unwrap();
    bond(&mut p, now, &wide_key(1), mapped);
    let v4: SocketAddr = "8.8.4.4:30303".parse().unwrap();
    assert_eq!(p.bonds_from(v4.ip(), now), 1);
    assert!(answers_findnode(&mut p, now, &wide_key(1), v4));
}

/// A dual-stack node (one socket on `::`) is told its IPv4 address by IPv4 peers and its
/// IPv6 address by IPv6 peers: its record carries both (`ip` and `ip6`, shared ports),
/// the votes of one family never moving the other's address.
#[test]
fn dual_stack_record_gets_an_address_of_each_family_by_votes() {
    let now = Instant::now();
    let config = Config {
        min_votes: 2,
        ..Config::default()
    };
    let mut p = Protocol::new(
        key(1),
        "[::]:30303".parse().unwrap(),
        config,
        now,
        UNIX,
        StdRng::seed_from_u64(1),
        1,
    )
    .unwrap();
    assert_eq!(p.local_enr().ip4(), None);
    assert_eq!(p.local_enr().ip6(), None);
    let ours4: IpAddr = "198.51.100.7".parse().unwrap();
    let ours6: IpAddr = "2001:db8::7".parse().unwrap();
    let at = |ip: IpAddr| Endpoint {
        ip,
        udp: 30303,
        tcp: 30303,
    };
    // IPv4 peers reach the `::` socket as IPv4-mapped addresses; each family's votes
    // leave the other family's address alone.
    let voters = [
        ("[::ffff:10.0.2.1]:30303", ours4),
        ("[::ffff:10.0.2.2]:30303", ours4),
        ("[2001:db8::10]:30303", ours6),
        ("[2001:db8::11]:30303", ours6),
    ];
    for (i, (from, ours)) in voters.into_iter().enumerate() {
        bond_saying(
            &mut p,
            now,
            &key(10 + i as u8),
            from.parse().unwrap(),
            at(ours),
        );
        if i == 1 {
            assert_eq!(p.local_enr().ip4(), Some(Ipv4Addr::new(198, 51, 100, 7)));
            assert_eq!(p.local_enr().ip6(), None);
        }
    }
    let enr = p.local_enr().clone();
    assert_eq!(enr.ip4(), Some(Ipv4Addr::new(198, 51, 100, 7)));
    assert_eq!(enr.ip6(), Some("2001:db8::7".parse().unwrap()));
    assert_eq!(enr.udp(), Some(30303));
    // Dialers of either family find us; the IPv4 endpoint is the one `to_node` gives.
    assert_eq!(enr.to_node().map(|n| n.ip), Some(ours4));
    assert_eq!(p.local_node().ip, ours4);
}
