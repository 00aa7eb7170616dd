//! The tokio driver: runs a [`Client`] with TXT lookups through `hickory-resolver` and sends
//! the nodes found to a channel (the dialer's candidates).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info};

use super::{Client, Error, Event};
use crate::node::Node;

/// Longest resolver error message kept (it may quote names from the network).
const MAX_ERROR_LEN: usize = 120;

/// Which DNS server answers the TXT lookups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolver {
    /// The system's (`/etc/resolv.conf` on Unix).
    System,
    /// One server at this address, over UDP with TCP fallback (tests, private networks).
    At(SocketAddr),
}

impl Resolver {
    fn build(&self) -> Result<TokioResolver, Error> {
        let builder = match self {
            Resolver::System => TokioResolver::builder_tokio().map_err(lookup_error)?,
            Resolver::At(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
        };
        builder.build().map_err(lookup_error)
    }
}

fn lookup_error(e: impl std::fmt::Display) -> Error {
    let mut s = e.to_string();
    if s.len() > MAX_ERROR_LEN {
        let mut end = MAX_ERROR_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    Error::Lookup(s)
}

/// What the driver has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Sequence number of each tree's last completed sync, by domain.
    pub synced: BTreeMap<String, u64>,
    /// Nodes sent to the channel.
    pub nodes: u64,
    /// Records or lookups rejected.
    pub errors: u64,
    /// The last rejection.
    pub last_error: Option<Error>,
}

/// A running driver; dropping it stops the task.
pub struct Handle {
    task: JoinHandle<()>,
    status: watch::Receiver<Status>,
}

impl Handle {
    /// Progress: trees synced, nodes sent, errors.
    pub fn status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Stops the driver.
    pub fn shutdown(&self) {
        self.task.abort();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs `client` on the current tokio runtime, resolving through `resolver`, and sends every
/// record with an IP and TCP port as a [`Node`] to `nodes`. The task ends when `nodes` is
/// closed or the [`Handle`] is dropped. Fails only if the system resolver configuration
/// cannot be read.
pub fn spawn(
    client: Client,
    resolver: &Resolver,
    nodes: mpsc::Sender<Node>,
) -> Result<Handle, Error> {
    let resolver = Arc::new(resolver.build()?);
    let (status_tx, status) = watch::channel(Status::default());
    let task = tokio::spawn(run(client, resolver, nodes, status_tx));
    Ok(Handle { task, status })
}

async fn lookup(
    resolver: Arc<TokioResolver>,
    name: String,
) -> (String, Result<Vec<String>, Error>) {
    // Fully qualified, so search domains are never appended.
    let answer = resolver.txt_lookup(format!("{name}.")).await.map(|l| {
        l.answers()
            .iter()
            .filter_map(|r| match &r.data {
                // A TXT record's strings (255 bytes each) form one text.
                RData::TXT(txt) => String::from_utf8(txt.txt_data.concat()).ok(),
                _ => None,
            })
            .collect()
    });
    (name, answer.map_err(lookup_error))
}

async fn run(
    mut client: Client,
    resolver: Arc<TokioResolver>,
    nodes: mpsc::Sender<Node>,
    status: watch::Sender<Status>,
) {
    let mut lookups = JoinSet::new();
    loop {
        let now = tokio::time::Instant::now().into_std();
        while let Some(name) = client.poll_query(now) {
            lookups.spawn(lookup(resolver.clone(), name));
        }
        while let Some(event) = client.poll_event() {
            match event {
                Event::Enr { domain, enr } => {
                    let Some(node) = enr.to_node().filter(|n| n.tcp != 0) else {
                        debug!(target: "dnsdisc", %domain, id = %enr.node_id(), "record without TCP endpoint");
                        continue;
                    };
                    if nodes.send(node).await.is_err() {
                        return;
                    }
                    status.send_modify(|s| s.nodes += 1);
                }
                Event::Synced { domain, seq } => {
                    info!(target: "dnsdisc", %domain, seq, "tree synced");
                    status.send_modify(|s| {
                        s.synced.insert(domain, seq);
                    });
                }
                Event::Error { domain, error } => {
                    debug!(target: "dnsdisc", %domain, %error, "tree error");
                    status.send_modify(|s| {
                        s.errors += 1;
                        s.last_error = Some(error);
                    });
                }
            }
        }
        let timeout = client.next_timeout().map(tokio::time::Instant::from_std);
        tokio::select! {
            Some(done) = lookups.join_next() => {
                if let Ok((name, answer)) = done {
                    client.on_answer(&name, answer, tokio::time::Instant::now().into_std());
                }
            }
            _ = async { tokio::time::sleep_until(timeout.unwrap_or_else(tokio::time::Instant::now)).await }, if timeout.is_some() => {}
            _ = nodes.closed() => return,
        }
    }
}
