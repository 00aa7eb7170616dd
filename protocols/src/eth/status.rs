//! The Status handshake, sans-IO: our Status for a version, and the checks on the peer's.
//!
//! Disconnect reasons, per case. A peer on another chain (or speaking another version) gets
//! `SubprotocolError` (0x10), as from go-ethereum, whose `eth/protocols/eth/handshake.go`
//! returns a plain error for every mismatch and whose p2p layer sends that as
//! `SubprotocolError`; matching it means a peer cannot tell our node from go-ethereum by
//! this, and conformance suites that check the reason pass. The server still holds such a
//! peer off for its ban time ([`Error::is_incompatible`]).
//!
//! | check | [`Error`] | reason |
//! |---|---|---|
//! | first message is not Status | [`Error::NotStatus`] | `BreachOfProtocol` |
//! | Status does not decode / too large | [`Error::Malformed`], [`Error::TooLarge`] | `BreachOfProtocol` |
//! | version differs from the negotiated one | [`Error::Version`] | `SubprotocolError` |
//! | network id / genesis hash differ | [`Error::Network`], [`Error::Genesis`] | `SubprotocolError` |
//! | fork id rejected (EIP-2124 rules) | [`Error::ForkId`] | `SubprotocolError` |
//! | eth/69 range with earliest > latest or zero hash | [`Error::Range`] | `BreachOfProtocol` |
//! | no Status within the timeout | [`Error::Timeout`] | `PingTimeout` (0x0b, go-ethereum `DiscReadTimeout`) |

use alloy_primitives::{B256, U256};
use rlpx::DisconnectReason;

use super::chain::Chain;
use super::forkid::{self, ForkId};
use super::messages::{self, ETH69, Status, Status68, Status69};

/// Why the Status exchange failed. [`Error::disconnect_reason`] gives the reason sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The peer's first message was not Status.
    #[error("first message has code {0:#04x}, not Status")]
    NotStatus(u8),
    /// The Status did not decode.
    #[error(transparent)]
    Malformed(#[from] messages::Error),
    /// The Status was over the eth message limit.
    #[error("status message of {0} bytes is too large")]
    TooLarge(usize),
    /// The announced version is not the negotiated one.
    #[error("status announces eth/{theirs}, negotiated eth/{ours}")]
    Version {
        /// Negotiated version.
        ours: u32,
        /// Announced version.
        theirs: u32,
    },
    /// Another network.
    #[error("network id {theirs} differs from ours ({ours})")]
    Network {
        /// Our network id.
        ours: u64,
        /// Theirs.
        theirs: u64,
    },
    /// Another genesis.
    #[error("genesis {theirs} differs from ours ({ours})")]
    Genesis {
        /// Our genesis hash.
        ours: B256,
        /// Theirs.
        theirs: B256,
    },
    /// The fork id was rejected.
    #[error("fork id rejected: {0}")]
    ForkId(#[from] forkid::Error),
    /// The eth/69 block range is invalid.
    #[error("invalid block range in status")]
    Range,
    /// No Status arrived in time.
    #[error("no status within the handshake timeout")]
    Timeout,
}

impl Error {
    /// The reason the peer is disconnected with (see the module table).
    pub fn disconnect_reason(&self) -> DisconnectReason {
        match self {
            Error::NotStatus(_) | Error::Malformed(_) | Error::TooLarge(_) | Error::Range => {
                DisconnectReason::BreachOfProtocol
            }
            Error::Version { .. }
            | Error::Network { .. }
            | Error::Genesis { .. }
            | Error::ForkId(_) => DisconnectReason::SubprotocolError,
            Error::Timeout => DisconnectReason::PingTimeout,
        }
    }

    /// Whether the peer is on another chain (or runs incompatible software): redialling it
    /// soon is pointless.
    pub fn is_incompatible(&self) -> bool {
        matches!(
            self,
            Error::Version { .. }
                | Error::Network { .. }
                | Error::Genesis { .. }
                | Error::ForkId(_)
        )
    }
}

/// What a peer told us in its Status, after validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerStatus {
    /// Negotiated protocol version.
    pub version: u32,
    /// Their fork id.
    pub fork_id: ForkId,
    /// Their head (eth/68) or latest available block (eth/69) hash.
    pub head_hash: B256,
    /// Latest available block number (eth/69; eth/68 does not say).
    pub head_number: Option<u64>,
    /// Earliest available block (eth/69).
    pub earliest: Option<u64>,
    /// Head total difficulty (eth/68).
    pub total_difficulty: Option<U256>,
}

/// Our Status for `version`, from the chain's current head.
pub fn local(chain: &dyn Chain, version: u32) -> Status {
    let head = chain.head();
    let fork_id = chain.fork_filter().fork_id(head.number, head.timestamp);
    if version >= ETH69 {
        Status::V69(Status69 {
            version,
            network_id: chain.network_id(),
            genesis: chain.genesis_hash(),
            fork_id,
            earliest: chain.earliest().min(head.number),
            latest: head.number,
            latest_hash: head.hash,
        })
    } else {
        Status::V68(Status68 {
            version,
            network_id: chain.network_id(),
            total_difficulty: head.total_difficulty,
            head: head.hash,
            genesis: chain.genesis_hash(),
            fork_id,
        })
    }
}

/// Checks the peer's first message (`code`, `payload`) against our chain, for the
/// negotiated `version`. Checks run in go-ethereum's order: network, version, genesis,
/// fork id, then the eth/69 range.
pub fn validate(
    chain: &dyn Chain,
    version: u32,
    code: u8,
    payload: &[u8],
) -> Result<PeerStatus, Error> {
    if code != messages::code::STATUS {
        return Err(Error::NotStatus(code));
    }
    if payload.len() > messages::MAX_MESSAGE_SIZE {
        return Err(Error::TooLarge(payload.len()));
    }
    let status = match messages::Message::decode(version, code, payload)? {
        messages::Message::Status(s) => s,
        _ => return Err(Error::NotStatus(code)),
    };
    let ours = chain.network_id();
    if status.network_id() != ours {
        return Err(Error::Network {
            ours,
            theirs: status.network_id(),
        });
    }
    if status.version() != version {
        return Err(Error::Version {
            ours: version,
            theirs: status.version(),
        });
    }
    let genesis = chain.genesis_hash();
    if status.genesis() != genesis {
        return Err(Error::Genesis {
            ours: genesis,
            theirs: status.genesis(),
        });
    }
    let head = chain.head();
    chain
        .fork_filter()
        .validate(status.fork_id(), head.number, head.timestamp)?;
    let mut peer = PeerStatus {
        version,
        fork_id: status.fork_id(),
        head_hash: status.head_hash(),
        head_number: None,
        earliest: None,
        total_difficulty: None,
    };
    match status {
        Status::V68(s) => peer.total_difficulty = Some(s.total_difficulty),
        Status::V69(s) => {
            let range = messages::BlockRangeUpdate {
                earliest: s.earliest,
                latest: s.latest,
                latest_hash: s.latest_hash,
            };
            if !range.is_valid() {
                return Err(Error::Range);
            }
            peer.head_number = Some(s.latest);
            peer.earliest = Some(s.earliest);
        }
    }
    Ok(peer)
}
