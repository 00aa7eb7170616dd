//! A simulated network: one bootnode and 600 nodes over an in-memory packet network with
//! virtual time and seeded randomness. Every node's start-up refresh is one self lookup
//! plus four lookups aimed at its farthest non-full buckets. `DISCV4_SIM_NODES`,
//! `DISCV4_SIM_RANDOM` (refresh lookups) and `DISCV4_SIM_REFRESH_ALL` (a second refresh
//! round) vary the run; `DISCV4_SIM_DEBUG` prints the worst table per bucket.

use std::time::{Duration, Instant};

use discovery::config::Config;
use discovery::node::NodeId;
use discovery::sim::Sim;

#[test]
fn simulated_network_converges() {
    let n: usize = std::env::var("DISCV4_SIM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let wall = Instant::now();
    let random: usize = std::env::var("DISCV4_SIM_RANDOM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let mut sim = Sim::new(n, 42, Duration::from_millis(20), |_| Config {
        refresh_random_lookups: random,
        ..Config::default()
    });
    sim.run_for(Duration::from_millis(20) * n as u32 + Duration::from_secs(10));
    let boot = sim.packets();
    eprintln!("bootstrap: {boot} packets, {:?}", wall.elapsed());
    if std::env::var("DISCV4_SIM_REFRESH_ALL").is_ok() {
        sim.refresh_all();
        sim.run_for(Duration::from_secs(20));
    }
    eprintln!(
        "refresh: {} packets, {:?}",
        sim.packets() - boot,
        wall.elapsed()
    );
    // Bucket entries are capped by Kademlia at about 16 * (log2(n / 16) + 1) (~95 for 500
    // nodes), so the replacement lists (also live nodes, next in line) are counted too.
    let entries: Vec<usize> = sim.nodes().map(|p| p.table().len()).collect();
    let held: Vec<usize> = sim
        .nodes()
        .map(|p| p.table().len() + p.table().replacements_len())
        .collect();
    let min = held.iter().min().copied().unwrap_or(0);
    eprintln!(
        "buckets: min {} avg {}; with replacements: min {min} avg {}",
        entries.iter().min().unwrap_or(&0),
        entries.iter().sum::<usize>() / n,
        held.iter().sum::<usize>() / n
    );
    if std::env::var("DISCV4_SIM_DEBUG").is_ok() {
        let worst = held.iter().position(|h| *h == min).unwrap();
        let me = sim.node(worst).unwrap().local_id().hash();
        let mut have = [0usize; 257];
        let mut net = [0usize; 257];
        for e in sim.node(worst).unwrap().table().entries() {
            have[discovery::node::log_distance(&me, &e.hash) as usize] += 1;
        }
        for p in sim.nodes() {
            net[discovery::node::log_distance(&me, &p.local_id().hash()) as usize] += 1;
        }
        eprintln!("worst node {worst}");
        for d in (240..=256).rev() {
            eprintln!("  d={d} have {} of {}", have[d], net[d]);
        }
    }
    assert!(
        min >= 100,
        "every table holds at least 100 live entries, min was {min}"
    );
    let mut rng_ids = (0..20u8).map(|i| NodeId([i.wrapping_mul(37).wrapping_add(1); 64]));
    for k in 0..20usize {
        let from = (k * 7919) % n;
        let target = rng_ids.next().unwrap();
        let before = sim.packets();
        let (nodes, took) = sim.lookup(from, target).expect("lookup finishes");
        let got: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
        assert_eq!(
            got,
            sim.closest(&target, 16, from),
            "lookup {k} from node {from}"
        );
        eprintln!("lookup {k}: {} packets, {took:?}", sim.packets() - before);
    }
    eprintln!("total {:?}", wall.elapsed());
}
