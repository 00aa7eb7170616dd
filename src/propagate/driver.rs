//! The tokio task driving the propagation [`Core`]: it reads the eth events, carries out
//! the core's actions through [`eth::Handle`] and the chain [`Importer`], and feeds
//! answers, import results and timeouts back.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use alloy_consensus::Header;
use alloy_primitives::{B256, U256};
use protocols::eth::{self, PeerId, RequestError};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;

use super::core::{Action, Core, Failure, ImportResult, Local};
use super::{Gossip, Outcome, Verdict};
use crate::chain::importer::Accepted;
use crate::chain::{Block, Body, Importer, Store, store, validate};

/// The store as the core's read-only view of the local chain.
struct StoreView(Arc<Store>);

impl Local for StoreView {
    fn head_number(&self) -> u64 {
        match self.0.head() {
            Ok(h) => h.number,
            Err(e) => {
                tracing::warn!(target: "sync", error = %e, "cannot read the head");
                0
            }
        }
    }

    fn has_block(&self, hash: &B256) -> bool {
        // The stored bytes, not a decoded header: only presence matters.
        matches!(self.0.header_rlp(hash), Ok(Some(_)))
    }
}

type Shared = Arc<Mutex<Core<StoreView>>>;

fn lock(core: &Shared) -> MutexGuard<'_, Core<StoreView>> {
    core.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a [`Propagator`] asks of its task.
enum Command {
    /// Handle an eth event; answer once the imports it leads to are done.
    Event(eth::Event, oneshot::Sender<()>),
    /// Import a local block and what it unblocks.
    Local(Box<Block>, oneshot::Sender<Result<Outcome, store::Error>>),
}

/// What the fetch tasks report back.
enum Answer {
    Headers(PeerId, B256, Result<Vec<Header>, Failure>),
    Bodies(PeerId, B256, Result<Vec<Body>, Failure>),
}

/// The propagation component: a handle on the running task. Cheap to clone.
#[derive(Clone)]
pub struct Propagator {
    core: Shared,
    eth: eth::Handle,
    commands: mpsc::Sender<Command>,
}

impl Propagator {
    /// Runs the task handling the block events of `events` (the receiver from
    /// [`eth::Eth::new`], or any stream of its events; others are dropped), importing
    /// through `importer` and relaying through `eth`, taking blocks from peers as
    /// `gossip` allows. The task ends when `events` closes and every handle is dropped.
    pub fn spawn(
        eth: eth::Handle,
        importer: Importer,
        gossip: Gossip,
        events: mpsc::Receiver<eth::Event>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let core = Arc::new(Mutex::new(Core::new(
            StoreView(importer.store().clone()),
            gossip,
        )));
        // A few callers at a time: `import_local` and `on_event` wait for their answer.
        let (commands, rx) = mpsc::channel(16);
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let driver = Driver {
            core: core.clone(),
            eth: eth.clone(),
            importer,
            answers_tx,
            tasks: JoinSet::new(),
        };
        // Subscribed before the task starts: no block stored meanwhile goes unseen.
        let accepted = driver.importer.subscribe();
        let task = tokio::spawn(driver.run(events, rx, answers, accepted));
        (
            Self {
                core,
                eth,
                commands,
            },
            task,
        )
    }

    /// Adds `peer` to the sources of [`Gossip::From`] (no effect under
    /// [`Gossip::Refused`]).
    pub fn allow(&self, peer: PeerId) {
        lock(&self.core).allow(peer);
    }

    /// What the policy says of block gossip from `peer`.
    pub fn verdict(&self, peer: &PeerId) -> Verdict {
        lock(&self.core).verdict(peer)
    }

    /// Whether blocks are relayed at all (not under [`Gossip::Refused`]).
    pub fn relays(&self) -> bool {
        lock(&self.core).relays()
    }

    /// Applies the policy to a block event before it is queued for the propagator (the
    /// task applies it again): returns it when it is to be handled; a refused sender is
    /// disconnected here (in the background). Other events pass through.
    pub fn admit(&self, ev: eth::Event) -> Option<eth::Event> {
        let peer = match &ev {
            eth::Event::NewBlock { peer, .. } | eth::Event::NewBlockHashes { peer, .. } => *peer,
            _ => return Some(ev),
        };
        match self.verdict(&peer) {
            Verdict::Accept => Some(ev),
            Verdict::Ignore => None,
            Verdict::Disconnect => {
                let eth = self.eth.clone();
                tokio::spawn(async move {
                    let _ = eth
                        .disconnect(&peer, rlpx::DisconnectReason::SubprotocolError)
                        .await;
                });
                None
            }
        }
    }

    /// How many NewBlock messages carrying `hash` were accepted.
    pub fn full_blocks_received(&self, hash: &B256) -> u32 {
        lock(&self.core).full_blocks_received(hash)
    }

    /// Announced blocks being fetched.
    pub fn fetching(&self) -> usize {
        lock(&self.core).fetching()
    }

    /// Blocks waiting for their parent.
    pub fn queued(&self) -> usize {
        lock(&self.core).queued()
    }

    /// Estimated memory of the blocks waiting for their parent ([`super::block_memory`]).
    pub fn queued_bytes(&self) -> usize {
        lock(&self.core).queued_bytes()
    }

    /// Handles one eth event as if it came from the stream: a NewBlock is imported (or
    /// queued) before this returns; announcements start fetches that go on in the
    /// background.
    pub async fn on_event(&self, ev: eth::Event) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Event(ev, tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Imports and propagates a block the node produced or replayed. Queued blocks
    /// waiting for it are imported after it, before this returns.
    pub async fn import_local(&self, block: Block) -> Result<Outcome, store::Error> {
        let (tx, rx) = oneshot::channel();
        let stopped = || store::Error::Corrupt("the propagation task stopped");
        self.commands
            .send(Command::Local(Box::new(block), tx))
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

struct Driver {
    core: Shared,
    eth: eth::Handle,
    importer: Importer,
    answers_tx: mpsc::UnboundedSender<Answer>,
    tasks: JoinSet<()>,
}

impl Driver {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<eth::Event>,
        mut commands: mpsc::Receiver<Command>,
        mut answers: mpsc::UnboundedReceiver<Answer>,
        mut accepted: broadcast::Receiver<Accepted>,
    ) {
        let (mut events_open, mut commands_open, mut accepted_open) = (true, true, true);
        while events_open || commands_open {
            self.drain().await;
            let deadline = lock(&self.core).next_timeout();
            tokio::select! {
                ev = events.recv(), if events_open => match ev {
                    Some(ev) => self.on_event(ev),
                    None => events_open = false,
                },
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(Command::Event(ev, done)) => {
                        self.on_event(ev);
                        self.drain().await;
                        let _ = done.send(());
                    }
                    Some(Command::Local(block, done)) => {
                        let r = self.import_local(*block).await;
                        let _ = done.send(r);
                    }
                    None => commands_open = false,
                },
                // Blocks stored by anyone (sync, RPC, our own imports): queued children
                // follow them and fetches for them end. Our own are reported twice,
                // which changes nothing. A lag loses some: their orphans then wait for
                // the next announcement or are pruned as the head passes them.
                a = accepted.recv(), if accepted_open => match a {
                    Ok(a) => lock(&self.core).on_imported(
                        a.from,
                        a.hash,
                        a.block.header.number,
                        ImportResult::Known,
                        Instant::now(),
                    ),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(target: "sync", missed = n, "accepted-block events missed");
                    }
                    Err(broadcast::error::RecvError::Closed) => accepted_open = false,
                },
                Some(answer) = answers.recv() => {
                    let now = Instant::now();
                    let mut core = lock(&self.core);
                    match answer {
                        Answer::Headers(peer, hash, r) => core.on_headers(peer, hash, r, now),
                        Answer::Bodies(peer, hash, r) => core.on_bodies(peer, hash, r, now),
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    lock(&self.core).handle_timeout(Instant::now());
                }
                Some(_) = self.tasks.join_next(), if !self.tasks.is_empty() => {}
            }
        }
        self.tasks.abort_all();
    }

    fn on_event(&mut self, ev: eth::Event) {
        let now = Instant::now();
        let mut core = lock(&self.core);
        match ev {
            eth::Event::NewBlock {
                peer, block, held, ..
            } => core.on_block(peer, *block, held, now),
            eth::Event::NewBlockHashes { peer, hashes } => {
                for (hash, number) in hashes {
                    core.on_announcement(peer, hash, number, now);
                }
            }
            _ => {}
        }
    }

    /// Carries out the core's actions until it has none: imports one at a time, in
    /// order, each reported before the next is asked for.
    async fn drain(&mut self) {
        loop {
            let Some(action) = lock(&self.core).poll_action() else {
                return;
            };
            match action {
                Action::Import { from, hash, block } => {
                    let number = block.header.number;
                    let result = match self.import(from, *block).await {
                        Ok(r) => r,
                        Err(e) => failed(e, number, hash),
                    };
                    lock(&self.core).on_imported(from, hash, number, result, Instant::now());
                }
                Action::Relay {
                    block,
                    hash,
                    except,
                } => relay(&self.eth, self.importer.store(), &block, hash, except),
                Action::Penalise { peer, reason } => {
                    let eth = self.eth.clone();
                    self.tasks.spawn(async move {
                        let _ = eth.disconnect(&peer, reason).await;
                    });
                }
                Action::FetchHeaders { peer, hash, req } => {
                    let (eth, tx) = (self.eth.clone(), self.answers_tx.clone());
                    self.tasks.spawn(async move {
                        let r = eth.request_headers(&peer, req).await.map_err(failure);
                        let _ = tx.send(Answer::Headers(peer, hash, r));
                    });
                }
                Action::FetchBodies { peer, hash, hashes } => {
                    let (eth, tx) = (self.eth.clone(), self.answers_tx.clone());
                    self.tasks.spawn(async move {
                        let r = eth.request_bodies(&peer, hashes).await.map_err(failure);
                        let _ = tx.send(Answer::Bodies(peer, hash, r));
                    });
                }
            }
        }
    }

    /// Imports one block through the [`Importer`] (validated and stored off the runtime,
    /// its transactions dropped from the pool).
    async fn import(
        &self,
        from: Option<PeerId>,
        block: Block,
    ) -> Result<ImportResult, store::Error> {
        let imported = self.importer.import(vec![block], from).await;
        let inserted = imported.result?;
        Ok(match imported.accepted.into_iter().next() {
            Some(block) if inserted.imported == 1 => ImportResult::Stored(block),
            _ => ImportResult::Known,
        })
    }

    /// A block the node produced or replayed: imported if its parent is stored, then
    /// relayed and followed by the queued blocks waiting for it.
    async fn import_local(&mut self, block: Block) -> Result<Outcome, store::Error> {
        let store = self.importer.store();
        let (number, hash) = (block.header.number, block.header.hash_slow());
        if store.header_rlp(&hash)?.is_some() {
            return Ok(Outcome::Known);
        }
        if store.header_rlp(&block.header.parent_hash)?.is_none() {
            return Ok(Outcome::UnknownParent);
        }
        let result = self.import(None, block).await;
        let reported = match &result {
            Ok(r) => r.clone(),
            Err(e) => failed_ref(e),
        };
        lock(&self.core).on_imported(None, hash, number, reported, Instant::now());
        self.drain().await;
        Ok(match result? {
            ImportResult::Stored(_) => Outcome::Imported,
            _ => Outcome::Known,
        })
    }
}

/// What the core is told of a failed import.
fn failed(e: store::Error, number: u64, hash: B256) -> ImportResult {
    match &e {
        store::Error::BadBlock { reason, .. } => {
            tracing::debug!(target: "sync", number, %hash, %reason, "bad propagated block");
        }
        _ => tracing::warn!(target: "sync", number, error = %e, "block import failed"),
    }
    failed_ref(&e)
}

fn failed_ref(e: &store::Error) -> ImportResult {
    match e {
        // The parent vanished between the check and the import (not the sender's fault).
        store::Error::BadBlock {
            reason: validate::Error::UnknownParent(_),
            ..
        } => ImportResult::Failed,
        store::Error::BadBlock { reason, .. } => ImportResult::Bad {
            permanent: reason.is_permanent(),
        },
        _ => ImportResult::Failed,
    }
}

fn failure(e: RequestError) -> Failure {
    match e {
        RequestError::Timeout => Failure::Timeout,
        _ => Failure::Gone,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// Sends a stored block on: in full (NewBlock) to √n random eth/68 peers that are not
/// known to have it, by hash to the other peers that lack it, never back to `except`
/// ([`eth::Handle::broadcast_block`]).
fn relay(eth: &eth::Handle, store: &Store, block: &Block, hash: B256, except: Option<PeerId>) {
    let td = store
        .total_difficulty(&hash)
        .ok()
        .flatten()
        .unwrap_or(U256::ZERO);
    // eth's fan-out: NewBlock in full to sqrt(n) eth/68 peers, hashes to the rest.
    let (full, announced) = eth.broadcast_block(block, td, except);
    tracing::debug!(target: "sync", number = block.header.number, %hash, full, announced, "block propagated");
}
