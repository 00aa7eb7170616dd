//! A bootnode and five nodes on 127.0.0.1, each knowing only the bootnode, discover each
//! other over real UDP sockets; the bootnode's database keeps them across a restart.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use discovery::{Config, Handle, NodeDb, NodeId, Service};
use secp256k1::SecretKey;

fn config() -> Config {
    // Six nodes share 127.0.0.1, so the per-IP rate limit is raised.
    Config {
        rate_limit: 2_000,
        rate_burst: 2_000,
        ..Config::default()
    }
}

async fn spawn(config: Config, db: Option<NodeDb>) -> Handle {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    Service::spawn(socket, SecretKey::new(&mut rand::rng()), config, db).unwrap()
}

async fn known(h: &Handle) -> HashSet<NodeId> {
    h.table_nodes(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootnode_and_five_nodes_discover_each_other() {
    let dir = std::env::temp_dir().join(format!("discv4-loopback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = NodeDb::open(dir.join("nodes.redb")).unwrap();
    let boot = spawn(config(), Some(db)).await;
    let mut nodes = Vec::new();
    for _ in 0..5 {
        nodes.push(
            spawn(
                Config {
                    bootnodes: vec![boot.local_node()],
                    ..config()
                },
                None,
            )
            .await,
        );
    }
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.local_node().id).collect();
    let start = Instant::now();
    loop {
        let mut done = true;
        for (i, n) in nodes.iter().enumerate() {
            let k = known(n).await;
            if !ids
                .iter()
                .enumerate()
                .all(|(j, id)| i == j || k.contains(id))
            {
                done = false;
                n.lookup(ids[i]).await.unwrap();
            }
        }
        if done {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nodes did not discover each other"
        );
    }
    assert!(
        known(&boot)
            .await
            .is_superset(&ids.iter().copied().collect())
    );
    // A dialer's random-node stream yields known nodes.
    let mut stream = nodes[0].random_nodes();
    let first = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap();
    assert!(first.id == boot.local_node().id || ids.contains(&first.id));
    let enr = nodes[0].local_enr().await.unwrap();
    assert_eq!(enr.node_id(), ids[0]);
    assert_eq!(enr.udp(), Some(nodes[0].local_node().udp));

    // Shut down (flushing the database) and restart the bootnode from it.
    boot.shutdown().await;
    for n in &nodes {
        n.shutdown().await;
    }
    let db = NodeDb::open(dir.join("nodes.redb")).unwrap();
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let seeds: HashSet<NodeId> = db
        .seeds(unix, discovery::db::SEED_MAX_AGE, 30)
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(seeds, ids.iter().copied().collect());
    let seq = db.local_seq().unwrap();
    let again = spawn(config(), Some(db)).await;
    assert_eq!(
        again.table_len().await.unwrap(),
        5,
        "table seeded from the database"
    );
    // The record is signed anew at start, one past the sequence number stored (EIP-778:
    // a changed record needs a higher seq).
    assert_eq!(again.local_enr().await.unwrap().seq(), seq + 1);
    again.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
