//! Discovery v4 benchmark (`cargo bench -p discovery`): packet decode+verify throughput
//! against its keccak256 and secp256k1-recover baselines measured in the same run, and a
//! simulated network. Prints a markdown table. Without `--bench` (as the test command
//! runs it: `cargo test -p discovery --bench discv4`) it does a short smoke pass that
//! checks the packets it times decode to what was encoded.

use std::hint::black_box;
use std::time::{Duration, Instant};

use discovery::config::Config;
use discovery::node::{Node, NodeId, keccak256};
use discovery::packet::{self, Endpoint, Message, Ping};
use discovery::sim::Sim;
use secp256k1::ecdsa::RecoverableSignature;
use secp256k1::{Message as SecpMessage, SECP256K1, SecretKey};

/// Runs `f` repeatedly for about `budget` and returns operations per second.
fn rate(budget: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        n += 100;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let key = SecretKey::from_byte_array([0x42; 32]).expect("valid key");
    let ep = Endpoint {
        ip: [10, 0, 0, 1].into(),
        udp: 30303,
        tcp: 30303,
    };
    let ping = Message::Ping(Ping {
        from: ep,
        to: ep,
        expiration: u64::MAX,
        enr_seq: Some(1),
    })
    .encode(&key)
    .0;
    let nodes: Vec<Node> = (0..12u8)
        .map(|i| Node {
            id: NodeId([i; 64]),
            ip: [10, 0, 0, i].into(),
            udp: 1,
            tcp: 1,
        })
        .collect();
    let neighbors = packet::encode_neighbors(&nodes, u64::MAX, &key).remove(0);
    let digest = keccak256(&ping[97..]);
    let (rec, rs) = SECP256K1
        .sign_ecdsa_recoverable(SecpMessage::from_digest(digest), &key)
        .serialize_compact();
    let sig = RecoverableSignature::from_compact(&rs, rec).expect("valid signature");
    // What is timed must work: a decoder failing fast would look fast.
    let signer = NodeId::from_secret_key(&key);
    let p = packet::decode(&ping).expect("the Ping decodes");
    assert!(matches!(p.message, Message::Ping(_)) && p.node_id == signer);
    let p = packet::decode(&neighbors).expect("the Neighbors decode");
    assert!(p.node_id == signer);
    let Message::Neighbors(got) = p.message else {
        panic!("Neighbors decoded as {:?}", p.message.kind());
    };
    assert!(got.nodes == nodes, "Neighbors decoded to other nodes");
    assert!(
        SECP256K1
            .recover_ecdsa(SecpMessage::from_digest(digest), &sig)
            .is_ok()
    );
    let budget = if full {
        Duration::from_secs(1)
    } else {
        Duration::from_millis(20)
    };

    let keccak = rate(budget, || {
        black_box(keccak256(black_box(&ping)));
    });
    let recover = rate(budget, || {
        black_box(
            SECP256K1
                .recover_ecdsa(SecpMessage::from_digest(black_box(digest)), &sig)
                .ok(),
        );
    });
    let dec_ping = rate(budget, || {
        black_box(packet::decode(black_box(&ping)).ok());
    });
    let dec_neigh = rate(budget, || {
        black_box(packet::decode(black_box(&neighbors)).ok());
    });
    let enc_ping = rate(budget, || {
        let m = Message::Ping(Ping {
            from: ep,
            to: ep,
            expiration: 1,
            enr_seq: Some(1),
        });
        black_box(m.encode(&key));
    });

    println!("## discv4 packets\n");
    println!("| operation | ops/s | vs secp256k1 recover |");
    println!("|---|---:|---:|");
    println!(
        "| keccak256 ({} B) | {keccak:.0} | {:.2} |",
        ping.len(),
        keccak / recover
    );
    println!("| secp256k1 recover | {recover:.0} | 1.00 |");
    println!(
        "| decode+verify Ping ({} B) | {dec_ping:.0} | {:.2} |",
        ping.len(),
        dec_ping / recover
    );
    println!(
        "| decode+verify Neighbors, 12 nodes ({} B) | {dec_neigh:.0} | {:.2} |",
        neighbors.len(),
        dec_neigh / recover
    );
    println!(
        "| encode+sign Ping | {enc_ping:.0} | {:.2} |",
        enc_ping / recover
    );

    let n: usize = std::env::var("DISCV4_SIM_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if full { 600 } else { 20 });
    let wall = Instant::now();
    let config = |_| Config {
        refresh_random_lookups: 4,
        ..Config::default()
    };
    let mut sim = Sim::new(n, 42, Duration::from_millis(20), config);
    sim.run_for(Duration::from_millis(20) * n as u32 + Duration::from_secs(10));
    let boot_packets = sim.packets();
    let boot_wall = wall.elapsed();
    let min_table = sim.nodes().map(|p| p.table().len()).min().unwrap_or(0);
    assert!(min_table > 0, "a simulated node found no one");
    let (mut pkts, mut rounds, mut exact, lookups) = (0u64, 0.0, 0, 20);
    let rtt = sim.latency() * 2;
    for k in 0..lookups {
        let from = (k * 7919) % n;
        let target = NodeId([(k as u8).wrapping_mul(37).wrapping_add(1); 64]);
        let before = sim.packets();
        if let Some((found, took)) = sim.lookup(from, target) {
            let ids: Vec<NodeId> = found.iter().map(|n| n.id).collect();
            exact += usize::from(ids == sim.closest(&target, 16, from));
            rounds += took.as_secs_f64() / rtt.as_secs_f64();
        }
        pkts += sim.packets() - before;
    }
    println!("\n## simulated network\n");
    println!("| metric | value |");
    println!("|---|---:|");
    println!("| nodes | {n} |");
    println!("| bootstrap packets (all nodes, incl. refresh) | {boot_packets} |");
    println!("| bootstrap wall time | {:.1} s |", boot_wall.as_secs_f64());
    println!("| smallest table (bucket entries) | {min_table} |");
    println!("| lookups (exact 16 closest) | {lookups} ({exact}) |");
    println!(
        "| packets per lookup | {:.0} |",
        pkts as f64 / lookups as f64
    );
    println!(
        "| rounds (RTTs) to converge per lookup | {:.1} |",
        rounds / lookups as f64
    );
}
