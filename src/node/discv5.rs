//! The node's Node Discovery v5: when it runs, its bootnodes and port, and where what it
//! finds goes (the server's dial candidates, as DNS node lists and v4 do). The protocol
//! glue is [`discovery::v5`].

use std::net::SocketAddr;

use discovery::Enr;
use discovery::v5::{self, Handle};
use tokio::sync::watch;

use super::{Config, Error};
use crate::server;

/// Whether v5 runs: never without discovery; else as `config.discovery_v5` says, by
/// default on the public presets (`preset` holds their v5 bootnodes) and when v5 bootnodes
/// are given.
pub(crate) fn enabled(config: &Config, preset: &[&str]) -> bool {
    !config.no_discovery
        && config
            .discovery_v5
            .unwrap_or(!preset.is_empty() || !config.bootnodes_v5.is_empty())
}

/// The v5 bootnodes: the configured ones, else none when v4 bootnodes are configured (a
/// private network: the preset's consensus-layer nodes would be strangers), else the
/// preset's.
pub(crate) fn bootnodes(config: &Config, preset: &[&str]) -> Result<Vec<Enr>, Error> {
    if !config.bootnodes_v5.is_empty() {
        return Ok(config.bootnodes_v5.clone());
    }
    if !config.bootnodes.is_empty() {
        return Ok(Vec::new());
    }
    preset
        .iter()
        .map(|s| s.parse::<Enr>())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Invalid(format!("preset v5 bootnodes: {e}")))
}

/// The v5 UDP port: the configured one, else [`v5::DEFAULT_PORT`], or a free one when the
/// TCP port is picked freely (tests, several nodes on a host).
pub(crate) fn port(config: &Config) -> u16 {
    config.discovery_v5_port.unwrap_or(if config.port == 0 {
        0
    } else {
        v5::DEFAULT_PORT
    })
}

/// Binds the v5 UDP socket.
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::UdpSocket, Error> {
    tokio::net::UdpSocket::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            what: "UDP (discovery v5)",
            addr,
            source,
        })
}

/// Starts v5 if [`enabled`], with our key and v4 record (`disc`, which must run), the `eth`
/// entry when eth runs, feeding the server's dial candidates.
pub(crate) async fn start(
    config: &Config,
    preset: &[&str],
    key: &secp256k1::SecretKey,
    disc: Option<&discovery::Handle>,
    server: &server::Handle,
    eth_entry: Option<&[u8]>,
) -> Result<Option<Handle>, Error> {
    let Some(disc) = disc.filter(|_| enabled(config, preset)) else {
        return Ok(None);
    };
    let bootnodes = bootnodes(config, preset)?;
    // On the default dual-stack `::`, v5 binds IPv4 only: the discv5 crate treats a
    // socket of one family as that family's (it would send to IPv4 bootnodes through
    // an IPv6 socket it believes IPv6-only), and every v5 bootnode is IPv4.
    let ip = if super::dualstack::is_dual(config.addr) {
        std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        config.addr
    };
    let socket = bind(SocketAddr::new(ip, port(config))).await?;
    // The v4 record, with the `eth` entry when eth runs (set before this is called).
    let record = disc
        .local_enr()
        .await
        .map_err(|e| Error::Invalid(format!("discovery v4 record: {e}")))?;
    let vc = v5::Config {
        bootnodes,
        netrestrict: config.netrestrict.clone(),
        require_eth: eth_entry.is_some(),
        learn_address: config.nat.external_ip().is_none() && config.addr.is_unspecified(),
        ..v5::Config::default()
    };
    let handle = v5::spawn(socket, key, &record, vc, server.candidates())
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    if let Some(raw) = eth_entry {
        handle
            .set_eth_entry(raw)
            .map_err(|e| Error::Invalid(e.to_string()))?;
    }
    Ok(Some(handle))
}

/// Puts each external endpoint the NAT task reports into the v5 record.
pub(crate) async fn follow_nat(
    mut external: watch::Receiver<Option<crate::nat::External>>,
    v5: Handle,
) {
    while external.changed().await.is_ok() {
        let Some(e) = *external.borrow_and_update() else {
            continue;
        };
        v5.set_external_endpoint(e.ip, e.tcp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::presets;

    /// A node on a public preset runs its DNS tree, v4 and v5 bootnodes at once.
    #[test]
    fn a_preset_uses_dns_v4_and_v5() {
        for name in ["mainnet", "sepolia", "holesky", "hoodi"] {
            let config = Config {
                chain: name.into(),
                ..Config::default()
            };
            let preset = presets::v5_bootnodes(name);
            assert!(enabled(&config, preset), "{name}: v5 on by default");
            assert!(!bootnodes(&config, preset).unwrap().is_empty(), "{name}");
            assert!(presets::dns_tree(name).is_some(), "{name}: DNS tree");
            assert_eq!(port(&config), v5::DEFAULT_PORT);
        }
        let local = Config::default();
        let none = presets::v5_bootnodes(&local.chain);
        assert!(!enabled(&local, none), "ethtest: nobody to find over v5");
        let off = Config {
            discovery_v5: Some(false),
            ..Config::default()
        };
        assert!(!enabled(&off, presets::V5_BOOTNODES));
        let no_disc = Config {
            no_discovery: true,
            discovery_v5: Some(true),
            ..Config::default()
        };
        assert!(!enabled(&no_disc, presets::V5_BOOTNODES));
        let private = Config {
            bootnodes: vec![discovery::parse_node("enode://ca634cae0d49acb401d8a4c6b6fe8c55b70d115bf400769cc1400f3258cd31387574077f301b421bc84df7266c44e9e6d569fc56be00812904767bf5ccd1fc7f@127.0.0.1:30303").unwrap()],
            ..Config::default()
        };
        assert!(
            bootnodes(&private, presets::V5_BOOTNODES)
                .unwrap()
                .is_empty(),
            "own v4 bootnodes: no preset v5 bootnodes"
        );
    }
}
