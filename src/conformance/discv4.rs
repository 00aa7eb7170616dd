//! `devp2p test discv4`: Node Discovery v4 cases, ported from go-ethereum's
//! `cmd/devp2p/internal/v4test` (`discv4tests.go`, `framework.go`).
//!
//! Every case starts afresh as go-ethereum's do: a new key and two new UDP sockets, one on
//! `listen1` (default 127.0.0.1) and one on `listen2` (default 127.0.0.2, for the
//! wrong-IP amplification case); reads wait [`WAIT`] each. Packets come from our codec
//! ([`discovery::packet`]); the two it refuses to build (a Ping with extra list elements,
//! a packet of unknown type 66) are signed here by [`sign_raw`].

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use alloy_rlp::Encodable;
use discovery::node::{canonical_ip, keccak256};
use discovery::packet::{
    self, Endpoint, EnrRequest, FindNode, HEADER_SIZE, Message, Neighbors, Packet, Ping, Pong,
};
use discovery::{Enr, Node, NodeId};
use rand::RngCore;
use secp256k1::{Message as SecpMessage, SECP256K1, SecretKey};
use tokio::net::UdpSocket;

use super::{Context, Outcome, Suite, Verdict, fail, unix_now};

/// How long a read waits for a packet (go-ethereum's `waitTime`, 300 ms): long enough for a
/// loopback or LAN round trip, short enough that the "no reply" cases end quickly.
pub const WAIT: Duration = Duration::from_millis(300);
/// Lifetime put in `expiration` fields (go-ethereum's `expiration`, 20 s).
const EXPIRATION: u64 = 20;
/// The packet type of `WrongPacketType` (go-ethereum's `wrongPacket`).
const WRONG_PACKET: u8 = 66;

/// The cases, in go-ethereum's `AllTests` order.
pub const CASES: &[&str] = &[
    "Ping/Basic",
    "Ping/WrongTo",
    "Ping/WrongFrom",
    "Ping/ExtraData",
    "Ping/ExtraDataWrongFrom",
    "Ping/PastExpiration",
    "Ping/WrongPacketType",
    "Ping/BondThenPingWithWrongFrom",
    "ENRRequest",
    "Findnode/WithoutEndpointProof",
    "Findnode/BasicFindnode",
    "Findnode/UnsolicitedNeighbors",
    "Findnode/PastExpiration",
    "Amplification/InvalidPongHash",
    "Amplification/WrongIP",
];

/// The discv4 suite against one node.
#[derive(Debug, Clone)]
pub struct V4Suite {
    remote: Node,
    listen1: IpAddr,
    listen2: IpAddr,
}

/// Parses `enode://…` or `enr:…` as go-ethereum's `newTestEnv` does: a record without an
/// IP or UDP port is taken to be at 127.0.0.1:30303.
pub fn parse_remote(s: &str) -> Result<Node, discovery::ParseError> {
    let s = s.trim();
    if s.starts_with("enr:") {
        let enr: Enr = s.parse()?;
        if let Some(n) = enr.to_node().filter(|n| n.udp != 0) {
            return Ok(n);
        }
        let ip = enr
            .ip4()
            .map(IpAddr::V4)
            .or(enr.ip6().map(IpAddr::V6))
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        return Ok(Node {
            id: enr.node_id(),
            ip,
            udp: enr.udp().filter(|&p| p != 0).unwrap_or(30303),
            tcp: enr.tcp().filter(|&p| p != 0).unwrap_or(30303),
        });
    }
    s.parse()
}

impl V4Suite {
    /// A suite against `remote`, listening on `listen1` and `listen2`.
    pub fn new(remote: Node, listen1: IpAddr, listen2: IpAddr) -> Self {
        Self {
            remote,
            listen1,
            listen2,
        }
    }

    async fn env(&self) -> Result<Env, Verdict> {
        let l1 = UdpSocket::bind((self.listen1, 0))
            .await
            .context(&format!("listen on {}", self.listen1))?;
        let l2 = UdpSocket::bind((self.listen2, 0))
            .await
            .context(&format!("listen on {}", self.listen2))?;
        Ok(Env {
            l1,
            l2,
            key: SecretKey::new(&mut rand::rng()),
            remote: self.remote,
        })
    }
}

impl Suite for V4Suite {
    fn name(&self) -> &'static str {
        "discv4"
    }
    fn cases(&self) -> &'static [&'static str] {
        CASES
    }
    fn case_timeout(&self) -> Duration {
        // The longest case reads a handful of times, WAIT each.
        Duration::from_secs(10)
    }
    async fn run_case(&self, name: &str) -> Outcome {
        let te = self.env().await?;
        match name {
            "Ping/Basic" => basic_ping(&te).await,
            "Ping/WrongTo" => ping_wrong_to(&te).await,
            "Ping/WrongFrom" => ping_wrong_from(&te).await,
            "Ping/ExtraData" => ping_extra_data(&te, false).await,
            "Ping/ExtraDataWrongFrom" => ping_extra_data(&te, true).await,
            "Ping/PastExpiration" => ping_past_expiration(&te).await,
            "Ping/WrongPacketType" => wrong_packet_type(&te).await,
            "Ping/BondThenPingWithWrongFrom" => bond_then_ping_with_wrong_from(&te).await,
            "ENRRequest" => enr_request(&te).await,
            "Findnode/WithoutEndpointProof" => findnode_without_endpoint_proof(&te).await,
            "Findnode/BasicFindnode" => basic_findnode(&te).await,
            "Findnode/UnsolicitedNeighbors" => unsolicited_neighbors(&te).await,
            "Findnode/PastExpiration" => findnode_past_expiration(&te).await,
            "Amplification/InvalidPongHash" => amplification_invalid_pong_hash(&te).await,
            "Amplification/WrongIP" => amplification_wrong_ip(&te).await,
            other => fail!("unknown case {other}"),
        }
    }
}

/// One case's sockets, key and target (go-ethereum's `testenv`).
struct Env {
    l1: UdpSocket,
    l2: UdpSocket,
    key: SecretKey,
    remote: Node,
}

/// Why a read returned no packet.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("no packet within {WAIT:?}")]
    Timeout,
    #[error("read: {0}")]
    Io(#[from] std::io::Error),
    #[error("undecodable reply: {0}")]
    Decode(#[from] packet::PacketError),
}

impl From<ReadError> for Verdict {
    fn from(e: ReadError) -> Self {
        Verdict::Fail(e.to_string())
    }
}

/// `expiration` a packet sent now carries (go-ethereum's `futureExpiration`).
fn future_expiration() -> u64 {
    unix_now() + EXPIRATION
}

/// go-ethereum's `-futureExpiration()`: the uint64 negation, which its receivers read as a
/// negative (past) UNIX time.
fn past_expiration() -> u64 {
    future_expiration().wrapping_neg()
}

/// go-ethereum's `v4wire.Expired`: the field read as a signed UNIX time.
fn expired(expiration: u64) -> bool {
    i64::try_from(expiration).map_or(true, |e| e < i64::try_from(unix_now()).unwrap_or(0))
}

/// `net.ParseIP("192.0.2.0")` (TEST-NET-1, nobody's address) in go-ethereum's 16-byte form:
/// the wrong endpoint of the WrongTo/WrongFrom cases, ports zero.
fn wrong_endpoint() -> Endpoint {
    Endpoint {
        ip: IpAddr::V6(Ipv4Addr::new(192, 0, 2, 0).to_ipv6_mapped()),
        udp: 0,
        tcp: 0,
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        1 => "PING/v4",
        2 => "PONG/v4",
        3 => "FINDNODE/v4",
        4 => "NEIGHBORS/v4",
        5 => "ENRREQUEST/v4",
        6 => "ENRRESPONSE/v4",
        _ => "?",
    }
}

impl Env {
    /// Sends `msg` from `sock`; returns the packet hash.
    async fn send(&self, sock: &UdpSocket, msg: &Message) -> Result<[u8; 32], Verdict> {
        let (bytes, hash) = msg.encode(&self.key);
        self.send_bytes(sock, &bytes, kind_name(msg.kind())).await?;
        Ok(hash)
    }

    async fn send_bytes(&self, sock: &UdpSocket, bytes: &[u8], what: &str) -> Outcome {
        sock.send_to(bytes, self.remote.udp_addr())
            .await
            .context(&format!("can't send {what}"))?;
        Ok(())
    }

    /// Reads one packet within [`WAIT`] (go-ethereum's `te.read`).
    async fn read(&self, sock: &UdpSocket) -> Result<Packet, ReadError> {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .map_err(|_| ReadError::Timeout)??;
        Ok(packet::decode(&buf[..n])?)
    }

    /// `te.localEndpoint`: the socket's IPv4 address (4 bytes), its port, TCP 0.
    fn local_endpoint(&self, sock: &UdpSocket) -> Result<Endpoint, Verdict> {
        let addr = sock.local_addr().context("local address")?;
        Ok(Endpoint {
            ip: canonical_ip(addr.ip()),
            udp: addr.port(),
            tcp: 0,
        })
    }

    /// `te.remoteEndpoint`: the target's UDP address (IPv4 as 4 bytes), TCP 0.
    fn remote_endpoint(&self) -> Endpoint {
        Endpoint {
            ip: canonical_ip(self.remote.ip),
            udp: self.remote.udp,
            tcp: 0,
        }
    }

    fn ping(&self, from: Endpoint, to: Endpoint, expiration: u64) -> Message {
        Message::Ping(Ping {
            from,
            to,
            expiration,
            enr_seq: None,
        })
    }

    /// A Ping from l1's endpoint to the remote, expiring in 20 s.
    fn good_ping(&self) -> Result<Message, Verdict> {
        Ok(self.ping(
            self.local_endpoint(&self.l1)?,
            self.remote_endpoint(),
            future_expiration(),
        ))
    }

    /// `te.checkPong`: a Pong echoing `ping_hash`, addressed to l1, not expired.
    fn check_pong(&self, reply: &Packet, ping_hash: &[u8; 32]) -> Outcome {
        let Message::Pong(pong) = &reply.message else {
            fail!(
                "expected PONG reply, got {} {:?}",
                kind_name(reply.message.kind()),
                reply.message
            );
        };
        if &pong.ping_hash != ping_hash {
            fail!(
                "PONG reply token mismatch: got {}, want {}",
                hex::encode(pong.ping_hash),
                hex::encode(ping_hash)
            );
        }
        let want = self.local_endpoint(&self.l1)?;
        if canonical_ip(pong.to.ip) != want.ip || pong.to.udp != want.udp {
            fail!(
                "PONG 'to' endpoint mismatch: got {:?}, want {:?}",
                pong.to,
                want
            );
        }
        if expired(pong.expiration) {
            fail!("PONG is expired ({})", pong.expiration);
        }
        Ok(())
    }

    /// `te.checkPingPong`: within two reads, one Pong for `ping_hash` and one Ping, in
    /// either order.
    async fn check_ping_pong(&self, ping_hash: &[u8; 32]) -> Outcome {
        let (mut pings, mut pongs) = (0, 0);
        for _ in 0..2 {
            let reply = self.read(&self.l1).await?;
            match &reply.message {
                Message::Pong(_) => {
                    self.check_pong(&reply, ping_hash)?;
                    pongs += 1;
                }
                Message::Ping(_) => pings += 1,
                other => fail!(
                    "expected PING or PONG, got {} {other:?}",
                    kind_name(other.kind())
                ),
            }
        }
        if pongs == 1 && pings == 1 {
            return Ok(());
        }
        fail!("expected 1 PING (got {pings}) and 1 PONG (got {pongs})")
    }

    /// `bond`: the endpoint proof from l1: our Ping answered, their Ping answered.
    async fn bond(&self) -> Outcome {
        let ping_hash = self.send(&self.l1, &self.good_ping()?).await?;
        let (mut got_ping, mut got_pong) = (false, false);
        while !got_ping || !got_pong {
            let req = self.read(&self.l1).await?;
            match &req.message {
                Message::Ping(_) => {
                    let pong = Message::Pong(Pong {
                        to: self.remote_endpoint(),
                        ping_hash: req.hash,
                        expiration: future_expiration(),
                        enr_seq: None,
                    });
                    self.send(&self.l1, &pong).await?;
                    got_ping = true;
                }
                Message::Pong(_) => {
                    self.check_pong(&req, &ping_hash)?;
                    got_pong = true;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn findnode(&self, expiration: u64) -> Message {
        let mut target = [0u8; 64];
        rand::rng().fill_bytes(&mut target);
        Message::FindNode(FindNode {
            target: NodeId(target),
            expiration,
        })
    }
}

/// Signs `data` (an RLP list) as a packet of type `kind`, like go-ethereum's
/// `v4wire.Encode`: `hash || signature || type || data`. For the packets our codec will
/// not build.
fn sign_raw(kind: u8, data: &[u8], key: &SecretKey) -> (Vec<u8>, [u8; 32]) {
    let mut out = vec![0u8; HEADER_SIZE];
    out[HEADER_SIZE - 1] = kind;
    out.extend_from_slice(data);
    let sighash = keccak256(&out[HEADER_SIZE - 1..]);
    let sig = SECP256K1.sign_ecdsa_recoverable(SecpMessage::from_digest(sighash), key);
    let (recid, rs) = sig.serialize_compact();
    out[32..96].copy_from_slice(&rs);
    out[96] = i32::from(recid) as u8; // ok: a recovery id is 0..=3
    let hash = keccak256(&out[32..]);
    out[..32].copy_from_slice(&hash);
    (out, hash)
}

/// The RLP data (after the header) of `msg` as our codec encodes it.
fn data_of(msg: &Message, key: &SecretKey) -> Vec<u8> {
    msg.encode(key).0.split_off(HEADER_SIZE)
}

/// `list` (an RLP list) with `extra` (encoded items) appended inside it.
fn append_to_list(list: &[u8], extra: &[u8]) -> Result<Vec<u8>, Verdict> {
    let mut buf = list;
    let h = alloy_rlp::Header::decode(&mut buf).context("re-encode list")?;
    let payload_length = h.payload_length + extra.len();
    let mut out = Vec::with_capacity(payload_length + 9);
    alloy_rlp::Header {
        list: true,
        payload_length,
    }
    .encode(&mut out);
    out.extend_from_slice(buf);
    out.extend_from_slice(extra);
    Ok(out)
}

async fn basic_ping(te: &Env) -> Outcome {
    let hash = te.send(&te.l1, &te.good_ping()?).await?;
    te.check_ping_pong(&hash).await
}

async fn ping_wrong_to(te: &Env) -> Outcome {
    let ping = te.ping(
        te.local_endpoint(&te.l1)?,
        wrong_endpoint(),
        future_expiration(),
    );
    let hash = te.send(&te.l1, &ping).await?;
    te.check_ping_pong(&hash).await
}

async fn ping_wrong_from(te: &Env) -> Outcome {
    let ping = te.ping(wrong_endpoint(), te.remote_endpoint(), future_expiration());
    let hash = te.send(&te.l1, &ping).await?;
    te.check_ping_pong(&hash).await
}

/// PingExtraData and PingExtraDataWrongFrom: EIP-8 says trailing list elements are ignored.
/// go-ethereum's `pingWithJunk` adds `JunkData1 = 42` and `JunkData2 = [9, 8, …, 1]`.
async fn ping_extra_data(te: &Env, wrong_from: bool) -> Outcome {
    let from = if wrong_from {
        wrong_endpoint()
    } else {
        te.local_endpoint(&te.l1)?
    };
    let ping = te.ping(from, te.remote_endpoint(), future_expiration());
    let mut junk = Vec::new();
    42u64.encode(&mut junk);
    [9u8, 8, 7, 6, 5, 4, 3, 2, 1].as_slice().encode(&mut junk);
    let data = append_to_list(&data_of(&ping, &te.key), &junk)?;
    let (bytes, hash) = sign_raw(ping.kind(), &data, &te.key);
    te.send_bytes(&te.l1, &bytes, "PING/v4").await?;
    te.check_ping_pong(&hash).await
}

/// A reply within one read fails the case; silence (or an undecodable reply, which
/// go-ethereum's `read` returns as an error and the case ignores) passes.
fn expect_no_reply(r: Result<Packet, ReadError>) -> Outcome {
    if let Ok(reply) = r {
        fail!(
            "Expected no reply, got {} {:?}",
            kind_name(reply.message.kind()),
            reply.message
        );
    }
    Ok(())
}

async fn ping_past_expiration(te: &Env) -> Outcome {
    let ping = te.ping(
        te.local_endpoint(&te.l1)?,
        te.remote_endpoint(),
        past_expiration(),
    );
    te.send(&te.l1, &ping).await?;
    expect_no_reply(te.read(&te.l1).await)
}

/// A Ping's fields under packet type 66 (go-ethereum's `pingWrongType`).
async fn wrong_packet_type(te: &Env) -> Outcome {
    let data = data_of(&te.good_ping()?, &te.key);
    let (bytes, _) = sign_raw(WRONG_PACKET, &data, &te.key);
    te.send_bytes(&te.l1, &bytes, "WRONG/v4").await?;
    expect_no_reply(te.read(&te.l1).await)
}

async fn bond_then_ping_with_wrong_from(te: &Env) -> Outcome {
    te.bond().await?;
    let ping = te.ping(wrong_endpoint(), te.remote_endpoint(), future_expiration());
    let hash = te.send(&te.l1, &ping).await?;
    loop {
        let reply = te.read(&te.l1).await?;
        match &reply.message {
            Message::Pong(_) => return te.check_pong(&reply, &hash),
            // A FINDNODE from the node is fine: the endpoint proof was done before.
            Message::FindNode(_) => {}
            other => fail!("Expected PONG, got {} {other:?}", kind_name(other.kind())),
        }
    }
}

async fn findnode_without_endpoint_proof(te: &Env) -> Outcome {
    te.send(&te.l1, &te.findnode(future_expiration())).await?;
    loop {
        let Ok(reply) = te.read(&te.l1).await else {
            return Ok(()); // No response, all good.
        };
        if let Message::Ping(_) = reply.message {
            continue; // A ping is fine.
        }
        fail!(
            "Expected no reply, got {} {:?}",
            kind_name(reply.message.kind()),
            reply.message
        );
    }
}

async fn basic_findnode(te: &Env) -> Outcome {
    te.bond().await?;
    te.send(&te.l1, &te.findnode(future_expiration())).await?;
    let reply = te
        .read(&te.l1)
        .await
        .map_err(|e| Verdict::Fail(format!("read find nodes {e}")))?;
    if !matches!(reply.message, Message::Neighbors(_)) {
        fail!(
            "Expected neighbors, got {} {:?}",
            kind_name(reply.message.kind()),
            reply.message
        );
    }
    Ok(())
}

async fn unsolicited_neighbors(te: &Env) -> Outcome {
    te.bond().await?;
    // Send an unsolicited NEIGHBORS response.
    let fake = NodeId::from_secret_key(&SecretKey::new(&mut rand::rng()));
    let neighbors = Message::Neighbors(Neighbors {
        nodes: vec![Node {
            id: fake,
            ip: IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)),
            udp: 30303,
            tcp: 30303,
        }],
        expiration: future_expiration(),
    });
    te.send(&te.l1, &neighbors).await?;
    // Check whether the remote node took the fake node in.
    let findnode = Message::FindNode(FindNode {
        target: fake,
        expiration: future_expiration(),
    });
    te.send(&te.l1, &findnode).await?;
    let reply = te
        .read(&te.l1)
        .await
        .map_err(|e| Verdict::Fail(format!("read find nodes {e}")))?;
    let Message::Neighbors(n) = &reply.message else {
        fail!(
            "Expected neighbors, got {} {:?}",
            kind_name(reply.message.kind()),
            reply.message
        );
    };
    if n.nodes.iter().any(|n| n.id == fake) {
        fail!("neighbors response contains node from earlier unsolicited neighbors response");
    }
    Ok(())
}

async fn findnode_past_expiration(te: &Env) -> Outcome {
    te.bond().await?;
    te.send(&te.l1, &te.findnode(past_expiration())).await?;
    loop {
        match te.read(&te.l1).await {
            Err(_) => return Ok(()),
            Ok(Packet {
                message: Message::Neighbors(_),
                ..
            }) => fail!("Unexpected NEIGHBORS response for expired FINDNODE request"),
            Ok(_) => {}
        }
    }
}

/// The attacker answers the node's Ping with a Pong whose reply token is zeros, hoping the
/// node counts it as an endpoint proof; a FINDNODE must then get no NEIGHBORS.
async fn amplification_invalid_pong_hash(te: &Env) -> Outcome {
    te.send(&te.l1, &te.good_ping()?).await?;
    let (mut got_ping, mut got_pong) = (false, false);
    while !got_ping || !got_pong {
        let req = te.read(&te.l1).await?;
        match req.message {
            Message::Ping(_) => {
                let pong = Message::Pong(Pong {
                    to: te.remote_endpoint(),
                    ping_hash: [0; 32],
                    expiration: future_expiration(),
                    enr_seq: None,
                });
                te.send(&te.l1, &pong).await?;
                got_ping = true;
            }
            Message::Pong(_) => got_pong = true,
            _ => {}
        }
    }
    te.send(&te.l1, &te.findnode(future_expiration())).await?;
    if let Ok(Packet {
        message: Message::Neighbors(_),
        ..
    }) = te.read(&te.l1).await
    {
        fail!("Got neighbors");
    }
    Ok(())
}

/// Bonded from l1's IP, the attacker sends FINDNODE from l2's: no reply may go there.
async fn amplification_wrong_ip(te: &Env) -> Outcome {
    te.bond().await?;
    te.send(&te.l2, &te.findnode(future_expiration())).await?;
    if te.read(&te.l2).await.is_ok() {
        fail!("Got NEIGHBORS response for FINDNODE from wrong IP");
    }
    Ok(())
}

async fn enr_request(te: &Env) -> Outcome {
    te.bond().await?;
    let req = Message::EnrRequest(EnrRequest {
        expiration: future_expiration(),
    });
    let hash = te.send(&te.l1, &req).await?;
    let response = te
        .read(&te.l1)
        .await
        .map_err(|e| Verdict::Fail(format!("read error: {e}")))?;
    let Message::EnrResponse(resp) = &response.message else {
        fail!(
            "expected ENRResponse packet, got {}",
            kind_name(response.message.kind())
        );
    };
    // Our decoder verified the record's signature (go-ethereum's `enode.New`).
    if resp.request_hash != hash {
        fail!(
            "wrong hash in response packet: got {}, want {}",
            hex::encode(resp.request_hash),
            hex::encode(hash)
        );
    }
    if resp.enr.node_id() != te.remote.id {
        fail!(
            "wrong node ID in response: got {}, want {}",
            resp.enr.node_id(),
            te.remote.id
        );
    }
    Ok(())
}
