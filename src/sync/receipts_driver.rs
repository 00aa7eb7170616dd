//! The tokio task driving the receipts [`Fetcher`]: it hears of every block the
//! [`Importer`] accepts and of the eth peers, asks peers for receipts through
//! [`eth::Handle::request_receipts`], and stores them through
//! [`crate::chain::Store::insert_receipts`] on a blocking thread (each list is hashed
//! into its receipts root there, and the commit fsyncs).

use std::time::Duration;

use alloy_primitives::B256;
use protocols::eth::{self, PeerEvent, RequestError};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::receipts::{Action, Failure, Fetcher, RequestId};
use crate::chain::Importer;
use crate::chain::store::ReceiptsError;

/// What the request and store tasks report back.
enum Msg {
    Answer(RequestId, Result<eth::receipts::Answer, Failure>),
    Stored(eth::PeerId, Vec<B256>, Result<(), B256>),
    /// Canonical blocks lacking receipts, found after missed import events.
    Missing(Vec<B256>),
    None,
}

/// Starts fetching the receipts of the blocks `importer` accepts from the peers behind
/// `eth`; requests time out after `timeout`. Abort the task to stop it.
pub(super) fn spawn(
    eth: eth::Handle,
    importer: Importer,
    timeout: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(eth, importer, timeout))
}

async fn run(eth: eth::Handle, importer: Importer, timeout: Duration) {
    let mut f = Fetcher::new(timeout);
    let mut accepted = importer.subscribe();
    let mut events = eth.subscribe();
    let now = Instant::now().into_std();
    for p in eth.peers() {
        f.peer_joined(p.id, now);
    }
    let mut tasks: JoinSet<Msg> = JoinSet::new();
    // The highest block number heard of, to know where missed events begin.
    let mut last = 0u64;
    loop {
        while let Some(action) = f.poll_action() {
            execute(action, &eth, &importer, &mut tasks);
        }
        let deadline = f.next_timeout().map(Instant::from_std);
        tokio::select! {
            a = accepted.recv() => {
                let now = Instant::now().into_std();
                match a {
                    Ok(a) => {
                        last = last.max(a.block.header.number);
                        f.on_accepted(a.hash, !a.block.body.transactions.is_empty(), now)
                    }
                    // A sync imports faster than the backlog holds: the canonical blocks
                    // since the last one heard of are read from the store instead.
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(target: "sync", missed, "receipts fetcher missed imported blocks; scanning the store");
                        let store = importer.store().clone();
                        let from = last.saturating_add(1);
                        tasks.spawn(async move {
                            let scan = move || missing_since(&store, from);
                            Msg::Missing(tokio::task::spawn_blocking(scan).await.unwrap_or_default())
                        });
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            e = events.recv() => {
                let now = Instant::now().into_std();
                match e {
                    Ok(PeerEvent::Joined(p)) => f.peer_joined(p.id, now),
                    Ok(PeerEvent::Left(id)) => f.peer_left(&id, now),
                    Ok(PeerEvent::Updated(_)) => {}
                    Err(RecvError::Lagged(_)) => {
                        for p in eth.peers() {
                            f.peer_joined(p.id, now);
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let now = Instant::now().into_std();
                match done {
                    Ok(Msg::Answer(id, r)) => f.on_answer(id, r, now),
                    Ok(Msg::Stored(peer, hashes, r)) => f.on_stored(peer, &hashes, r, now),
                    Ok(Msg::Missing(hashes)) => {
                        for h in hashes {
                            f.on_accepted(h, true, now);
                        }
                    }
                    Ok(Msg::None) | Err(_) => {}
                }
            }
            _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                f.handle_timeout(Instant::now().into_std());
            }
        }
    }
    tasks.abort_all();
}

/// The canonical blocks from `from` to the head whose receipts are unavailable (at most
/// [`super::receipts::MAX_QUEUE`], the most the fetcher holds).
fn missing_since(store: &crate::chain::Store, from: u64) -> Vec<B256> {
    let head = match store.head() {
        Ok(h) => h.number,
        Err(_) => return Vec::new(),
    };
    let cap = super::receipts::MAX_QUEUE as u64;
    let from = from.max(head.saturating_sub(cap));
    let hashes: Vec<B256> = (from..=head)
        .filter_map(|n| store.canonical_hash(n).ok().flatten())
        .collect();
    store.missing_receipts(&hashes).unwrap_or_default()
}

fn execute(action: Action, eth: &eth::Handle, importer: &Importer, tasks: &mut JoinSet<Msg>) {
    let eth = eth.clone();
    match action {
        Action::Request {
            id,
            peer,
            hashes,
            first_index,
        } => {
            tasks.spawn(async move {
                let r = eth.request_receipts(&peer, hashes, first_index).await;
                Msg::Answer(
                    id,
                    r.map_err(|e| match e {
                        RequestError::Timeout => Failure::Timeout,
                        _ => Failure::Gone,
                    }),
                )
            });
        }
        Action::Store { peer, lists } => {
            let store = importer.store().clone();
            tasks.spawn(async move {
                let hashes: Vec<B256> = lists.iter().map(|(h, _)| *h).collect();
                let job = tokio::task::spawn_blocking(move || store.insert_receipts(&lists));
                let r = match job.await {
                    Ok(Ok(Ok(_))) => Ok(()),
                    Ok(Ok(Err(ReceiptsError::Mismatch { hash, .. }))) => Err(hash),
                    // A block no longer stored (pruned side block): nothing to blame.
                    Ok(Ok(Err(ReceiptsError::UnknownBlock(_)))) => Ok(()),
                    Ok(Err(e)) => {
                        tracing::warn!(target: "sync", error = %e, "storing receipts failed");
                        Ok(())
                    }
                    Err(_) => Ok(()),
                };
                Msg::Stored(peer, hashes, r)
            });
        }
        Action::Penalise { peer } => {
            tasks.spawn(async move {
                let _ = eth
                    .disconnect(&peer, rlpx::DisconnectReason::BreachOfProtocol)
                    .await;
                Msg::None
            });
        }
    }
}
