//! The RLPx probe: dial a node, read its Hello and, when it speaks `eth`, its Status, then
//! leave politely with `Disconnect(ClientQuitting)`.
//!
//! It reuses the session layers as they are: [`rlpx::conn::connect_tcp`] (ECIES, within
//! the handshake timeout), [`rlpx::Handshaked::hello_any`] (the Hello exchange, keeping a
//! peer that shares none of our protocols so its Hello is still read) and a started
//! [`rlpx::Peer`] for the Status exchange. We read the remote's Status first and leave
//! without sending ours when it comes at once (a node judging ours might drop us before
//! its own is written); otherwise we send ours, that of a node at the chain's genesis (a
//! node starting to sync), which every honest node on the chain accepts (EIP-2124: a
//! remote behind us at a fork we passed, announcing our next fork). The remote's Status
//! is decoded, not judged: the census compares it with the chain.
//!
//! Bounds: every step has a timeout ([`Prober::handshake_timeout`] for TCP connect, ECIES
//! and Hello each, [`Prober::status_timeout`] for the Status); what one session may make
//! us hold is the session's budget, and all probes share one small node budget
//! ([`PROBE_BUDGET`]), so concurrent probes of hostile nodes hold little.

use std::time::Duration;

use alloy_primitives::B256;
use discovery::Node;
use protocols::eth::forkid::ForkId;
use protocols::eth::messages::{self, Status, Status68, Status69, code};
use rlpx::{DisconnectReason, NodeBudget};
use secp256k1::SecretKey;

use super::core::Probe;
use super::nodeset::{HelloInfo, StatusInfo};
use crate::chain::Spec;

/// eth versions we offer: every version whose Status has the eth/68 or eth/69 layout
/// (eth/66 and eth/67 share eth/68's), so nodes on older versions show their Status too.
pub const ETH_VERSIONS: [(u32, u8); 4] = [
    (66, messages::ETH68_MESSAGES),
    (67, messages::ETH68_MESSAGES),
    (messages::ETH68, messages::ETH68_MESSAGES),
    (messages::ETH69, messages::ETH69_MESSAGES),
];
/// Bytes all probes together may hold of received messages: a Status is about 100
/// bytes; this holds a few full frames while refusing floods of them.
pub const PROBE_BUDGET: usize = 4 * 1024 * 1024;
/// Per probe session: a Status needs far less, but a frame may be up to 16 MiB before the
/// Status is seen; the budget stalls the reader instead of buffering more.
const SESSION_BUDGET: usize = 1024 * 1024;
/// How long we wait for the remote's Status before sending ours: every client we know
/// sends its Status at once after the Hello (go-ethereum in parallel with reading ours).
const STATUS_GRACE: Duration = Duration::from_millis(500);
/// Largest Status we decode: an honest one is about 100 bytes.
const MAX_STATUS: usize = 1024;

/// Probe errors; each ends the probe (an error after the Hello only loses the Status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node id is not a valid public key.
    #[error("invalid node id")]
    NodeId,
    /// The TCP connection, handshake or Hello exchange failed.
    #[error(transparent)]
    Rlpx(#[from] rlpx::Error),
}

/// Dials nodes for the crawl.
#[derive(Clone)]
pub struct Prober {
    key: SecretKey,
    rlpx: rlpx::Config,
    status68: Status68,
    status69: Status69,
    /// Time for each of TCP connect, ECIES handshake and Hello. Default 5 s.
    pub handshake_timeout: Duration,
    /// Time for the Status after the Hello. Default 5 s (go-ethereum's handshake
    /// timeout for the Status).
    pub status_timeout: Duration,
}

impl Prober {
    /// A prober with identity `key`, sending `client_id` in Hello and the genesis Status
    /// of `spec`.
    pub fn new(key: SecretKey, client_id: String, spec: &Spec) -> Self {
        let genesis = spec.genesis_hash;
        let g = &spec.genesis_header;
        let fork_id: ForkId = spec.fork_id(0, g.timestamp);
        let handshake_timeout = Duration::from_secs(5);
        let rlpx = rlpx::Config {
            client_id,
            protocols: ETH_VERSIONS
                .iter()
                .map(|(v, n)| rlpx::Protocol::new("eth", *v, *n))
                .collect(),
            handshake_timeout,
            protocol_queue: 4,
            inbound_budget: SESSION_BUDGET,
            outbound_budget: SESSION_BUDGET,
            node_budget: NodeBudget::new(PROBE_BUDGET, PROBE_BUDGET),
            ..rlpx::Config::default()
        };
        Self {
            key,
            rlpx,
            status68: Status68 {
                version: messages::ETH68,
                network_id: spec.network_id,
                total_difficulty: g.difficulty,
                head: genesis,
                genesis,
                fork_id,
            },
            status69: Status69 {
                version: messages::ETH69,
                network_id: spec.network_id,
                genesis,
                fork_id,
                earliest: 0,
                latest: 0,
                latest_hash: genesis,
            },
            handshake_timeout,
            status_timeout: Duration::from_secs(5),
        }
    }

    fn our_status(&self, version: u32) -> Status {
        if version >= messages::ETH69 {
            Status::V69(self.status69.clone())
        } else {
            Status::V68(Status68 {
                version,
                ..self.status68.clone()
            })
        }
    }

    /// Probes `node` at its TCP endpoint.
    pub async fn probe(&self, node: Node) -> Result<Probe, Error> {
        let pk = node.id.public_key().ok_or(Error::NodeId)?;
        let mut cfg = self.rlpx.clone();
        cfg.handshake_timeout = self.handshake_timeout;
        let hs = rlpx::conn::connect_tcp(node.tcp_addr(), &self.key, pk, &cfg).await?;
        let est = hs.hello_any(&self.key, &cfg).await?;
        let h = est.remote_hello();
        let hello = HelloInfo {
            client_id: h.client_id.clone(),
            caps: h
                .capabilities
                .iter()
                .map(|c| format!("{}/{}", c.name, c.version))
                .collect(),
            listen_port: h.listen_port,
            version: h.protocol_version,
        };
        let eth = est
            .shared()
            .iter()
            .find(|s| s.cap.name == "eth")
            .map(|s| s.cap.version);
        let Some(version) = eth else {
            est.disconnect(DisconnectReason::ClientQuitting).await;
            return Ok(Probe {
                hello,
                status: None,
                error: None,
            });
        };
        let mut peer = est.start(&cfg);
        let (status, error) = match peer.take_protocol("eth") {
            Some(mut eth) => {
                let ours = messages::Message::Status(self.our_status(version)).encode();
                let exchange = async {
                    // Theirs first: a node that judges ours (another chain, a fork id it
                    // rejects) may drop us before its own is written. Ours goes only if
                    // theirs is slow to come (a node that waits for it).
                    let first = match tokio::time::timeout(STATUS_GRACE, eth.recv()).await {
                        Ok(m) => m,
                        Err(_) => {
                            eth.send(code::STATUS, ours)
                                .await
                                .map_err(|e| e.to_string())?;
                            eth.recv().await
                        }
                    };
                    match first {
                        Some((c, data)) => decode_status(version, c, &data),
                        None => Err(match peer.closed().await {
                            rlpx::CloseReason::Remote(r) => format!("remote disconnected: {r}"),
                            other => format!("closed: {other:?}"),
                        }),
                    }
                };
                match tokio::time::timeout(self.status_timeout, exchange).await {
                    Ok(Ok(s)) => (Some(s), None),
                    Ok(Err(e)) => (None, Some(e)),
                    Err(_) => (None, Some("no status in time".to_owned())),
                }
            }
            None => (None, Some("eth not shared".to_owned())),
        };
        peer.disconnect(DisconnectReason::ClientQuitting);
        // The writer sends the Disconnect and closes; bounded for a peer that reads nothing.
        let _ = tokio::time::timeout(Duration::from_secs(2), peer.closed()).await;
        Ok(Probe {
            hello,
            status,
            error,
        })
    }
}

/// Decodes the remote's first eth message as a Status of `version`.
fn decode_status(version: u32, c: u8, data: &[u8]) -> Result<StatusInfo, String> {
    if c != code::STATUS {
        return Err(format!("first eth message has code {c:#04x}, not Status"));
    }
    if data.len() > MAX_STATUS {
        return Err(format!("status of {} bytes", data.len()));
    }
    let s = match messages::Message::decode(version, c, data) {
        Ok(messages::Message::Status(s)) => s,
        Ok(_) => return Err("not a status".into()),
        Err(e) => return Err(format!("bad status: {e}")),
    };
    let hex = |h: B256| format!("{h:#x}");
    let head_number = match &s {
        Status::V69(s) => Some(s.latest),
        Status::V68(_) => None,
    };
    Ok(StatusInfo {
        version: s.version(),
        network_id: s.network_id(),
        genesis: hex(s.genesis()),
        fork_id: s.fork_id().into(),
        head: hex(s.head_hash()),
        head_number,
    })
}
