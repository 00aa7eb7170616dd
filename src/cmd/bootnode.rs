//! `devp2p bootnode`: a discovery-only node that helps others find each other.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use discovery::{Config, NetRestrict, NodeDb, Service};
use secp256k1::SecretKey;

use super::key;

/// Bootnode errors: the node's ([`crate::node::Error`]); a bootnode meets a subset.
pub use crate::node::Error;
pub use crate::node::Nat;

/// Arguments of `devp2p bootnode`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Read the node key from this file (64 hex characters).
    #[arg(long, value_name = "FILE")]
    pub nodekey: Option<PathBuf>,
    /// The node key as 64 hex characters.
    #[arg(long, value_name = "HEX")]
    pub nodekeyhex: Option<String>,
    /// Data directory: holds the node key (generated on first start) and the node database.
    #[arg(long, value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// UDP listen address.
    #[arg(long, default_value = "0.0.0.0:30301")]
    pub addr: SocketAddr,
    /// Only talk to these networks (comma-separated CIDR list, e.g. 10.0.0.0/8,127.0.0.0/8).
    #[arg(long, value_name = "CIDRS")]
    pub netrestrict: Option<NetRestrict>,
    /// External address: any, upnp, pmp[:GATEWAY] (map the UDP port on the router),
    /// extip:IP, stun[:HOST:PORT,...] (the IP STUN servers see) or none.
    #[arg(long, default_value = "none")]
    pub nat: Nat,
    /// Other bootnodes to join (comma-separated enode URLs or ENRs).
    #[arg(long, value_delimiter = ',', value_parser = crate::node::parse_enode)]
    pub bootnodes: Vec<discovery::Node>,
    /// Serve Node Discovery v5 too, on its own UDP port (`--v5.addr`); prints the v5 ENR
    /// as a third line.
    #[arg(long)]
    pub v5: bool,
    /// UDP listen address of discovery v5 [default: --addr's IP, port 9200; a free port
    /// when --addr's port is 0].
    #[arg(long = "v5.addr", value_name = "ADDR", requires = "v5")]
    pub v5_addr: Option<SocketAddr>,
}

fn node_key(args: &Args) -> Result<SecretKey, Error> {
    Ok(key::resolve(
        args.nodekey.as_deref(),
        args.nodekeyhex.as_deref(),
        args.datadir.as_deref(),
    )?)
}

/// Runs a bootnode until `shutdown` completes, then flushes the node database.
///
/// Prints the enode URL and the ENR on start.
pub async fn run(args: Args, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    if let Some(dir) = &args.datadir {
        std::fs::create_dir_all(dir).map_err(|source| Error::DataDir {
            path: dir.clone(),
            source,
        })?;
    }
    // The datadir's lock before its key and node DB, as `devp2p node` takes it: two
    // processes on one datadir would race for both.
    let _lock = match &args.datadir {
        Some(dir) => Some(crate::node::lock_datadir(dir)?),
        None => None,
    };
    let key = node_key(&args)?;
    let config = Config {
        bootnodes: args.bootnodes.clone(),
        netrestrict: args.netrestrict.clone(),
        external_ip: args.nat.external_ip(),
        ..Config::default()
    };
    let db = match &args.datadir {
        Some(dir) => Some(NodeDb::open(dir.join("nodes.redb"))?),
        None => None,
    };
    let socket = tokio::net::UdpSocket::bind(args.addr)
        .await
        .map_err(discovery::service::Error::Io)?;
    let handle = Service::spawn(socket, key, config, db)?;
    // `--nat any|upnp|pmp`: the UDP port mapped, the mapped endpoint into the record.
    let nat = args.nat.mapping().map(|method| {
        let udp = handle.local_node().udp;
        crate::nat::spawn(crate::nat::Config::new(method, 0, udp))
    });
    let follow = nat.as_ref().map(|n| {
        let (enode, _) = tokio::sync::watch::channel(handle.local_node());
        tokio::spawn(crate::node::follow_nat(
            n.subscribe(),
            Some(handle.clone()),
            enode,
        ))
    });
    println!("{}", handle.local_node());
    let record = handle.local_enr().await?;
    println!("{record}");
    let v5 = match args.v5 {
        true => Some(start_v5(&args, &key, &record).await?),
        false => None,
    };
    let follow_v5 = match (&nat, &v5) {
        (Some(n), Some((v, _))) => Some(tokio::spawn(crate::node::discv5_follow_nat(
            n.subscribe(),
            v.clone(),
        ))),
        _ => None,
    };
    shutdown.await;
    if let Some(f) = follow_v5 {
        f.abort();
    }
    if let Some((v, drain)) = v5 {
        drain.abort();
        drop(v);
    }
    if let Some(f) = follow {
        f.abort();
    }
    handle.shutdown().await;
    if let Some(n) = nat {
        n.shutdown().await;
    }
    Ok(())
}

/// Starts discovery v5 with our key and v4 `record`; prints its ENR. Found nodes are read
/// and dropped (a bootnode dials nobody); the lookups keep its table fresh.
async fn start_v5(
    args: &Args,
    key: &SecretKey,
    record: &discovery::Enr,
) -> Result<(discovery::v5::Handle, tokio::task::JoinHandle<()>), Error> {
    let port = if args.addr.port() == 0 {
        0
    } else {
        discovery::v5::DEFAULT_PORT
    };
    let addr = args
        .v5_addr
        .unwrap_or(SocketAddr::new(args.addr.ip(), port));
    let socket = crate::node::discv5_bind(addr).await?;
    let config = discovery::v5::Config {
        netrestrict: args.netrestrict.clone(),
        require_eth: false,
        learn_address: args.nat.external_ip().is_none() && addr.ip().is_unspecified(),
        ..discovery::v5::Config::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let v5 = discovery::v5::spawn(socket, key, record, config, tx)
        .await
        .map_err(|e| Error::Invalid(e.to_string()))?;
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let enr = v5.local_enr().map_err(|e| Error::Invalid(e.to_string()))?;
    println!("{enr}");
    Ok((v5, drain))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_parses() {
        assert_eq!("none".parse::<Nat>(), Ok(Nat::None));
        assert_eq!(
            "extip:1.2.3.4".parse::<Nat>(),
            Ok(Nat::ExtIp("1.2.3.4".parse().unwrap()))
        );
        assert_eq!("upnp".parse::<Nat>(), Ok(Nat::Upnp));
        assert_eq!("any".parse::<Nat>(), Ok(Nat::Any));
        assert_eq!("pmp".parse::<Nat>(), Ok(Nat::Pmp(None)));
        assert_eq!(
            "pmp:192.168.0.1".parse::<Nat>(),
            Ok(Nat::Pmp(Some("192.168.0.1:5351".parse().unwrap())))
        );
        assert_eq!(
            "pmp:127.0.0.1:4000".parse::<Nat>(),
            Ok(Nat::Pmp(Some("127.0.0.1:4000".parse().unwrap())))
        );
        assert_eq!("stun".parse::<Nat>(), Ok(Nat::Stun(Vec::new())));
        assert!("stun:".parse::<Nat>().is_err());
        assert!("none:1.2.3.4".parse::<Nat>().is_err());
        assert!("extip:x".parse::<Nat>().is_err());
    }

    #[tokio::test]
    async fn key_is_generated_once_in_datadir() {
        let dir = std::env::temp_dir().join(format!("devp2p-bootnode-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let args = Args {
            nodekey: None,
            nodekeyhex: None,
            datadir: Some(dir.clone()),
            addr: "127.0.0.1:0".parse().unwrap(),
            netrestrict: Some("127.0.0.0/8".parse().unwrap()),
            nat: Nat::None,
            bootnodes: vec![],
            v5: false,
            v5_addr: None,
        };
        run(args.clone(), async {}).await.unwrap();
        let first = key::load(&dir.join("nodekey")).unwrap();
        run(args.clone(), async {}).await.unwrap();
        assert_eq!(key::load(&dir.join("nodekey")).unwrap(), first);
        assert!(dir.join("nodes.redb").exists());
        let conflict = Args {
            nodekeyhex: Some("00".into()),
            nodekey: Some(dir.join("nodekey")),
            ..args.clone()
        };
        assert!(matches!(
            run(conflict, async {}).await,
            Err(Error::Key(key::Error::Conflict))
        ));
        // A second process on the same datadir (here: its lock held) is refused.
        let held = crate::node::lock_datadir(&dir).unwrap();
        assert!(matches!(
            run(args.clone(), async {}).await,
            Err(Error::DataDirInUse { .. })
        ));
        drop(held);
        run(args.clone(), async {}).await.unwrap();
        let v5 = Args { v5: true, ..args };
        run(v5, async {}).await.unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
