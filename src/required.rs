//! Required blocks (`--required-blocks`, go-ethereum's `--eth.requiredblocks`): the operator
//! pins blocks every chain we accept must contain. The store refuses a block that
//! contradicts one ([`crate::chain::Spec::required_blocks`]); here each new eth peer is
//! asked for the pinned headers once it connects and dropped if it disagrees, so a peer on
//! another fork never becomes a sync source.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy_primitives::B256;
use protocols::eth::{self, BlockId, GetBlockHeaders, PeerId};

/// How long a peer has to answer the challenge (go-ethereum's `syncChallengeTimeout`).
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// Why a peer failed the challenge.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// It has another block at a pinned height: disconnected with `UselessPeer`.
    #[error("block {number} is {got}, not the required {expected}")]
    Mismatch {
        /// The height.
        number: u64,
        /// The required hash.
        expected: B256,
        /// The peer's hash.
        got: B256,
    },
    /// It did not answer within [`TIMEOUT`]: disconnected with `UselessPeer`.
    #[error("no answer to the required-block challenge")]
    Timeout,
}

/// Asks `peer` for each required header. A peer that does not have the height yet (an
/// empty answer: it may be syncing) passes, as in go-ethereum; one that has another block
/// there, or does not answer, fails. A peer that left meanwhile passes (nothing to do).
pub async fn check(
    eth: &eth::Handle,
    peer: &PeerId,
    required: &BTreeMap<u64, B256>,
) -> Result<(), Error> {
    for (&number, &expected) in required {
        let req = GetBlockHeaders {
            origin: BlockId::Number(number),
            amount: 1,
            skip: 0,
            reverse: false,
        };
        let answer = tokio::time::timeout(TIMEOUT, eth.request_headers(peer, req)).await;
        let headers = match answer {
            Err(_) | Ok(Err(eth::RequestError::Timeout)) => return Err(Error::Timeout),
            Ok(Err(_)) => return Ok(()),
            Ok(Ok(headers)) => headers,
        };
        let Some(header) = headers.first() else {
            continue;
        };
        let got = header.hash_slow();
        if header.number != number || got != expected {
            return Err(Error::Mismatch {
                number,
                expected,
                got,
            });
        }
    }
    Ok(())
}

/// Runs [`check`] in the background and disconnects `peer` with `UselessPeer` if it fails.
pub fn spawn_check(eth: eth::Handle, peer: PeerId, required: BTreeMap<u64, B256>) {
    if required.is_empty() {
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = check(&eth, &peer, &required).await {
            tracing::debug!(target: "sync", peer = %rlpx::peer::short_id(&peer), error = %e, "required-block check failed");
            let _ = eth
                .disconnect(&peer, rlpx::DisconnectReason::UselessPeer)
                .await;
        }
    });
}

/// Challenges every eth peer that completes the Status handshake from now on (see
/// [`spawn_check`]); `None` if nothing is pinned. Subscribed to the peer table; after a
/// lag (thousands of joins and departures at once) it challenges the peers in the table
/// it has not challenged yet, not every peer again: a lag must not cost a request per peer.
/// (A peer that left and came back within the lag keeps its earlier verdict; the store
/// refuses a contradicting chain regardless.)
pub fn spawn_watch(
    eth: eth::Handle,
    required: BTreeMap<u64, B256>,
) -> Option<tokio::task::JoinHandle<()>> {
    use tokio::sync::broadcast::error::RecvError;
    if required.is_empty() {
        return None;
    }
    let mut events = eth.subscribe();
    // The peers challenged and still in the table (bounded by the table's size).
    let mut challenged = std::collections::HashSet::new();
    Some(tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(eth::PeerEvent::Joined(p)) => {
                    challenged.insert(p.id);
                    spawn_check(eth.clone(), p.id, required.clone());
                }
                Ok(eth::PeerEvent::Left(id)) => {
                    challenged.remove(&id);
                }
                Ok(eth::PeerEvent::Updated(_)) => {}
                Err(RecvError::Lagged(_)) => {
                    let now: std::collections::HashSet<PeerId> =
                        eth.peers().into_iter().map(|p| p.id).collect();
                    challenged.retain(|id| now.contains(id));
                    for id in now {
                        if challenged.insert(id) {
                            spawn_check(eth.clone(), id, required.clone());
                        }
                    }
                }
                Err(RecvError::Closed) => break,
            }
        }
    }))
}

/// Parses `N=HASH,N=HASH` (the `--required-blocks` syntax).
pub fn parse(s: &str) -> Result<BTreeMap<u64, B256>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (n, h) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:.80}: expected NUMBER=HASH"))?;
        let n: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("{n:.30}: not a block number"))?;
        let h: B256 = h
            .trim()
            .parse()
            .map_err(|_| format!("{h:.80}: not a 32-byte hex hash"))?;
        if out.insert(n, h).is_some() {
            return Err(format!("block {n} given twice"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pins() {
        let h = B256::repeat_byte(0xab);
        let m = parse(&format!("10={h}, 20={h}")).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[&10], h);
        assert!(parse("10").is_err());
        assert!(parse("x=0x00").is_err());
        assert!(parse("1=0x1234").is_err());
        assert!(parse(&format!("1={h},1={h}")).is_err());
        assert!(parse("").unwrap().is_empty());
    }
}
