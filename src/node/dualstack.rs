//! Dual-stack sockets for the default `--addr ::`: one IPv6 socket with `IPV6_V6ONLY`
//! off takes IPv4 peers too (as IPv4-mapped addresses, which the server and discovery
//! put in canonical form), whatever the system's `net.ipv6.bindv6only` default. A machine
//! without IPv6 falls back to `0.0.0.0`, as before.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// Backlog of the RLPx listener (what `tokio::net::TcpListener::bind` uses).
const BACKLOG: i32 = 1024;

/// Whether `addr` asks for both families: `::`.
pub(crate) fn is_dual(addr: IpAddr) -> bool {
    addr == IpAddr::V6(Ipv6Addr::UNSPECIFIED)
}

fn socket(addr: SocketAddr, ty: Type, proto: Protocol) -> io::Result<Socket> {
    let s = Socket::new(Domain::for_address(addr), ty, Some(proto))?;
    if is_dual(addr.ip()) {
        s.set_only_v6(false)?;
    }
    if ty == Type::STREAM {
        // As tokio's own bind: a restarted node can listen while old connections linger.
        s.set_reuse_address(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s)
}

/// A TCP listener on `addr` (dual-stack for `::`).
pub(crate) fn tcp(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let s = socket(addr, Type::STREAM, Protocol::TCP)?;
    s.listen(BACKLOG)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// A UDP socket on `addr` (dual-stack for `::`).
pub(crate) fn udp(addr: SocketAddr) -> io::Result<tokio::net::UdpSocket> {
    tokio::net::UdpSocket::from_std(socket(addr, Type::DGRAM, Protocol::UDP)?.into())
}

/// The RLPx listener for `addr`: `::` dual-stack, falling back to `0.0.0.0` when the
/// machine has no IPv6 (then the node listens, and discovery binds, on IPv4 only).
/// Returns the listener and the address the node listens on.
pub(crate) fn listen(addr: IpAddr, port: u16) -> io::Result<(tokio::net::TcpListener, IpAddr)> {
    match tcp(SocketAddr::new(addr, port)) {
        Ok(l) => Ok((l, addr)),
        // A taken port is taken on IPv4 too: no fallback hides it.
        Err(e) if is_dual(addr) && e.kind() != io::ErrorKind::AddrInUse => {
            tracing::info!(target: "p2p", error = %e, "no IPv6: listening on IPv4 only");
            let v4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
            Ok((tcp(SocketAddr::new(v4, port))?, v4))
        }
        Err(e) => Err(e),
    }
}
