//! The methods: go-ethereum's `admin_*`, `net_*`, `web3_clientVersion` and `rpc_modules`
//! shapes (`p2p.NodeInfo`, `p2p.PeerInfo`) over [`crate::server::Handle`].
//!
//! `protocols` maps each protocol name to `{version}`: the subprotocol API has no
//! per-protocol info hook like go-ethereum's `NodeInfo`/`PeerInfo` callbacks (which give
//! eth's network and head), so only the version is known here.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use discovery::{Node, NodeId};
use serde_json::{Map, Value, json};

use super::{Api, Error};
use crate::server::PeerSummary;

/// How long a call waits for the discovery service.
const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Dispatches one call.
pub(super) async fn call(api: &Api, method: &str, params: Option<&Value>) -> Result<Value, Error> {
    match method {
        "admin_nodeInfo" => {
            no_params(params)?;
            node_info(api).await
        }
        "admin_peers" => {
            no_params(params)?;
            Ok(peers(api))
        }
        "admin_addPeer" => {
            if !api.server.add_peer(node_param(params)?).await {
                let max = crate::server::dial::MAX_STATIC;
                return Err(Error::Refused(format!(
                    "node refused: restricted, ourselves, or {max} static nodes already"
                )));
            }
            Ok(Value::Bool(true))
        }
        "admin_removePeer" => {
            api.server.remove_peer(node_param(params)?.id).await;
            Ok(Value::Bool(true))
        }
        "admin_addTrustedPeer" => {
            if !api.server.add_trusted(node_param(params)?.id).await {
                let max = crate::server::MAX_TRUSTED;
                return Err(Error::Refused(format!("{max} trusted nodes already")));
            }
            Ok(Value::Bool(true))
        }
        "net_peerCount" => {
            no_params(params)?;
            Ok(Value::String(format!("{:#x}", api.server.peers().len())))
        }
        "net_listening" => {
            no_params(params)?;
            Ok(Value::Bool(true))
        }
        "web3_clientVersion" => {
            no_params(params)?;
            Ok(Value::String(api.config.client_id.clone()))
        }
        "rpc_modules" => {
            no_params(params)?;
            let mut modules = json!({ "admin": "1.0", "net": "1.0", "rpc": "1.0", "web3": "1.0" });
            if api.store.is_some() || api.eth.is_some() {
                modules["eth"] = json!("1.0");
            }
            if api.eth.is_some() {
                modules["txpool"] = json!("1.0");
            }
            Ok(modules)
        }
        _ => Err(Error::MethodNotFound),
    }
}

/// Positional params, at most `max` of them.
pub(super) fn positional(params: Option<&Value>, max: usize) -> Result<&[Value], Error> {
    let list = match params {
        None => &[][..],
        Some(Value::Array(a)) => a.as_slice(),
        Some(Value::Object(o)) if o.is_empty() => &[][..],
        Some(_) => {
            return Err(Error::InvalidParams(
                "expected positional parameters".into(),
            ));
        }
    };
    if list.len() > max {
        return Err(Error::InvalidParams(format!(
            "too many arguments, want at most {max}"
        )));
    }
    Ok(list)
}

fn no_params(params: Option<&Value>) -> Result<(), Error> {
    positional(params, 0).map(|_| ())
}

/// The one node URL parameter (`enode://…` or `enr:…`).
fn node_param(params: Option<&Value>) -> Result<Node, Error> {
    let Some(arg) = positional(params, 1)?.first() else {
        return Err(Error::InvalidParams(
            "missing value for required argument 0".into(),
        ));
    };
    let Some(url) = arg.as_str() else {
        return Err(Error::InvalidParams(
            "argument 0 must be a node URL string".into(),
        ));
    };
    // The parse error texts are ours and never echo the input.
    discovery::parse_node(url).map_err(|e| Error::InvalidParams(format!("invalid enode: {e}")))
}

/// go-ethereum's node id: keccak256 of the public key, in hex.
fn id_hex(id: &NodeId) -> String {
    hex::encode(id.hash())
}

/// `{name: {version}}` of capabilities, the highest version per name.
fn protocols<'a>(caps: impl Iterator<Item = &'a rlpx::Capability>) -> Value {
    let mut out = Map::new();
    for c in caps {
        let newer = out
            .get(&c.name)
            .and_then(|v| v["version"].as_u64())
            .is_none_or(|v| u64::from(c.version) > v);
        if newer {
            out.insert(c.name.clone(), json!({ "version": c.version }));
        }
    }
    Value::Object(out)
}

/// `admin_nodeInfo`. `ip` is our record's address when discovery runs, else the listen
/// address; an unspecified one is shown as 127.0.0.1 as go-ethereum does. Without
/// discovery, `enr` is empty and `ports.discovery` 0.
async fn node_info(api: &Api) -> Result<Value, Error> {
    let listen = api.server.listen_addr();
    let (enr, ip, udp) = match &api.discovery {
        Some(d) => {
            let enr = match tokio::time::timeout(DISCOVERY_TIMEOUT, d.local_enr()).await {
                Ok(Ok(enr)) => enr,
                Ok(Err(e)) => return Err(Error::Internal(e.to_string())),
                Err(_) => return Err(Error::Internal("discovery did not answer".into())),
            };
            let local = d.local_node();
            let ip = enr
                .ip4()
                .map(IpAddr::V4)
                .or(enr.ip6().map(IpAddr::V6))
                .unwrap_or(local.ip);
            (enr.to_string(), ip, local.udp)
        }
        None => (String::new(), listen.ip(), 0),
    };
    let ip = if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    };
    let id = api.server.local_id();
    let enode = Node {
        id,
        ip,
        udp,
        tcp: listen.port(),
    };
    Ok(json!({
        "id": id_hex(&id),
        "name": api.config.client_id,
        "enode": enode.to_string(),
        "enr": enr,
        "ip": ip.to_string(),
        "ports": { "discovery": udp, "listener": listen.port() },
        "listenAddr": listen.to_string(),
        "protocols": protocols(api.server.protocols().iter().map(|p| &p.cap)),
    }))
}

/// `admin_peers`, ordered by node id.
fn peers(api: &Api) -> Value {
    let mut peers = api.server.peers();
    peers.sort_by_key(|p| p.id);
    let listen = api.server.listen_addr();
    Value::Array(peers.iter().map(|p| peer(p, listen)).collect())
}

/// One `admin_peers` entry. The enode carries the connection's remote address (for an
/// inbound peer its ephemeral port, as go-ethereum shows). RLPx does not record the local
/// socket address, so `localAddress` is our listen address for inbound peers and null
/// for outbound ones. `trusted` and `static` are as of admission.
fn peer(p: &PeerSummary, listen: std::net::SocketAddr) -> Value {
    let info = &p.info;
    let (ip, port) = info
        .addr
        .map_or((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), |a| {
            (a.ip(), a.port())
        });
    let enode = Node {
        id: p.id,
        ip,
        udp: port,
        tcp: port,
    };
    let local = p.inbound.then(|| listen.to_string());
    json!({
        "enode": enode.to_string(),
        "id": id_hex(&p.id),
        "name": info.hello.client_id,
        "caps": info.hello.capabilities.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "network": {
            "localAddress": local,
            "remoteAddress": info.addr.map(|a| a.to_string()),
            "inbound": p.inbound,
            "trusted": p.trusted,
            "static": p.is_static,
        },
        "protocols": protocols(info.shared.iter().map(|s| &s.cap)),
    })
}
