//! UPnP-IGD through `igd-next`: SSDP search for an Internet Gateway Device, then its
//! WANIPConnection SOAP actions.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use igd_next::aio::Gateway;
use igd_next::aio::tokio::Tokio;
use igd_next::{PortMappingProtocol, SearchOptions};

use super::{Error, Protocol};

/// What a mapping is called in the router's table.
const DESCRIPTION: &str = "devp2p";

/// A found gateway and our address on its network (the mappings' target).
pub struct Client {
    gateway: Gateway<Tokio>,
    local_ip: IpAddr,
}

impl Client {
    /// Searches for a gateway: SSDP `M-SEARCH` to `ssdp` (the multicast group
    /// `239.255.255.250:1900` normally; a unicast address in tests), waiting at most
    /// `timeout`.
    pub async fn search(ssdp: SocketAddr, timeout: Duration) -> Result<Self, Error> {
        let mut opts = SearchOptions::default();
        opts.broadcast_address = ssdp;
        opts.timeout = Some(timeout);
        opts.single_search_timeout = Some(timeout);
        if ssdp.is_ipv6() {
            opts.bind_addr = (std::net::Ipv6Addr::UNSPECIFIED, 0).into();
        }
        let gateway = igd_next::aio::tokio::search_gateway(opts)
            .await
            .map_err(|e| Error::NoGateway(format!("UPnP: {e}")))?;
        // Our address toward the gateway: the internal client of the mappings.
        let probe = tokio::net::UdpSocket::bind(match gateway.addr {
            SocketAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
            SocketAddr::V6(_) => SocketAddr::from(([0u16; 8], 0)),
        })
        .await
        .map_err(Error::Io)?;
        probe.connect(gateway.addr).await.map_err(Error::Io)?;
        let local_ip = probe.local_addr().map_err(Error::Io)?.ip();
        Ok(Client { gateway, local_ip })
    }

    /// The gateway's control address.
    pub fn gateway(&self) -> SocketAddr {
        self.gateway.addr
    }

    /// The gateway's external IP.
    pub async fn external_ip(&self) -> Result<IpAddr, Error> {
        self.gateway
            .get_external_ip()
            .await
            .map_err(|e| Error::Upnp(e.to_string()))
    }

    /// Maps external port `external` to our `internal` port for `lifetime`; returns the
    /// external port and lifetime (UPnP grants what is asked or fails).
    pub async fn map(
        &self,
        protocol: Protocol,
        internal: u16,
        external: u16,
        lifetime: Duration,
    ) -> Result<(u16, Duration), Error> {
        let secs = super::lease_secs(lifetime);
        self.gateway
            .add_port(
                proto(protocol),
                external,
                SocketAddr::new(self.local_ip, internal),
                secs,
                DESCRIPTION,
            )
            .await
            .map_err(|e| Error::Upnp(e.to_string()))?;
        Ok((external, lifetime))
    }

    /// Deletes the mapping of external port `external`.
    pub async fn unmap(&self, protocol: Protocol, external: u16) -> Result<(), Error> {
        self.gateway
            .remove_port(proto(protocol), external)
            .await
            .map_err(|e| Error::Upnp(e.to_string()))
    }
}

fn proto(p: Protocol) -> PortMappingProtocol {
    match p {
        Protocol::Tcp => PortMappingProtocol::TCP,
        Protocol::Udp => PortMappingProtocol::UDP,
    }
}
