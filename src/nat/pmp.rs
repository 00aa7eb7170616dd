//! NAT-PMP (RFC 6886): the wire format, sans-IO, and a small client over a UDP socket.
//!
//! Written here rather than taken from the `natpmp` crate: that client waits for an answer
//! without retransmitting (RFC 6886 §3.1 asks for retries from 250 ms, doubling), reads a
//! response without checking its length or that it answers the request sent, fixes the
//! gateway port (so no test can point it at a responder on a free port), and pulls a
//! C build step and an interface-listing crate in for gateway discovery. The protocol is
//! two 12-byte requests and two fixed-size answers.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

use super::{Error, Protocol};

/// The port a NAT-PMP gateway listens on (RFC 6886 §3).
pub const GATEWAY_PORT: u16 = 5351;
/// First retransmission timeout (RFC 6886 §3.1), doubled after each try.
const FIRST_TIMEOUT: Duration = Duration::from_millis(250);
/// Tries per request: 250 ms + … + 2 s = 3.75 s before giving up. RFC 6886 allows nine
/// (64 s), which would stall `--nat any` on a network without a NAT-PMP gateway; a
/// gateway on the LAN answers in milliseconds.
const TRIES: u32 = 4;

/// A NAT-PMP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// Opcode 0: the gateway's external IPv4 address.
    ExternalAddress,
    /// Opcode 1 (UDP) or 2 (TCP): map `internal` to (preferably) `external` for
    /// `lifetime` seconds; a lifetime of 0 (with external 0) deletes the mapping.
    Map {
        /// Transport.
        protocol: Protocol,
        /// Our port.
        internal: u16,
        /// The external port asked for; the gateway may pick another.
        external: u16,
        /// Seconds.
        lifetime: u32,
    },
}

/// A successful NAT-PMP response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// The external address.
    ExternalAddress {
        /// Seconds since the gateway's port mapping table was (re)initialised.
        epoch: u32,
        /// The gateway's external IPv4 address.
        ip: Ipv4Addr,
    },
    /// A mapping granted (or deleted, with lifetime 0).
    Map {
        /// Transport.
        protocol: Protocol,
        /// Seconds since the gateway's table was (re)initialised.
        epoch: u32,
        /// Our port.
        internal: u16,
        /// The external port the gateway assigned.
        external: u16,
        /// Seconds the mapping lasts.
        lifetime: u32,
    },
}

/// Why a datagram is not an answer to the request sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Wrong length, version, or not the response to this request's opcode: ignored
    /// (RFC 6886 §3.5: the client keeps waiting).
    #[error("not a NAT-PMP response to this request")]
    Unrelated,
    /// The gateway refused (result code: 1 unsupported version, 2 not authorized,
    /// 3 network failure, 4 out of resources, 5 unsupported opcode).
    #[error("NAT-PMP gateway refused the request: result code {0}")]
    Refused(u16),
}

impl Request {
    fn opcode(self) -> u8 {
        match self {
            Request::ExternalAddress => 0,
            Request::Map {
                protocol: Protocol::Udp,
                ..
            } => 1,
            Request::Map {
                protocol: Protocol::Tcp,
                ..
            } => 2,
        }
    }

    /// The request on the wire (RFC 6886 §3.2, §3.3).
    pub fn encode(self) -> Vec<u8> {
        match self {
            Request::ExternalAddress => vec![0, 0],
            Request::Map {
                internal,
                external,
                lifetime,
                ..
            } => {
                let mut b = vec![0, self.opcode(), 0, 0];
                b.extend_from_slice(&internal.to_be_bytes());
                b.extend_from_slice(&external.to_be_bytes());
                b.extend_from_slice(&lifetime.to_be_bytes());
                b
            }
        }
    }

    /// Decodes `data` as the answer to this request (RFC 6886 §3.2, §3.3, §3.5): version
    /// 0, opcode 128 + ours, and for mappings the same internal port.
    pub fn decode_response(self, data: &[u8]) -> Result<Response, DecodeError> {
        let u16_at = |i: usize| -> Option<u16> {
            Some(u16::from_be_bytes(data.get(i..i + 2)?.try_into().ok()?))
        };
        let u32_at = |i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(data.get(i..i + 4)?.try_into().ok()?))
        };
        let (Some(&0), Some(&op)) = (data.first(), data.get(1)) else {
            return Err(DecodeError::Unrelated);
        };
        if op != 128 + self.opcode() {
            return Err(DecodeError::Unrelated);
        }
        let result = u16_at(2).ok_or(DecodeError::Unrelated)?;
        // An error answer may be short; its result code is what matters.
        if result != 0 {
            return Err(DecodeError::Refused(result));
        }
        let epoch = u32_at(4).ok_or(DecodeError::Unrelated)?;
        match self {
            Request::ExternalAddress => {
                let ip = u32_at(8).ok_or(DecodeError::Unrelated)?;
                Ok(Response::ExternalAddress {
                    epoch,
                    ip: Ipv4Addr::from(ip),
                })
            }
            Request::Map {
                protocol, internal, ..
            } => {
                let (Some(int), Some(external), Some(lifetime)) =
                    (u16_at(8), u16_at(10), u32_at(12))
                else {
                    return Err(DecodeError::Unrelated);
                };
                if int != internal {
                    return Err(DecodeError::Unrelated);
                }
                Ok(Response::Map {
                    protocol,
                    epoch,
                    internal,
                    external,
                    lifetime,
                })
            }
        }
    }
}

/// A NAT-PMP client for one gateway.
pub struct Client {
    socket: UdpSocket,
    gateway: SocketAddr,
}

impl Client {
    /// A client talking to `gateway` (normally the default router at [`GATEWAY_PORT`]).
    pub async fn new(gateway: SocketAddr) -> Result<Self, Error> {
        let bind: SocketAddr = match gateway {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(bind).await.map_err(Error::Io)?;
        // Connected: the kernel drops datagrams from any other source (RFC 6886 §3.2:
        // only the gateway's answers count).
        socket.connect(gateway).await.map_err(Error::Io)?;
        Ok(Client { socket, gateway })
    }

    /// The gateway's address.
    pub fn gateway(&self) -> SocketAddr {
        self.gateway
    }

    /// Sends `req`, retransmitting from 250 ms with doubling timeouts, and returns the
    /// gateway's answer.
    pub async fn request(&self, req: Request) -> Result<Response, Error> {
        let data = req.encode();
        // The largest response is 16 bytes; a bigger datagram is not ours.
        let mut buf = [0u8; 64];
        let mut timeout = FIRST_TIMEOUT;
        for _ in 0..TRIES {
            self.socket.send(&data).await.map_err(Error::Io)?;
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                let recv = tokio::time::timeout_at(deadline, self.socket.recv(&mut buf)).await;
                let Ok(r) = recv else { break };
                // ICMP port unreachable (no gateway): a connected socket reports it here.
                let n = match r {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        return Err(Error::NoGateway(format!(
                            "NAT-PMP: {} refused the connection",
                            self.gateway
                        )));
                    }
                    Err(e) => return Err(Error::Io(e)),
                };
                match req.decode_response(buf.get(..n).unwrap_or_default()) {
                    Ok(r) => return Ok(r),
                    Err(DecodeError::Refused(code)) => return Err(Error::Refused(code)),
                    Err(DecodeError::Unrelated) => continue,
                }
            }
            timeout *= 2;
        }
        Err(Error::NoGateway(format!(
            "NAT-PMP: no answer from {}",
            self.gateway
        )))
    }

    /// The gateway's external IPv4 address.
    pub async fn external_ip(&self) -> Result<Ipv4Addr, Error> {
        match self.request(Request::ExternalAddress).await? {
            Response::ExternalAddress { ip, .. } => Ok(ip),
            Response::Map { .. } => Err(Error::NoGateway("NAT-PMP: unexpected answer".into())),
        }
    }

    /// Maps `internal` for `lifetime`, asking for the same external port; returns the
    /// external port and the lifetime granted.
    pub async fn map(
        &self,
        protocol: Protocol,
        internal: u16,
        external: u16,
        lifetime: Duration,
    ) -> Result<(u16, Duration), Error> {
        let lifetime = super::lease_secs(lifetime);
        let req = Request::Map {
            protocol,
            internal,
            external,
            lifetime,
        };
        match self.request(req).await? {
            Response::Map {
                external, lifetime, ..
            } if lifetime > 0 && external != 0 => {
                Ok((external, Duration::from_secs(u64::from(lifetime))))
            }
            _ => Err(Error::NoGateway("NAT-PMP: mapping not granted".into())),
        }
    }

    /// Deletes the mapping of `internal` (RFC 6886 §3.4: lifetime 0, external port 0).
    pub async fn unmap(&self, protocol: Protocol, internal: u16) -> Result<(), Error> {
        let req = Request::Map {
            protocol,
            internal,
            external: 0,
            lifetime: 0,
        };
        self.request(req).await.map(drop)
    }
}

/// The IPv4 default gateway from `/proc/net/route` (Linux); `None` elsewhere or when
/// there is no default route.
pub fn default_gateway() -> Option<Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_route_table(&table)
}

/// The gateway of the default route (destination and mask 0) in a `/proc/net/route`
/// table, whose addresses are little-endian hex.
fn parse_route_table(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (dest, gw, mask) = (f.get(1)?, f.get(2)?, f.get(7)?);
        if *dest != "00000000" || *mask != "00000000" {
            return None;
        }
        let gw = u32::from_str_radix(gw, 16).ok()?;
        (gw != 0).then(|| Ipv4Addr::from(gw.swap_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_rfc_6886() {
        assert_eq!(Request::ExternalAddress.encode(), [0, 0]);
        let map = Request::Map {
            protocol: Protocol::Tcp,
            internal: 30303,
            external: 30304,
            lifetime: 1200,
        };
        assert_eq!(
            map.encode(),
            [0, 2, 0, 0, 0x76, 0x5f, 0x76, 0x60, 0, 0, 0x04, 0xb0]
        );
    }

    #[test]
    fn responses_are_checked_against_the_request() {
        let ext = Request::ExternalAddress;
        let ok = [0, 128, 0, 0, 0, 0, 0, 9, 203, 0, 113, 5];
        assert_eq!(
            ext.decode_response(&ok),
            Ok(Response::ExternalAddress {
                epoch: 9,
                ip: Ipv4Addr::new(203, 0, 113, 5)
            })
        );
        assert_eq!(ext.decode_response(&ok[..11]), Err(DecodeError::Unrelated));
        assert_eq!(
            ext.decode_response(&[1, 128, 0, 0, 0, 0, 0, 9, 1, 2, 3, 4]),
            Err(DecodeError::Unrelated),
            "version"
        );
        assert_eq!(
            ext.decode_response(&[0, 128, 0, 2]),
            Err(DecodeError::Refused(2))
        );
        let map = Request::Map {
            protocol: Protocol::Udp,
            internal: 30303,
            external: 30303,
            lifetime: 1200,
        };
        let granted = [
            0, 129, 0, 0, 0, 0, 0, 1, 0x76, 0x5f, 0x9c, 0x40, 0, 0, 0x02, 0x58,
        ];
        assert_eq!(
            map.decode_response(&granted),
            Ok(Response::Map {
                protocol: Protocol::Udp,
                epoch: 1,
                internal: 30303,
                external: 40000,
                lifetime: 600
            })
        );
        let mut tcp = granted;
        tcp[1] = 130;
        assert_eq!(
            map.decode_response(&tcp),
            Err(DecodeError::Unrelated),
            "TCP answer to a UDP request"
        );
        let mut other = granted;
        other[9] = 0x60;
        assert_eq!(
            map.decode_response(&other),
            Err(DecodeError::Unrelated),
            "another port"
        );
        assert_eq!(map.decode_response(&ok), Err(DecodeError::Unrelated));
        assert_eq!(map.decode_response(&[]), Err(DecodeError::Unrelated));
    }

    #[test]
    fn default_route_from_proc_net_route() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
        assert_eq!(
            parse_route_table(table),
            Some(Ipv4Addr::new(192, 168, 0, 1))
        );
        assert_eq!(parse_route_table("Iface\n"), None);
    }
}
