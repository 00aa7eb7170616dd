//! Runs every fuzz target over its committed seed corpus, each seed's truncations to every
//! length up to 256 bytes, and single-bit flips at a few dozen positions. A panic in a
//! target (a decoder bug or a broken invariant) fails the test and names the input.

use devp2p_fuzz::{TARGETS, Target};
use std::collections::BTreeSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Truncations are tried at every length up to this.
const MAX_TRUNCATION: usize = 256;
/// Bit flips per seed (at evenly spread positions, plus the first 8 bytes).
const FLIPS: usize = 40;

fn fuzz_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn seeds(dir: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let path = fuzz_dir().join("corpus").join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", path.display());
    files
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).unwrap();
            (p, data)
        })
        .collect()
}

/// The seed itself, its truncations and its single-bit flips, with a label each.
fn variants(seed: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("whole".to_string(), seed.to_vec())];
    for len in 0..seed.len().min(MAX_TRUNCATION + 1) {
        out.push((format!("truncated to {len}"), seed[..len].to_vec()));
    }
    if !seed.is_empty() {
        let positions: BTreeSet<usize> = (0..seed.len().min(8))
            .chain((0..FLIPS).map(|i| i * seed.len() / FLIPS))
            .collect();
        for pos in positions {
            let mut v = seed.to_vec();
            let bit = pos % 8;
            v[pos] ^= 1 << bit;
            out.push((format!("bit {bit} of byte {pos} flipped"), v));
        }
    }
    out
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// A target's seed directories, plus `corpus/<name>` (where `cargo fuzz run <name>` puts
/// what it finds) when that exists.
fn dirs(t: &Target) -> Vec<&'static str> {
    let mut dirs = t.corpus.to_vec();
    if !dirs.contains(&t.name) && fuzz_dir().join("corpus").join(t.name).is_dir() {
        dirs.push(t.name);
    }
    dirs
}

fn run_target(t: &Target) -> (usize, Vec<String>) {
    let mut runs = 0;
    let mut failures = Vec::new();
    for dir in dirs(t) {
        for (path, seed) in seeds(dir) {
            for (label, input) in variants(&seed) {
                runs += 1;
                if catch_unwind(AssertUnwindSafe(|| (t.run)(&input))).is_err() {
                    failures.push(format!(
                        "target {}: {} ({label}), input {}",
                        t.name,
                        path.display(),
                        hex(&input)
                    ));
                }
            }
        }
    }
    (runs, failures)
}

#[test]
fn every_target_survives_its_corpus() {
    let start = Instant::now();
    let mut failures = Vec::new();
    for t in TARGETS {
        let t0 = Instant::now();
        let (runs, f) = run_target(t);
        eprintln!("{:<12} {runs:>6} inputs in {:?}", t.name, t0.elapsed());
        failures.extend(f);
    }
    eprintln!("all targets in {:?}", start.elapsed());
    assert!(
        failures.is_empty(),
        "{} failing inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every target has a cargo-fuzz binary and `[[bin]]` entry, every binary a target, and
/// every corpus directory a target that runs it.
#[test]
fn targets_bins_and_corpora_match() {
    let names: BTreeSet<&str> = TARGETS.iter().map(|t| t.name).collect();
    assert_eq!(names.len(), TARGETS.len(), "duplicate target names");

    let bins: BTreeSet<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let bins: BTreeSet<&str> = bins.iter().map(String::as_str).collect();
    assert_eq!(
        bins, names,
        "fuzz_targets/*.rs differ from devp2p_fuzz::TARGETS"
    );

    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in &names {
        let entry = format!("name = \"{name}\"\npath = \"fuzz_targets/{name}.rs\"");
        assert!(
            manifest.contains(&entry),
            "no [[bin]] entry for {name} in fuzz/Cargo.toml"
        );
    }

    let used: BTreeSet<&str> = TARGETS.iter().flat_map(dirs).collect();
    for e in std::fs::read_dir(fuzz_dir().join("corpus")).unwrap() {
        let e = e.unwrap();
        if e.path().is_dir() {
            let dir = e.file_name().to_string_lossy().into_owned();
            assert!(
                used.contains(dir.as_str()),
                "corpus/{dir} is not run by any target"
            );
        }
    }
}

fn seed(dir: &str, name: &str) -> Vec<u8> {
    let path = fuzz_dir().join("corpus").join(dir).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The valid seeds really are valid under the targets' fixed keys and secrets, so
/// fuzzing starts past the decryption and MAC checks rather than in front of them.
#[test]
fn valid_seeds_decode() {
    use rlpx::handshake::{Read, read_ack, read_auth};
    use rlpx::p2p::{Hello, Snappy};

    let key = devp2p_fuzz::rlpx::auth_key();
    for name in [
        "eip8-auth1-legacy",
        "eip8-auth2",
        "eip8-auth3-v56-extra-elements",
        "gen-auth",
    ] {
        let data = seed("auth", name);
        let r = read_auth(&key, &data, &mut false);
        assert!(
            matches!(r, Ok(Read::Done(_, n)) if n == data.len()),
            "auth/{name}: {r:?}"
        );
    }
    let key = devp2p_fuzz::rlpx::ack_key();
    for name in [
        "eip8-ack1-legacy",
        "eip8-ack2",
        "eip8-ack3-v57-extra-elements",
        "gen-ack",
    ] {
        let data = seed("ack", name);
        let r = read_ack(&key, &data, &mut false);
        assert!(
            matches!(r, Ok(Read::Done(_, n)) if n == data.len()),
            "ack/{name}: {r:?}"
        );
    }

    let data = seed("frame", "gen-session-whole");
    let mut dec = rlpx::codec::FrameCodec::new(&devp2p_fuzz::rlpx::frame_secrets().1).decoder;
    let mut buf = bytes::BytesMut::from(&data[1..]);
    let mut ids = vec![];
    while let Some(msg) = dec.decode_frame(&mut buf).unwrap() {
        ids.push(msg.id);
    }
    assert_eq!(ids, [0x00, 0x02, 0x10, 0x11, 0x01]);
    assert!(buf.is_empty());

    for name in [
        "eip8-hello-v55-extra-elements",
        "gen-hello",
        "gen-hello-no-caps",
    ] {
        assert!(Hello::decode(&seed("hello", name)).is_ok(), "hello/{name}");
    }
    for name in ["gen-text", "gen-repetitive-1000", "gen-hello-body"] {
        assert!(
            Snappy::default().decompress(&seed("snappy", name)).is_ok(),
            "snappy/{name}"
        );
    }

    // The EIP-8 discovery packets and the EIP-778 example record are all signed by the
    // same key (EIP-8 "key B"), whose node id is this.
    let signer = "ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31387574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f";
    for (name, kind) in [
        ("eip8_ping_v4", 1),
        ("eip8_ping_v555", 1),
        ("eip8_pong", 2),
        ("eip8_findnode", 3),
        ("eip8_neighbors", 4),
    ] {
        let p = discovery::packet::decode(&seed("discv4_packet", name))
            .unwrap_or_else(|e| panic!("discv4_packet/{name}: {e}"));
        assert_eq!(p.message.kind(), kind, "discv4_packet/{name}");
        assert_eq!(p.node_id.to_string(), signer, "discv4_packet/{name}");
    }
    let rlp = discovery::Enr::decode(&seed("enr", "eip778_example")).expect("enr/eip778_example");
    let text = String::from_utf8(seed("enr", "eip778_example_text")).unwrap();
    let parsed: discovery::Enr = text.trim().parse().expect("enr/eip778_example_text");
    assert_eq!(parsed, rlp);
    assert_eq!(rlp.node_id().to_string(), signer);
    assert_eq!(rlp.seq(), 1);
    assert_eq!(rlp.ip4(), Some(std::net::Ipv4Addr::LOCALHOST));
    assert_eq!(rlp.udp(), Some(30303));

    // DNS node lists: the EIP-1459 example records parse, and one root is signed by the
    // key the `dns_root` target verifies against, so mutations reach the signature check.
    use discovery::dns::{Entry, Root};
    let text = |dir: &str, name: &str| String::from_utf8(seed(dir, name)).unwrap();
    for name in ["eip1459_example", "signed_by_list_key"] {
        let r: Result<Root, _> = text("dns_root", name).parse();
        assert!(r.is_ok(), "dns_root/{name}: {r:?}");
    }
    let root: Root = text("dns_root", "signed_by_list_key").parse().unwrap();
    let key = secp256k1::SecretKey::from_byte_array([0x22; 32]).unwrap();
    let public = secp256k1::PublicKey::from_secret_key(secp256k1::SECP256K1, &key);
    assert_eq!(root.verify(&public), Ok(()), "dns_root/signed_by_list_key");
    for (name, kind) in [
        ("eip1459_branch", "branch"),
        ("branch_empty", "branch"),
        ("eip1459_link", "link"),
        ("eip1459_enr", "enr"),
    ] {
        let e: Entry = text("dns_entry", name)
            .parse()
            .unwrap_or_else(|e| panic!("dns_entry/{name}: {e}"));
        let got = match e {
            Entry::Branch(_) => "branch",
            Entry::Link(_) => "link",
            Entry::Enr(_) => "enr",
        };
        assert_eq!(got, kind, "dns_entry/{name}");
    }
}
