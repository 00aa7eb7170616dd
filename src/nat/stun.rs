//! The external IP from a STUN server (`--nat stun[:HOST:PORT,...]`): a Binding request
//! (RFC 8489 §3, the message format of RFC 5389) over UDP, whose answer's
//! XOR-MAPPED-ADDRESS is our address as the server saw it. Like go-ethereum's `stun`
//! NAT, only the IP is used: the port a NAT gave the query's socket says nothing about
//! our listening ports, which a STUN-only setup forwards by hand.
//!
//! The codec is ours and small: a request is 20 fixed bytes, and a response is read
//! within its datagram, every length checked before use (an answer is an attacker's
//! input: any address may send us a datagram that looks like it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tracing::debug;

use super::Error;

/// The port STUN servers listen on when none is given (RFC 8489 §18.4).
pub const DEFAULT_PORT: u16 = 3478;
/// Servers asked when `--nat stun` names none: long-running public servers of large
/// operators (go-ethereum ships a list of its own the same way). Three are tried, in
/// random order, as go-ethereum does.
pub const DEFAULT_SERVERS: &[&str] = &[
    "stun.l.google.com:19302",
    "stun1.l.google.com:19302",
    "stun2.l.google.com:19302",
    "stun.cloudflare.com:3478",
    "stun.nextcloud.com:3478",
    "stun.sipgate.net:3478",
];
/// Servers tried per round before giving up (go-ethereum's `requestLimit`).
pub const SERVERS_PER_ROUND: usize = 3;
/// Most servers `--nat stun:` may name: a list, not a scan.
pub const MAX_SERVERS: usize = 16;

/// RFC 8489 §5: the fixed value in every message since RFC 5389.
const MAGIC_COOKIE: u32 = 0x2112_A442;
/// Binding request and success response (RFC 8489 §5, §18.2).
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
/// Attributes (RFC 8489 §18.3): MAPPED-ADDRESS (RFC 3489 servers) and XOR-MAPPED-ADDRESS.
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
const HEADER_LEN: usize = 20;
/// Largest response read: RFC 8489 §6.1 keeps messages within the path MTU (576 bytes
/// for IPv4 without knowledge of it); a Binding answer holds a few addresses and a name.
const MAX_RESPONSE: usize = 1280;
/// Retransmission timeouts of one request: RFC 8489 §6.2.1 starts at 500 ms and doubles;
/// three sends (3.5 s in all) suffice on a working path, and a round tries other servers.
const RTO: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(2000),
];

/// A Binding request with transaction id `tid`: 20 bytes, no attributes.
pub fn binding_request(tid: &[u8; 12]) -> [u8; HEADER_LEN] {
    let mut m = [0u8; HEADER_LEN];
    m[0..2].copy_from_slice(&BINDING_REQUEST.to_be_bytes());
    // Bytes 2..4: message length 0.
    m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
    m[8..20].copy_from_slice(tid);
    m
}

/// Why a datagram is not the answer to our request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not a STUN message: too short, top bits set, bad cookie or length.
    #[error("not a STUN message")]
    Malformed,
    /// A STUN message, but not the answer to our transaction (ignored, not fatal).
    #[error("not our transaction")]
    OtherTransaction,
    /// The server answered with an error response.
    #[error("STUN error response")]
    ErrorResponse,
    /// A success response without a usable mapped address.
    #[error("no mapped address in the STUN response")]
    NoAddress,
}

/// Reads a Binding response to transaction `tid`: the XOR-MAPPED-ADDRESS, else the
/// MAPPED-ADDRESS of an RFC 3489 server.
pub fn parse_response(msg: &[u8], tid: &[u8; 12]) -> Result<SocketAddr, ResponseError> {
    let header = msg.get(..HEADER_LEN).ok_or(ResponseError::Malformed)?;
    let kind = u16::from_be_bytes([header[0], header[1]]);
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // §5: the two top bits are zero, attributes are 4-byte aligned, the cookie fixed.
    if kind & 0xC000 != 0
        || len % 4 != 0
        || header[4..8] != MAGIC_COOKIE.to_be_bytes()
        || msg.len() != HEADER_LEN + len
    {
        return Err(ResponseError::Malformed);
    }
    if header[8..20] != tid[..] {
        return Err(ResponseError::OtherTransaction);
    }
    match kind {
        BINDING_SUCCESS => {}
        BINDING_ERROR => return Err(ResponseError::ErrorResponse),
        _ => return Err(ResponseError::OtherTransaction),
    }
    let mut attrs = &msg[HEADER_LEN..];
    let mut plain = None;
    while !attrs.is_empty() {
        let (t, rest) = attrs.split_at_checked(4).ok_or(ResponseError::Malformed)?;
        let kind = u16::from_be_bytes([t[0], t[1]]);
        let len = usize::from(u16::from_be_bytes([t[2], t[3]]));
        // §14: values are padded to a multiple of 4 bytes.
        let padded = len.div_ceil(4) * 4;
        if rest.len() < padded {
            return Err(ResponseError::Malformed);
        }
        let value = &rest[..len];
        match kind {
            XOR_MAPPED_ADDRESS => {
                if let Some(a) = address(value, Some(tid)) {
                    return Ok(a);
                }
            }
            MAPPED_ADDRESS if plain.is_none() => plain = address(value, None),
            _ => {}
        }
        attrs = &rest[padded..];
    }
    plain.ok_or(ResponseError::NoAddress)
}

/// An address attribute's value (§14.1, §14.2): reserved byte, family (1 = IPv4,
/// 2 = IPv6), port, address; XOR-ed with the cookie (and `tid` for IPv6) when `xor`.
fn address(v: &[u8], xor: Option<&[u8; 12]>) -> Option<SocketAddr> {
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mask = |i: usize| -> u8 {
        match xor {
            None => 0,
            Some(tid) => *cookie.get(i).or_else(|| tid.get(i - 4)).unwrap_or(&0),
        }
    };
    let port = u16::from_be_bytes([v.get(2)? ^ mask(0), v.get(3)? ^ mask(1)]);
    let ip = match (v.get(1)?, v.len()) {
        (1, 8) => {
            let mut o = [0u8; 4];
            for (i, b) in o.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask(i);
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (2, 20) => {
            let mut o = [0u8; 16];
            for (i, b) in o.iter_mut().enumerate() {
                *b = v[4 + i] ^ mask(i);
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// Asks `server` for our address as it sees it: a Binding request, retransmitted as
/// [`RTO`] says, over a fresh socket of `server`'s family. Datagrams that are not the
/// answer are skipped (at most [`RTO`]'s total time in all).
pub async fn query(server: SocketAddr) -> Result<SocketAddr, Error> {
    let bind = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(bind).await.map_err(Error::Io)?;
    query_on(&socket, server).await
}

/// [`query`] over `socket` (connected to `server` here): the address returned is this
/// socket's as the server sees it.
pub async fn query_on(socket: &UdpSocket, server: SocketAddr) -> Result<SocketAddr, Error> {
    socket.connect(server).await.map_err(Error::Io)?;
    let tid: [u8; 12] = secp256k1::rand::random();
    let request = binding_request(&tid);
    let mut buf = [0u8; MAX_RESPONSE];
    for rto in RTO {
        socket.send(&request).await.map_err(Error::Io)?;
        let deadline = tokio::time::Instant::now() + rto;
        loop {
            let n = match tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
                Err(_) => break,
                // ICMP unreachable: nobody serves STUN there.
                Ok(Err(e)) => return Err(Error::NoGateway(format!("STUN {server}: {e}"))),
                Ok(Ok(n)) => n,
            };
            match parse_response(&buf[..n], &tid) {
                Ok(addr) => return Ok(addr),
                Err(ResponseError::ErrorResponse) => {
                    return Err(Error::NoGateway(format!("STUN {server}: error response")));
                }
                Err(e) => debug!(target: "nat", %server, error = %e, "ignored STUN datagram"),
            }
        }
    }
    Err(Error::NoGateway(format!("STUN {server}: no answer")))
}

/// Our external IP from the first of `servers` (`HOST:PORT` each) that answers, trying at
/// most [`SERVERS_PER_ROUND`] of them in random order.
pub async fn external_ip(servers: &[String]) -> Result<IpAddr, Error> {
    use secp256k1::rand::seq::SliceRandom;
    let mut order: Vec<&String> = servers.iter().collect();
    order.shuffle(&mut secp256k1::rand::rng());
    let mut last = Error::NoGateway("STUN: no server given".into());
    for server in order.into_iter().take(SERVERS_PER_ROUND) {
        let addr = match tokio::net::lookup_host(server.as_str()).await {
            Ok(mut addrs) => match addrs.next() {
                Some(a) => a,
                None => continue,
            },
            Err(e) => {
                last = Error::NoGateway(format!("STUN {server:.80}: {e}"));
                continue;
            }
        };
        match query(addr).await {
            Ok(mapped) => return Ok(mapped.ip()),
            Err(e) => {
                debug!(target: "nat", server = %addr, error = %e, "STUN request failed");
                last = e;
            }
        }
    }
    Err(last)
}

/// Checks a `--nat stun:` server: `HOST` or `HOST:PORT` ([`DEFAULT_PORT`] added when
/// missing), `[IPv6]:PORT` for IPv6 literals.
pub fn parse_server(s: &str) -> Result<String, String> {
    let bad = || format!("invalid STUN server {s:.60}: expected HOST[:PORT]");
    if s.is_empty() || s.len() > 260 {
        return Err(bad());
    }
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s.to_string());
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
        None => (s, DEFAULT_PORT),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !host_ok || port == 0 {
        return Err(bad());
    }
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TID: [u8; 12] = *b"0123456789ab";

    /// A success response carrying `attrs` (type, value) as RFC 8489 lays them out.
    fn response(kind: u16, tid: &[u8; 12], attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = Vec::new();
        m.extend_from_slice(&kind.to_be_bytes());
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(tid);
        m.extend_from_slice(&body);
        m
    }

    /// RFC 5769 §2.2 sample response (IPv4): XOR-MAPPED-ADDRESS 192.0.2.1:32853, with
    /// SOFTWARE, MESSAGE-INTEGRITY and FINGERPRINT around it.
    #[test]
    fn rfc5769_ipv4_sample() {
        let hex = "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b\
                   7465737420766563746f7220002000080001a147e112a643\
                   000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7\
                   80280004c07d4c96";
        let msg = hex::decode(hex).unwrap();
        let tid: [u8; 12] = msg[8..20].try_into().unwrap();
        assert_eq!(
            parse_response(&msg, &tid),
            Ok("192.0.2.1:32853".parse().unwrap())
        );
    }

    /// RFC 5769 §2.3 sample response (IPv6): 2001:db8:1234:5678:11:2233:4455:6677 port
    /// 32853.
    #[test]
    fn rfc5769_ipv6_sample() {
        let hex = "010100482112a442b7e7a701bc34d686fa87dfae8022000b\
                   7465737420766563746f7220002000140002a1470113a9fa\
                   a5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf1\
                   1784c97c8292c275bfe3ed4180280004c8fb0b4c";
        let msg = hex::decode(hex).unwrap();
        let tid: [u8; 12] = msg[8..20].try_into().unwrap();
        assert_eq!(
            parse_response(&msg, &tid),
            Ok("[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                .parse()
                .unwrap())
        );
    }

    #[test]
    fn request_is_a_bare_binding_request() {
        let r = binding_request(&TID);
        assert_eq!(&r[..8], &[0, 1, 0, 0, 0x21, 0x12, 0xA4, 0x42]);
        assert_eq!(&r[8..], &TID);
    }

    #[test]
    fn plain_mapped_address_of_old_servers_is_used_when_alone() {
        let m = response(
            BINDING_SUCCESS,
            &TID,
            &[(MAPPED_ADDRESS, vec![0, 1, 0x75, 0x30, 8, 8, 4, 4])],
        );
        assert_eq!(
            parse_response(&m, &TID),
            Ok("8.8.4.4:30000".parse().unwrap())
        );
    }

    #[test]
    fn hostile_responses_are_refused() {
        let xor4 = vec![0, 1, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43];
        let good = response(BINDING_SUCCESS, &TID, &[(XOR_MAPPED_ADDRESS, xor4.clone())]);
        assert!(parse_response(&good, &TID).is_ok());
        let mut other_tid = TID;
        other_tid[0] ^= 1;
        let mut bad_cookie = good.clone();
        bad_cookie[4] ^= 1;
        let mut top_bits = good.clone();
        top_bits[0] |= 0x80;
        let mut long_len = good.clone();
        long_len[3] += 4;
        let mut odd_len = good.clone();
        odd_len[3] -= 1;
        let mut attr_overrun = good.clone();
        attr_overrun[23] = 0xff;
        let cases: Vec<(&str, Vec<u8>, ResponseError)> = vec![
            ("empty", vec![], ResponseError::Malformed),
            (
                "short header",
                good[..19].to_vec(),
                ResponseError::Malformed,
            ),
            (
                "truncated body",
                good[..good.len() - 1].to_vec(),
                ResponseError::Malformed,
            ),
            (
                "trailing byte",
                [good.clone(), vec![0]].concat(),
                ResponseError::Malformed,
            ),
            ("bad cookie", bad_cookie, ResponseError::Malformed),
            ("top bits", top_bits, ResponseError::Malformed),
            (
                "length past the datagram",
                long_len,
                ResponseError::Malformed,
            ),
            ("unaligned length", odd_len, ResponseError::Malformed),
            (
                "attribute past the message",
                attr_overrun,
                ResponseError::Malformed,
            ),
            (
                "another transaction",
                response(BINDING_SUCCESS, &other_tid, &[]),
                ResponseError::OtherTransaction,
            ),
            (
                "a request",
                response(BINDING_REQUEST, &TID, &[]),
                ResponseError::OtherTransaction,
            ),
            (
                "error response",
                response(BINDING_ERROR, &TID, &[]),
                ResponseError::ErrorResponse,
            ),
            (
                "no address",
                response(BINDING_SUCCESS, &TID, &[(0x8022, b"x".to_vec())]),
                ResponseError::NoAddress,
            ),
            (
                "bad family",
                response(
                    BINDING_SUCCESS,
                    &TID,
                    &[(XOR_MAPPED_ADDRESS, vec![0, 3, 0, 0, 1, 2, 3, 4])],
                ),
                ResponseError::NoAddress,
            ),
            (
                "IPv6 family, IPv4 length",
                response(
                    BINDING_SUCCESS,
                    &TID,
                    &[(XOR_MAPPED_ADDRESS, vec![0, 2, 0, 0, 1, 2, 3, 4])],
                ),
                ResponseError::NoAddress,
            ),
            (
                "short value",
                response(BINDING_SUCCESS, &TID, &[(XOR_MAPPED_ADDRESS, vec![0, 1])]),
                ResponseError::NoAddress,
            ),
        ];
        for (name, msg, want) in cases {
            assert_eq!(parse_response(&msg, &TID), Err(want), "{name}");
        }
    }

    /// Random datagrams and single-byte corruptions of a good one never panic, and a
    /// result is always an address the message really held or an error.
    #[test]
    fn random_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let good = response(
            BINDING_SUCCESS,
            &TID,
            &[
                (0x8022, b"software".to_vec()),
                (
                    XOR_MAPPED_ADDRESS,
                    vec![
                        0, 2, 0xa1, 0x47, 1, 0x13, 0xa9, 0xfa, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
                        12,
                    ],
                ),
            ],
        );
        for i in 0..20_000 {
            let msg: Vec<u8> = if i % 2 == 0 {
                let n = rng.random_range(0..200);
                let mut m: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                if m.len() >= 20 {
                    m[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                    m[8..20].copy_from_slice(&TID);
                }
                m
            } else {
                let mut m = good.clone();
                let at = rng.random_range(0..m.len());
                m[at] = rng.random();
                m
            };
            let _ = parse_response(&msg, &TID);
        }
    }

    #[test]
    fn servers_parse() {
        assert_eq!(
            parse_server("stun.example.org"),
            Ok("stun.example.org:3478".into())
        );
        assert_eq!(
            parse_server("stun.example.org:19302"),
            Ok("stun.example.org:19302".into())
        );
        assert_eq!(parse_server("127.0.0.1"), Ok("127.0.0.1:3478".into()));
        assert_eq!(parse_server("[::1]:5000"), Ok("[::1]:5000".into()));
        assert_eq!(parse_server("::1"), Ok("[::1]:3478".into()));
        for bad in [
            "",
            "host:",
            "host:0",
            "host:99999",
            "a b:1",
            "x/y",
            &"a".repeat(300),
        ] {
            assert!(parse_server(bad).is_err(), "{bad}");
        }
        for s in DEFAULT_SERVERS {
            assert!(parse_server(s).is_ok(), "{s}");
        }
    }
}
