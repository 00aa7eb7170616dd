//! `devp2p test rlpx`: the p2p base protocol cases go-ethereum has: `Ping`, its
//! `devp2p rlpx ping` command (`cmd/devp2p/rlpxcmd.go`: the handshake, then a Hello that
//! decodes), and `MaliciousHandshake` from `internal/ethtest/suite.go` (malformed Hellos),
//! which go-ethereum runs in its eth suite and this one runs too.

use std::time::Duration;

use rand::RngCore;
use rlpx::p2p::Hello;
use secp256k1::SecretKey;

use super::conn::{Caps, Conn, DISC_MSG, HANDSHAKE_MSG, disconnect_reason, encode_hello, pub64};
use super::{Outcome, Suite, fail};

/// The cases.
pub const CASES: &[&str] = &["Ping", "MaliciousHandshake"];

/// eth version in the malicious Hellos: go-ethereum's `eth.ProtocolVersions[0]` at the
/// ported commit (eth/72).
const MALICIOUS_ETH_VERSION: u32 = 72;

/// The p2p base protocol suite against one node.
#[derive(Debug, Clone)]
pub struct RlpxSuite {
    remote: discovery::Node,
}

impl RlpxSuite {
    /// A suite against `remote` (its TCP endpoint).
    pub fn new(remote: discovery::Node) -> Self {
        Self { remote }
    }
}

impl Suite for RlpxSuite {
    fn name(&self) -> &'static str {
        "rlpx"
    }
    fn cases(&self) -> &'static [&'static str] {
        CASES
    }
    fn case_timeout(&self) -> Duration {
        // Five dials with two 2 s reads each at worst.
        Duration::from_secs(30)
    }
    async fn run_case(&self, name: &str) -> Outcome {
        match name {
            "Ping" => ping(&self.remote).await,
            "MaliciousHandshake" => malicious_handshake(&self.remote).await,
            other => fail!("unknown case {other}"),
        }
    }
}

/// `devp2p rlpx ping`: after the ECIES handshake the node's first message is a Hello that
/// decodes (a Disconnect or anything else fails).
async fn ping(remote: &discovery::Node) -> Outcome {
    let mut conn = match Conn::dial(remote).await {
        Ok(c) => c,
        Err(e) => fail!("{e}"),
    };
    let (code, data) = match conn.read().await {
        Ok(m) => m,
        Err(e) => fail!("read: {e}"),
    };
    match code {
        HANDSHAKE_MSG => match Hello::decode(&data) {
            Ok(_) => Ok(()),
            Err(e) => fail!("invalid handshake: {e}"),
        },
        DISC_MSG => fail!("received disconnect message: {}", disconnect_reason(&data)),
        _ => fail!(
            "invalid message code {code}, expected handshake (code zero) or disconnect (code one)"
        ),
    }
}

/// `randBuf`: `kib` KiB of random bytes.
fn rand_buf(kib: usize) -> Vec<u8> {
    let mut b = vec![0u8; kib * 1024];
    rand::rng().fill_bytes(&mut b);
    b
}

/// `TestMaliciousHandshake`: five Hellos with a 2 KiB capability name, an id one byte too
/// long, twice as long, 2 KiB of random bytes, or both bad; after each, the node may send
/// its own Hello and must otherwise send nothing but a Disconnect (or close).
pub(crate) async fn malicious_handshake(remote: &discovery::Node) -> Outcome {
    let key = SecretKey::new(&mut rand::rng());
    let pub0 = pub64(&key);
    let v = MALICIOUS_ETH_VERSION;
    let eth = || vec![(b"eth".to_vec(), v)];
    let handshakes: Vec<(Caps, Vec<u8>)> = vec![
        (vec![(rand_buf(2), v)], pub0.clone()),
        (eth(), [pub0.as_slice(), &[0]].concat()),
        (eth(), [pub0.as_slice(), &pub0].concat()),
        (eth(), rand_buf(2)),
        (vec![(rand_buf(2), v)], rand_buf(2)),
    ];
    for (caps, id) in handshakes {
        let mut conn = match Conn::dial_as(remote, key).await {
            Ok(c) => c,
            Err(e) => fail!("dial failed: {e}"),
        };
        if let Err(e) = conn
            .write(HANDSHAKE_MSG, &encode_hello(5, &caps, &id))
            .await
        {
            fail!("could not write to connection: {e}");
        }
        // Check that the peer disconnected.
        for _ in 0..2 {
            let Ok((code, _)) = conn.read().await else {
                // The node may have closed without a Disconnect.
                continue;
            };
            match code {
                DISC_MSG | HANDSHAKE_MSG => {}
                _ => fail!("unexpected msg: code {code}"),
            }
        }
    }
    Ok(())
}
