//! Port mapping behind a home router (`--nat upnp|pmp|any`): find the gateway, map our
//! TCP (RLPx) and UDP (discovery) ports, keep the mappings alive and report the external
//! endpoint, remove the mappings at shutdown.
//!
//! [`spawn`] runs one tokio task. Each round it (re)finds the gateway when it has none,
//! asks for the external IP and maps both ports for [`Config::lifetime`], then sleeps for
//! half the shortest lifetime granted (RFC 6886 §3.3 renews at half; UPnP leases alike).
//! A failed round forgets the gateway and retries after [`Config::retry`]. The external
//! endpoint is published on a watch channel ([`Handle::subscribe`]): the node puts it
//! into its ENR. [`Handle::shutdown`] deletes the mappings (bounded in time).
//!
//! Timing is tokio's clock, so tests can run it in virtual time.

pub mod pmp;
pub mod stun;
pub mod upnp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The SSDP multicast group UPnP devices answer searches on (UPnP Device Architecture 1.1
/// §1.3.2).
pub const SSDP_MULTICAST: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 1900);
/// Mapping lifetime asked for: 20 minutes, as go-ethereum (`mapTimeout`); a node that
/// dies without unmapping leaves the ports open for at most this long.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(20 * 60);
/// Wait after a failed round (no gateway, a refused mapping) before the next.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(60);
/// How long an SSDP search waits for a gateway: routers answer within the `MX` of 2-3 s
/// igd-next sends.
pub const DEFAULT_SEARCH: Duration = Duration::from_secs(5);
/// Shortest wait between renewals, whatever lifetime a gateway grants: bounds the work a
/// broken gateway granting one-second leases can cause.
const MIN_RENEW: Duration = Duration::from_secs(1);
/// Time allowed for deleting the mappings at shutdown.
const UNMAP_LIMIT: Duration = Duration::from_secs(5);

/// NAT errors. None stops the node: a failed round is logged and retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket failed.
    #[error("NAT socket: {0}")]
    Io(std::io::Error),
    /// No gateway answered (or none is known).
    #[error("no NAT gateway: {0}")]
    NoGateway(String),
    /// The NAT-PMP gateway refused a request with this result code (RFC 6886 §3.5).
    #[error("NAT-PMP gateway refused the request (result code {0})")]
    Refused(u16),
    /// A UPnP action failed.
    #[error("UPnP: {0}")]
    Upnp(String),
}

/// Transport of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// TCP (RLPx).
    Tcp,
    /// UDP (discovery).
    Udp,
}

/// How the gateway is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// UPnP-IGD: SSDP search sent to this address ([`SSDP_MULTICAST`] normally).
    Upnp {
        /// Where the `M-SEARCH` goes.
        ssdp: SocketAddr,
    },
    /// NAT-PMP at this gateway address; `None` is the default route's gateway at
    /// [`pmp::GATEWAY_PORT`].
    Pmp {
        /// The gateway.
        gateway: Option<SocketAddr>,
    },
    /// Both at once; NAT-PMP is preferred when both answer.
    Any {
        /// Where the `M-SEARCH` goes.
        ssdp: SocketAddr,
        /// The NAT-PMP gateway, `None` for the default route's.
        pmp: Option<SocketAddr>,
    },
    /// No mapping: the external IP from these STUN servers (`HOST:PORT` each, see
    /// [`stun::parse_server`]), our own ports (forwarded by hand, as with `extip`).
    Stun {
        /// The servers asked, at most [`stun::SERVERS_PER_ROUND`] per round.
        servers: Vec<String>,
    },
}

/// Settings of the NAT task.
#[derive(Clone, Debug)]
pub struct Config {
    /// How the gateway is found.
    pub method: Method,
    /// Our TCP port to map; 0 maps none.
    pub tcp_port: u16,
    /// Our UDP port to map; 0 maps none.
    pub udp_port: u16,
    /// Lifetime asked for. Default [`DEFAULT_LIFETIME`].
    pub lifetime: Duration,
    /// Wait after a failed round. Default [`DEFAULT_RETRY`].
    pub retry: Duration,
    /// SSDP search time. Default [`DEFAULT_SEARCH`].
    pub search_timeout: Duration,
}

impl Config {
    /// Maps `tcp_port` and `udp_port` found by `method`, with the default timings.
    pub fn new(method: Method, tcp_port: u16, udp_port: u16) -> Self {
        Config {
            method,
            tcp_port,
            udp_port,
            lifetime: DEFAULT_LIFETIME,
            retry: DEFAULT_RETRY,
            search_timeout: DEFAULT_SEARCH,
        }
    }
}

/// Our endpoint as the Internet sees it through the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct External {
    /// The gateway's external IP.
    pub ip: IpAddr,
    /// The external TCP port (0 when not mapped).
    pub tcp: u16,
    /// The external UDP port (0 when not mapped).
    pub udp: u16,
}

/// The running NAT task.
pub struct Handle {
    external: watch::Receiver<Option<External>>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Handle {
    /// The external endpoint while mapped, updated on every change.
    pub fn subscribe(&self) -> watch::Receiver<Option<External>> {
        self.external.clone()
    }

    /// The current external endpoint, if mapped.
    pub fn external(&self) -> Option<External> {
        *self.external.borrow()
    }

    /// Stops renewing and deletes the mappings (waiting at most a few seconds for the
    /// gateway).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Dropped without shutdown: the mappings expire by themselves.
        if self.stop.is_some() {
            self.task.abort();
        }
    }
}

/// Starts the NAT task on the current tokio runtime.
pub fn spawn(config: Config) -> Handle {
    let (tx, external) = watch::channel(None);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(config, tx, stopped));
    Handle {
        external,
        stop: Some(stop),
        task,
    }
}

/// A lifetime as both protocols carry it: whole seconds in 32 bits, at least 1 (0 means
/// "delete" in NAT-PMP and "forever" in UPnP, neither of which a mapping wants).
fn lease_secs(lifetime: Duration) -> u32 {
    u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX).max(1)
}

/// A gateway found by either protocol, or the STUN servers that tell our IP.
enum Gateway {
    Pmp(pmp::Client),
    Upnp(upnp::Client),
    Stun(Vec<String>),
}

impl Gateway {
    async fn external_ip(&self) -> Result<IpAddr, Error> {
        match self {
            Gateway::Pmp(c) => c.external_ip().await.map(IpAddr::V4),
            Gateway::Upnp(c) => c.external_ip().await,
            Gateway::Stun(servers) => stun::external_ip(servers).await,
        }
    }

    async fn map(
        &self,
        p: Protocol,
        internal: u16,
        external: u16,
        lifetime: Duration,
    ) -> Result<(u16, Duration), Error> {
        match self {
            Gateway::Pmp(c) => c.map(p, internal, external, lifetime).await,
            Gateway::Upnp(c) => c.map(p, internal, external, lifetime).await,
            // Nothing to map: our port is reachable as it is (or forwarded by hand).
            Gateway::Stun(_) => Ok((internal, lifetime)),
        }
    }

    async fn unmap(&self, m: &Mapped) -> Result<(), Error> {
        match self {
            // NAT-PMP deletes by internal port, UPnP by external port.
            Gateway::Pmp(c) => c.unmap(m.protocol, m.internal).await,
            Gateway::Upnp(c) => c.unmap(m.protocol, m.external).await,
            Gateway::Stun(_) => Ok(()),
        }
    }

    fn describe(&self) -> (&'static str, String) {
        match self {
            Gateway::Pmp(c) => ("NAT-PMP", c.gateway().to_string()),
            Gateway::Upnp(c) => ("UPnP", c.gateway().to_string()),
            Gateway::Stun(servers) => ("STUN", servers.join(",")),
        }
    }
}

/// A mapping in place.
#[derive(Clone, Copy, Debug)]
struct Mapped {
    protocol: Protocol,
    internal: u16,
    external: u16,
}

async fn find_pmp(gateway: Option<SocketAddr>) -> Result<Gateway, Error> {
    let gateway = match gateway {
        Some(g) => g,
        None => SocketAddr::new(
            pmp::default_gateway()
                .ok_or_else(|| Error::NoGateway("NAT-PMP: no default route".into()))?
                .into(),
            pmp::GATEWAY_PORT,
        ),
    };
    let client = pmp::Client::new(gateway).await?;
    // A gateway that answers the address request speaks NAT-PMP.
    client.external_ip().await?;
    Ok(Gateway::Pmp(client))
}

async fn find(method: &Method, search: Duration) -> Result<Gateway, Error> {
    match *method {
        Method::Pmp { gateway } => find_pmp(gateway).await,
        Method::Upnp { ssdp } => upnp::Client::search(ssdp, search).await.map(Gateway::Upnp),
        Method::Stun { ref servers } => Ok(Gateway::Stun(servers.clone())),
        Method::Any { ssdp, pmp } => {
            let (p, u) = tokio::join!(find_pmp(pmp), upnp::Client::search(ssdp, search));
            match (p, u) {
                (Ok(g), _) => Ok(g),
                (Err(_), Ok(u)) => Ok(Gateway::Upnp(u)),
                (Err(p), Err(u)) => Err(Error::NoGateway(format!("{p}; {u}"))),
            }
        }
    }
}

/// The task's state between rounds.
struct State {
    config: Config,
    gateway: Option<Gateway>,
    mapped: Vec<Mapped>,
}

impl State {
    /// One round: find the gateway if needed, read the external IP, (re)map both ports.
    /// Returns the endpoint and the shortest lifetime granted.
    async fn round(&mut self) -> Result<(External, Duration), Error> {
        if self.gateway.is_none() {
            let g = find(&self.config.method, self.config.search_timeout).await?;
            let (kind, addr) = g.describe();
            info!(target: "nat", kind, gateway = addr, "found NAT gateway");
            self.gateway = Some(g);
            self.mapped.clear();
        }
        let Some(g) = &self.gateway else {
            return Err(Error::NoGateway("lost".into()));
        };
        let ip = g.external_ip().await?;
        let mut ext = External { ip, tcp: 0, udp: 0 };
        let mut shortest = self.config.lifetime;
        let ports = [
            (Protocol::Tcp, self.config.tcp_port),
            (Protocol::Udp, self.config.udp_port),
        ];
        for (protocol, internal) in ports {
            if internal == 0 {
                continue;
            }
            // Renewals ask for the port granted before, the first map for our own.
            let want = self
                .mapped
                .iter()
                .find(|m| m.protocol == protocol)
                .map_or(internal, |m| m.external);
            let (external, life) = g
                .map(protocol, internal, want, self.config.lifetime)
                .await?;
            self.mapped.retain(|m| m.protocol != protocol);
            self.mapped.push(Mapped {
                protocol,
                internal,
                external,
            });
            shortest = shortest.min(life);
            match protocol {
                Protocol::Tcp => ext.tcp = external,
                Protocol::Udp => ext.udp = external,
            }
        }
        Ok((ext, shortest))
    }

    async fn unmap_all(&mut self) {
        let Some(g) = &self.gateway else { return };
        for m in self.mapped.drain(..) {
            match g.unmap(&m).await {
                Ok(()) => {
                    debug!(target: "nat", protocol = ?m.protocol, port = m.external, "mapping removed")
                }
                Err(e) => {
                    warn!(target: "nat", protocol = ?m.protocol, port = m.external, error = %e, "could not remove mapping")
                }
            }
        }
    }
}

async fn run(config: Config, tx: watch::Sender<Option<External>>, mut stop: oneshot::Receiver<()>) {
    let mut state = State {
        config,
        gateway: None,
        mapped: Vec::new(),
    };
    loop {
        let round = tokio::select! {
            r = state.round() => r,
            _ = &mut stop => break,
        };
        let wait = match round {
            Ok((ext, life)) => {
                tx.send_if_modified(|cur| {
                    let changed = *cur != Some(ext);
                    if changed {
                        info!(target: "nat", ip = %ext.ip, tcp = ext.tcp, udp = ext.udp, "ports mapped");
                    }
                    *cur = Some(ext);
                    changed
                });
                (life / 2).max(MIN_RENEW)
            }
            Err(e) => {
                warn!(target: "nat", error = %e, retry = ?state.config.retry, "port mapping failed");
                // The next round starts over: the gateway may have gone or rebooted.
                state.gateway = None;
                tx.send_if_modified(|cur| cur.take().is_some());
                state.config.retry
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = &mut stop => break,
        }
    }
    let _ = tokio::time::timeout(UNMAP_LIMIT, state.unmap_all()).await;
    tx.send_if_modified(|cur| cur.take().is_some());
}
