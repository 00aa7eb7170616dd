//! The service's periodic write of the node database, in virtual time: bonds are buffered
//! in memory and handed to the database writer every `Config::db_flush_interval`, so a
//! node that dies without shutting down keeps the bonds of the last interval written and
//! loses only the ones since. (The kill tests in `tests/discovery_kill.rs` drive the write
//! by Ctrl-C instead of waiting for this timer in another process.)

use std::path::PathBuf;
use std::time::Duration;

use discovery::{Config, NodeDb, Service};
use secp256k1::SecretKey;

/// The interval under test: longer than the default, so that no other timer is mistaken
/// for it (virtual time makes the wait free).
const FLUSH: Duration = Duration::from_secs(60);

fn db_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "discv4-flush-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("nodes.redb")
}

/// Starts a node with a database that bonds with a bootnode, lets `run` of virtual time
/// pass from its start, then stops the runtime without shutting the service down (as a
/// crash would: no final flush) and returns whether the bond was stored.
fn bond_then_die(path: &std::path::Path, run: Duration) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let boot_id = rt.block_on(async {
        let udp = || tokio::net::UdpSocket::bind("127.0.0.1:0");
        let boot = Service::spawn(
            udp().await.unwrap(),
            SecretKey::new(&mut rand::rng()),
            Config::default(),
            None,
        )
        .unwrap();
        let started = tokio::time::Instant::now();
        let config = Config {
            bootnodes: vec![boot.local_node()],
            db_flush_interval: FLUSH,
            ..Config::default()
        };
        let db = NodeDb::open(path).unwrap();
        let node = Service::spawn(
            udp().await.unwrap(),
            SecretKey::new(&mut rand::rng()),
            config,
            Some(db),
        )
        .unwrap();
        let id = boot.local_node().id;
        // The database writer is a blocking task, which stops the paused clock from
        // advancing by itself: time moves by `advance`, a step at a time, so the
        // protocol's timers (revalidation, request timeouts) fire in order on the way.
        let step = Duration::from_millis(10);
        while !node
            .table_nodes(16)
            .await
            .unwrap()
            .iter()
            .any(|n| n.id == id)
        {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "no bond with the bootnode"
            );
            tokio::time::advance(step).await;
        }
        while started.elapsed() < run {
            tokio::time::advance(step.min(run - started.elapsed())).await;
        }
        id
    });
    // Dropping the runtime drops the service's task (and with it the writer's queue, which
    // its thread drains before it closes the database): whatever was handed over is
    // written, what was still buffered is lost.
    drop(rt);
    let db = NodeDb::open(path).expect("database reopens after the writer closed it");
    db.get(&boot_id).unwrap().is_some()
}

#[test]
fn bonds_are_written_at_the_flush_interval() {
    let before = db_path("before");
    assert!(
        !bond_then_die(&before, FLUSH / 2),
        "bond written before the flush interval"
    );
    let after = db_path("after");
    assert!(
        bond_then_die(&after, FLUSH + Duration::from_secs(1)),
        "bond not written after the flush interval"
    );
    for p in [before, after] {
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
