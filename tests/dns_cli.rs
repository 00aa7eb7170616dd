//! `devp2p dns sign` / `to-txt` as an operator runs them, and the client reading the zone
//! they write.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use discovery::dns::{Client, Config, Event, TreeUrl};
use discovery::enr::{Builder, Enr};
use secp256k1::SecretKey;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_devp2p"))
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("devp2p-dns-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn record(n: u8) -> Enr {
    let key = SecretKey::from_byte_array([n; 32]).unwrap();
    Builder::new()
        .ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
        .tcp(30303)
        .udp(30303)
        .build(1, &key)
        .unwrap()
}

fn run(args: &[&str], dir: &Path, extra: &[&Path]) -> Output {
    bin()
        .arg("dns")
        .args(args)
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

/// Resolves `zone` with the sans-IO client; returns the encodings of the records found.
fn resolve(url: &TreeUrl, zone: &BTreeMap<String, String>) -> HashSet<Vec<u8>> {
    let now = Instant::now();
    let config = Config {
        queries_per_window: 1000,
        ..Config::default()
    };
    let mut client = Client::new(vec![url.clone()], config, now);
    let mut found = HashSet::new();
    for _ in 0..1000 {
        let Some(name) = client.poll_query(now) else {
            break;
        };
        let answer = zone
            .get(&name)
            .map(|t| vec![t.clone()])
            .ok_or_else(|| discovery::dns::Error::Lookup("NXDOMAIN".into()));
        client.on_answer(&name, answer, now + Duration::from_millis(1));
        while let Some(e) = client.poll_event() {
            match e {
                Event::Enr { enr, .. } => {
                    found.insert(enr.encoded().to_vec());
                }
                Event::Error { error, .. } => panic!("{error}"),
                Event::Synced { .. } => {}
            }
        }
    }
    found
}

#[test]
fn sign_then_to_txt_gives_a_zone_the_client_resolves() {
    let dir = tempdir("sign");
    let records: Vec<Enr> = (1..=20).map(record).collect();
    let texts: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    std::fs::write(
        dir.join("nodes.json"),
        serde_json::to_string(&texts).unwrap(),
    )
    .unwrap();
    let keyfile = dir.join("key");
    std::fs::write(&keyfile, "11".repeat(32)).unwrap();

    // No domain yet: refused.
    let out = run(&["sign"], &dir, &[&keyfile]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--domain"));

    let out = bin()
        .args(["dns", "sign"])
        .arg(&dir)
        .arg(&keyfile)
        .args(["--domain", "nodes.example.org"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("enrtree-info.json")).unwrap())
            .unwrap();
    assert_eq!(info["seq"], 1);
    let url: TreeUrl = info["url"].as_str().unwrap().parse().unwrap();
    assert_eq!(url.domain, "nodes.example.org");
    let signer = SecretKey::from_byte_array([0x11; 32]).unwrap();
    assert_eq!(url, TreeUrl::new(&signer, "nodes.example.org").unwrap());

    let zone_file = dir.join("zone.json");
    let out = run(&["to-txt"], &dir, &[&zone_file]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zone: BTreeMap<String, String> =
        serde_json::from_str(&std::fs::read_to_string(&zone_file).unwrap()).unwrap();
    // 20 leaves, 2 branches and their parent, the empty link branch, the root.
    assert_eq!(zone.len(), 25);
    let want: HashSet<Vec<u8>> = records.iter().map(|r| r.encoded().to_vec()).collect();
    let found = resolve(&url, &zone);
    assert!(found == want, "found {} of {}", found.len(), want.len());

    // Signing again bumps the sequence and keeps the domain.
    let out = run(&["sign"], &dir, &[&keyfile]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("seq=2"));

    // Records changed after signing: the stored signature no longer matches.
    std::fs::write(
        dir.join("nodes.json"),
        serde_json::to_string(&texts[1..]).unwrap(),
    )
    .unwrap();
    let out = run(&["to-txt"], &dir, &[&zone_file]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signature"));
    let _ = std::fs::remove_dir_all(&dir);
}
