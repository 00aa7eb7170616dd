//! Regenerates the seed corpora of the rlpx targets (the files are committed):
//!
//! ```text
//! cargo test -p devp2p-fuzz --test gen_corpus -- --ignored
//! ```
//!
//! Output is deterministic (seeded RNG, fixed keys), so a rerun leaves `git status` clean;
//! `committed_seeds_match_the_generator` (run by the test command) regenerates into a
//! scratch directory and fails if any committed seed differs.
//! EIP-8 vectors are read from `shared/spec/eips/eip-8.md` beside the repository. Files
//! this generator does not name (e.g. crash reproducers added by hand) are left alone.

use bytes::BytesMut;
use devp2p_fuzz::rlpx::{ack_key, auth_key, frame_encoder};
use rand::{RngCore, SeedableRng, rngs::StdRng};
use rlpx::handshake::{self, Initiator, Read};
use rlpx::p2p::{Capability, DisconnectReason, Hello, Snappy};
use secp256k1::PublicKey;
use std::path::{Path, PathBuf};

fn corpus_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// Writes `dir/name` under `root`, remembering the relative path in `written`.
fn write_to(root: &Path, written: &mut Vec<PathBuf>, dir: &str, name: &str, data: &[u8]) {
    let dir_path = root.join(dir);
    std::fs::create_dir_all(&dir_path).unwrap();
    std::fs::write(dir_path.join(name), data).unwrap();
    written.push(Path::new(dir).join(name));
}

fn unhex(s: &str) -> Vec<u8> {
    let s: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    s.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// The first ```text block after the line containing `marker` in eip-8.md.
fn eip8_vector(spec: &str, marker: &str) -> Vec<u8> {
    let at = spec
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in eip-8.md"));
    let rest = &spec[at..];
    let start = rest.find("```text").unwrap() + "```text".len();
    let end = start + rest[start..].find("```").unwrap();
    unhex(&rest[start..end])
}

fn random(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill_bytes(&mut v);
    v
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn our_hello() -> Hello {
    Hello {
        protocol_version: 5,
        client_id: "devp2p-rs/v0.1.0/fuzz".into(),
        capabilities: vec![Capability::new("eth", 68), Capability::new("snap", 1)],
        listen_port: 30303,
        id: handshake::id_bytes(&PublicKey::from_secret_key_global(&ack_key())),
    }
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand after changing the targets or the keys"]
fn regenerate() {
    generate(&corpus_root());
}

/// The committed seeds are exactly what the generator writes: regenerated into a scratch
/// directory, every file matches its committed twin byte for byte.
#[test]
fn committed_seeds_match_the_generator() {
    let scratch = std::env::temp_dir().join(format!("devp2p-fuzz-corpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let written = generate(&scratch);
    assert!(written.len() > 50, "only {} seeds generated", written.len());
    let mut differ = Vec::new();
    for rel in &written {
        let fresh = std::fs::read(scratch.join(rel)).unwrap();
        match std::fs::read(corpus_root().join(rel)) {
            Ok(committed) if committed == fresh => {}
            Ok(_) => differ.push(format!("{} differs", rel.display())),
            Err(e) => differ.push(format!("{} not committed: {e}", rel.display())),
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        differ.is_empty(),
        "regenerate the corpus (see the module docs):\n{}",
        differ.join("\n")
    );
}

/// Writes every seed under `root`; returns their paths relative to it.
fn generate(root: &Path) -> Vec<PathBuf> {
    let mut written = Vec::new();
    let mut write =
        |dir: &str, name: &str, data: &[u8]| write_to(root, &mut written, dir, name, data);
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/spec/eips/eip-8.md");
    let spec = std::fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("{}: {e}", spec_path.display()));
    let mut rng = StdRng::seed_from_u64(0xf022);
    let (key_a, key_b) = (ack_key(), auth_key());
    let pub_b = PublicKey::from_secret_key_global(&key_b);

    // --- auth (read with key B) and ack (read with key A) ---
    let auth1 = eip8_vector(&spec, "(Auth₁)");
    let auth2 = eip8_vector(&spec, "(Auth₂)");
    let auth3 = eip8_vector(&spec, "(Auth₃)");
    write("auth", "eip8-auth1-legacy", &auth1);
    write("auth", "eip8-auth2", &auth2);
    write("auth", "eip8-auth3-v56-extra-elements", &auth3);
    let init = Initiator::new(&mut rng, key_a, pub_b);
    let auth = init.auth().to_vec();
    write("auth", "gen-auth", &auth);
    write(
        "auth",
        "gen-auth-trailing-bytes",
        &cat(&[&auth, &random(&mut rng, 24)]),
    );
    write("auth", "truncated-auth2", &auth2[..200]);
    write(
        "auth",
        "oversized-prefix-2049",
        &cat(&[&[0x08, 0x01], &random(&mut rng, 64)]),
    );
    write(
        "auth",
        "garbage-legacy-shaped",
        &cat(&[&[0x04], &random(&mut rng, 306)]),
    );
    write(
        "auth",
        "garbage-eip8-shaped",
        &cat(&[&[0x00, 0x90], &random(&mut rng, 0x90)]),
    );

    write("ack", "eip8-ack1-legacy", &eip8_vector(&spec, "(Ack₁)"));
    let ack2 = eip8_vector(&spec, "(Ack₂)");
    write("ack", "eip8-ack2", &ack2);
    write(
        "ack",
        "eip8-ack3-v57-extra-elements",
        &eip8_vector(&spec, "(Ack₃)"),
    );
    let Ok(Read::Done(parsed, _)) = handshake::read_auth(&key_b, &auth, &mut false) else {
        panic!("generated auth does not read")
    };
    let (ack, _) = handshake::respond(&mut rng, &parsed);
    write("ack", "gen-ack", &ack);
    let Ok(Read::Done(legacy, _)) = handshake::read_auth(&key_b, &auth1, &mut false) else {
        panic!("Auth1 does not read")
    };
    let (legacy_ack, _) = handshake::respond(&mut rng, &legacy);
    assert_eq!(legacy_ack.len(), handshake::LEGACY_ACK_LEN);
    write("ack", "gen-ack-legacy", &legacy_ack);
    write("ack", "truncated-ack2", &ack2[..150]);
    write(
        "ack",
        "garbage-legacy-shaped",
        &cat(&[&[0x04], &random(&mut rng, 209)]),
    );
    write("ack", "oversized-prefix-65535", &[0xff, 0xff, 0x01, 0x02]);

    // --- frames: control byte (chunk size | 0x80 for a 1 KiB limit) ++ stream ---
    let hello_body = our_hello().encode_to_vec();
    let mut snappy = Snappy::default();
    let session = {
        let mut enc = frame_encoder();
        let mut w = BytesMut::new();
        enc.encode_frame(0x00, &hello_body, &mut w).unwrap();
        enc.encode_frame(0x02, &[0xc0], &mut w).unwrap();
        let eth_status = snappy.compress(&[0xc8; 40]).unwrap();
        enc.encode_frame(0x10, &eth_status, &mut w).unwrap();
        enc.encode_frame(0x11, &[], &mut w).unwrap();
        enc.encode_frame(0x01, &DisconnectReason::TooManyPeers.encode_body(), &mut w)
            .unwrap();
        w.to_vec()
    };
    write("frame", "gen-session-whole", &cat(&[&[0x00], &session]));
    write("frame", "gen-session-chunk7", &cat(&[&[0x07], &session]));
    write(
        "frame",
        "gen-session-chunk1-limited",
        &cat(&[&[0x81], &session]),
    );
    write(
        "frame",
        "gen-session-truncated",
        &cat(&[&[0x03], &session[..session.len() / 2]]),
    );
    let one = |id: u64, data: &[u8]| {
        let mut w = BytesMut::new();
        frame_encoder().encode_frame(id, data, &mut w).unwrap();
        w.to_vec()
    };
    write(
        "frame",
        "gen-large-id",
        &cat(&[&[0x00], &one(u64::MAX, &[0x5a; 37])]),
    );
    let big = one(0x20, &[0; 2000]);
    write(
        "frame",
        "gen-oversized-limited",
        &cat(&[&[0x80], &big[..48]]),
    );
    let mut bad_mac = one(0x02, &[0xc0]);
    *bad_mac.last_mut().unwrap() ^= 1;
    write("frame", "gen-bad-frame-mac", &cat(&[&[0x00], &bad_mac]));
    write("frame", "garbage", &random(&mut rng, 80));

    // --- hello ---
    write(
        "hello",
        "eip8-hello-v55-extra-elements",
        &eip8_vector(&spec, "devp2p hello packet"),
    );
    write("hello", "gen-hello", &hello_body);
    let mut h = our_hello();
    h.capabilities.clear();
    write("hello", "gen-hello-no-caps", &h.encode_to_vec());
    h.client_id = "x".repeat(1025);
    write("hello", "gen-hello-client-id-1025", &h.encode_to_vec());
    h.client_id = "c".into();
    h.capabilities = vec![Capability::new("c", 1); 65];
    write("hello", "gen-hello-65-caps", &h.encode_to_vec());
    h.capabilities = vec![Capability::new("n".repeat(33), 1)];
    write("hello", "gen-hello-cap-name-33", &h.encode_to_vec());
    // 1024 bytes of 0xff: accepted, but stored as 1024 U+FFFD (3072 bytes).
    h.capabilities = vec![Capability::new("eth", 68)];
    h.client_id = "\u{7f}".repeat(1024);
    let mut lossy = h.encode_to_vec();
    let at = lossy
        .windows(1024)
        .position(|w| w.iter().all(|&b| b == 0x7f))
        .unwrap();
    lossy[at..at + 1024].fill(0xff);
    write("hello", "gen-hello-invalid-utf8-client-id-1024", &lossy);
    write("hello", "empty-list", &[0xc0]);
    write(
        "hello",
        "garbage",
        &cat(&[&[0xf8, 0x40], &random(&mut rng, 64)]),
    );

    // --- disconnect ---
    write("disconnect", "list-too-many-peers", &[0xc1, 0x04]);
    write("disconnect", "bare-too-many-peers", &[0x04]);
    write("disconnect", "empty", &[]);
    write("disconnect", "empty-list", &[0xc0]);
    write("disconnect", "list-unknown-0x42", &[0xc1, 0x42]);
    write("disconnect", "list-code-255", &[0xc2, 0x81, 0xff]);
    write(
        "disconnect",
        "list-code-overflow",
        &[0xc3, 0x82, 0x01, 0x00],
    );
    write("disconnect", "list-non-canonical", &[0xc2, 0x81, 0x02]);
    write("disconnect", "list-truncated", &[0xc5, 0x01]);
    write(
        "disconnect",
        "list-extra-elements",
        &[0xc3, 0x02, 0x00, 0x80],
    );

    // --- snappy ---
    let varint = |mut n: u64| {
        let mut v = vec![];
        while n >= 0x80 {
            v.push(n as u8 | 0x80);
            n >>= 7;
        }
        v.push(n as u8);
        v
    };
    write("snappy", "bomb-declares-200mb", &varint(200_000_000));
    write(
        "snappy",
        "bomb-declares-200mb-with-literal",
        &cat(&[&varint(200_000_000), b"\x0chello"]),
    );
    write(
        "snappy",
        "declares-16mib-plus-1",
        &varint(16 * 1024 * 1024 + 1),
    );
    write("snappy", "declares-16mib-empty", &varint(16 * 1024 * 1024));
    write(
        "snappy",
        "gen-text",
        &snappy.compress(b"hello hello hello hello hello").unwrap(),
    );
    let pattern: Vec<u8> = (0..1000u32).map(|i| (i % 7) as u8).collect();
    write(
        "snappy",
        "gen-repetitive-1000",
        &snappy.compress(&pattern).unwrap(),
    );
    write(
        "snappy",
        "gen-hello-body",
        &snappy.compress(&hello_body).unwrap(),
    );
    write("snappy", "empty", &[]);
    write("snappy", "bad-varint", &[0xff; 10]);
    write("snappy", "copy-offset-past-start", &[0x0a, 0x0d, 0x64]);
    write(
        "snappy",
        "literal-past-end",
        &[0x10, 0x3c, 0x61, 0x62, 0x63],
    );
    written
}
