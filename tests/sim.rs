//! `devp2p sim propagation` on small networks (seconds): same seed gives byte-identical
//! output, flooding and √n reach every node, √n sends fewer bytes than flooding, hostile
//! nodes that withhold cut nodes off, and ones that announce and never deliver are
//! routed around (and disconnected by the real cores' penalties).

use std::path::PathBuf;

use devp2p::cmd::sim::{StrategyArg, simulate};
use devp2p::sim::propagation::{self, Config, HostileMode, means};

fn small() -> Config {
    Config {
        seed: 7,
        nodes: 120,
        peers: 10,
        blocks: 2,
        txs: 6,
        block_bytes: 20 * 1024,
        ..Config::default()
    }
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("devp2p-sim-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn same_seed_gives_byte_identical_csv() {
    let strategies = [StrategyArg::Sqrt, StrategyArg::Announce];
    let (a, b) = (tempdir("a"), tempdir("b"));
    let files = propagation::write_outputs(&a, &simulate(&small(), &strategies)).unwrap();
    propagation::write_outputs(&b, &simulate(&small(), &strategies)).unwrap();
    assert!(files.iter().any(|f| f == "block_cdf.svg"));
    for f in files.iter().filter(|f| f.ends_with(".csv")) {
        let (x, y) = (
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
        );
        assert!(x.len() > 100, "{f} is empty");
        assert!(x == y, "{f} differs between two runs of one seed");
    }
    // Another seed is another network.
    let other = Config { seed: 8, ..small() };
    let c = tempdir("c");
    propagation::write_outputs(&c, &simulate(&other, &strategies)).unwrap();
    assert_ne!(
        std::fs::read(a.join("nodes.csv")).unwrap(),
        std::fs::read(c.join("nodes.csv")).unwrap()
    );
    for d in [a, b, c] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn flood_and_sqrt_reach_everyone_and_sqrt_sends_less() {
    let runs = simulate(
        &small(),
        &[StrategyArg::Sqrt, StrategyArg::Flood, StrategyArg::Announce],
    );
    for s in &runs {
        for it in s.blocks.iter().chain(&s.txs) {
            assert_eq!(
                it.reached(),
                1.0,
                "{} item {} missed nodes",
                s.strategy,
                it.index
            );
        }
    }
    let (sqrt, flood, ann) = (
        means(&runs[0].blocks),
        means(&runs[1].blocks),
        means(&runs[2].blocks),
    );
    assert!(
        sqrt.bytes < 0.6 * flood.bytes,
        "sqrt {} vs flood {}",
        sqrt.bytes,
        flood.bytes
    );
    assert!(
        ann.bytes < sqrt.bytes,
        "announce-only moves each block about once"
    );
    assert!(
        flood.dup > sqrt.dup && sqrt.dup > ann.dup,
        "{flood:?} {sqrt:?} {ann:?}"
    );
    // Announce-only pays a round trip per hop.
    assert!(ann.t[1].0.unwrap() > flood.t[1].0.unwrap());
}

#[test]
fn withholding_nodes_cut_off_honest_ones() {
    let cfg = Config {
        hostile: 0.85,
        hostile_mode: HostileMode::Withhold,
        ..small()
    };
    let runs = simulate(&cfg, &[StrategyArg::Flood]);
    let m = means(&runs[0].blocks);
    assert!(
        m.reached < 1.0,
        "85% withholding nodes must isolate some honest ones: {m:?}"
    );
    assert_eq!(
        m.t[2].1,
        runs[0].blocks.len(),
        "no block reaches every honest node"
    );
}

#[test]
fn announcers_that_never_deliver_are_routed_around_and_dropped() {
    let cfg = Config {
        hostile: 0.3,
        hostile_mode: HostileMode::AnnounceNeverDeliver,
        ..small()
    };
    let runs = simulate(&cfg, &[StrategyArg::Announce]);
    let s = &runs[0];
    let m = means(&s.blocks);
    assert_eq!(
        m.reached, 1.0,
        "honest announcers are asked after the hostile ones time out"
    );
    assert!(
        s.outcome.disconnects > 0,
        "penalised announcers are disconnected"
    );
    let t = means(&s.txs);
    assert_eq!(t.reached, 1.0, "transactions too: {t:?}");
}
