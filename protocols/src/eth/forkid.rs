//! Fork identifiers: [EIP-2124] with the timestamp-based forks of [EIP-6122].
//!
//! A fork id is `(FORK_HASH, FORK_NEXT)`: `FORK_HASH` is the IEEE CRC32 of the genesis hash
//! followed by every fork activation the node has passed, each as 8 big-endian bytes;
//! `FORK_NEXT` is the next scheduled activation (a block number or, after the merge, a unix
//! time), or 0 when none is known. Peers exchange it in the `eth` Status message and in the
//! `eth` ENR entry, and drop each other when their chains are incompatible.
//!
//! Block-numbered forks come first, then timestamp forks (EIP-6122); duplicates are merged,
//! forks at block 0 and time forks at or before the genesis time are not counted.
//!
//! [EIP-2124]: https://eips.ethereum.org/EIPS/eip-2124
//! [EIP-6122]: https://eips.ethereum.org/EIPS/eip-6122
//!
//! ```
//! use protocols::eth::forkid::{Filter, ForkId};
//!
//! // Mainnet until Homestead (EIP-2124 test vectors).
//! let genesis = [
//!     0xd4, 0xe5, 0x67, 0x40, 0xf8, 0x76, 0xae, 0xf8, 0xc0, 0x10, 0xb8, 0x6a, 0x40, 0xd5, 0xf5,
//!     0x67, 0x45, 0xa1, 0x18, 0xd0, 0x90, 0x6a, 0x34, 0xe6, 0x9a, 0xec, 0x8c, 0x0d, 0xb1, 0xcb,
//!     0x8f, 0xa3,
//! ];
//! let filter = Filter::new(genesis.into(), 0, [1_150_000], []);
//! assert_eq!(filter.fork_id(0, 0), ForkId { hash: [0xfc, 0x64, 0xec, 0x04], next: 1_150_000 });
//! assert!(filter.validate(ForkId { hash: [0xfc, 0x64, 0xec, 0x04], next: 1_150_000 }, 0, 0).is_ok());
//! ```

use alloy_primitives::B256;
use alloy_rlp::{RlpDecodable, RlpEncodable};

/// The Ethereum mainnet genesis timestamp (2015-07-30). A remote `FORK_NEXT` above it is a
/// timestamp, below it a block number: go-ethereum uses the same threshold to decide which
/// head value to compare a remote's announced next fork with (EIP-6122 leaves this open).
pub const TIMESTAMP_THRESHOLD: u64 = 1_438_269_973;

/// A fork identifier (EIP-2124), RLP-encoded as `[hash: B4, next: u64]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, RlpEncodable, RlpDecodable)]
pub struct ForkId {
    /// CRC32 (IEEE) checksum of the genesis hash and the passed fork activations.
    pub hash: [u8; 4],
    /// The next scheduled fork activation (block number or timestamp), 0 if none is known.
    pub next: u64,
}

/// Why a remote fork id was rejected (EIP-2124 validation rules). Either way the peer is
/// disconnected with `DisconnectReason::SubprotocolError` by the `eth` protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Rule 3: the remote is on a fork we passed, and does not know about our next fork:
    /// it needs a software update.
    #[error("remote fork id is stale: the peer does not know about a fork we already passed")]
    RemoteStale,
    /// Rule 4: the remote hash matches none of our past or future forks, or it announces a
    /// next fork we have already passed without it: the chains are incompatible, or we need
    /// a software update.
    #[error("remote fork id is incompatible with our chain, or our software is stale")]
    LocalIncompatibleOrStale,
}

/// The fork schedule of a chain, with the checksums after each fork precomputed: computes the
/// local [`ForkId`] for a head and validates remote ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// Block-numbered forks after genesis, sorted and deduplicated.
    by_block: Vec<u64>,
    /// Timestamp forks after the genesis time, sorted and deduplicated.
    by_time: Vec<u64>,
    /// `sums[i]` is the checksum after the first `i` forks (`sums[0]` covers the genesis only).
    sums: Vec<[u8; 4]>,
}

impl Filter {
    /// Builds the filter of a chain from its genesis hash and time and its fork activations
    /// (in any order, with duplicates and forks at genesis allowed: they are dropped).
    pub fn new(
        genesis_hash: B256,
        genesis_time: u64,
        blocks: impl IntoIterator<Item = u64>,
        times: impl IntoIterator<Item = u64>,
    ) -> Self {
        let mut by_block: Vec<u64> = blocks.into_iter().filter(|&b| b != 0).collect();
        by_block.sort_unstable();
        by_block.dedup();
        let mut by_time: Vec<u64> = times.into_iter().filter(|&t| t > genesis_time).collect();
        by_time.sort_unstable();
        by_time.dedup();

        let mut hasher = crc32fast::Hasher::new();
        hasher.update(genesis_hash.as_slice());
        let mut sums = Vec::with_capacity(by_block.len() + by_time.len() + 1);
        sums.push(hasher.clone().finalize().to_be_bytes());
        for fork in by_block.iter().chain(&by_time) {
            hasher.update(&fork.to_be_bytes());
            sums.push(hasher.clone().finalize().to_be_bytes());
        }
        Self {
            by_block,
            by_time,
            sums,
        }
    }

    /// The block-numbered forks counted in the fork hash, sorted.
    pub fn block_forks(&self) -> &[u64] {
        &self.by_block
    }

    /// The timestamp forks counted in the fork hash, sorted.
    pub fn time_forks(&self) -> &[u64] {
        &self.by_time
    }

    /// All forks in checksum order (blocks, then times) paired with their "passed" test.
    fn forks(&self) -> impl Iterator<Item = (u64, bool)> + '_ {
        let blocks = self.by_block.iter().map(|&f| (f, false));
        blocks.chain(self.by_time.iter().map(|&f| (f, true)))
    }

    /// The local fork id at a head block number and timestamp.
    pub fn fork_id(&self, head_number: u64, head_time: u64) -> ForkId {
        let mut passed = 0;
        for (fork, is_time) in self.forks() {
            let head = if is_time { head_time } else { head_number };
            if fork > head {
                return ForkId {
                    hash: self.sum(passed),
                    next: fork,
                };
            }
            passed += 1;
        }
        ForkId {
            hash: self.sum(passed),
            next: 0,
        }
    }

    /// The checksum after `passed` forks (`sums` always holds `forks + 1` entries).
    fn sum(&self, passed: usize) -> [u8; 4] {
        self.sums.get(passed).copied().unwrap_or_default()
    }

    /// Validates a remote fork id against our chain at the given head (EIP-2124 rules, with
    /// EIP-6122 timestamps).
    pub fn validate(&self, remote: ForkId, head_number: u64, head_time: u64) -> Result<(), Error> {
        // Find the first fork we have not passed: `i` forks are behind us. A final virtual fork
        // that is never passed makes the loop always reach a decision.
        let mut passed = 0;
        for (fork, is_time) in self.forks() {
            let head = if is_time { head_time } else { head_number };
            if head < fork {
                break;
            }
            passed += 1;
        }
        let local = self.sum(passed);

        // Rule 1: same fork hash. Reject only if the remote announces a next fork that our
        // head has already passed (without us having it).
        if remote.hash == local {
            let next_passed = remote.next > 0
                && (head_number >= remote.next
                    || (remote.next > TIMESTAMP_THRESHOLD && head_time >= remote.next));
            return if next_passed {
                Err(Error::LocalIncompatibleOrStale)
            } else {
                Ok(())
            };
        }
        // Rule 2: the remote hash is one of our past forks; its next fork must be the one
        // that followed it for us, otherwise the remote is stale.
        let forks: Vec<u64> = self.forks().map(|(f, _)| f).collect();
        if let Some(j) = self
            .sums
            .iter()
            .take(passed)
            .position(|s| *s == remote.hash)
        {
            return match forks.get(j) {
                Some(&next) if next == remote.next => Ok(()),
                _ => Err(Error::RemoteStale),
            };
        }
        // Rule 3: the remote hash is one of our future forks: we are behind, accept.
        if self.sums.iter().skip(passed + 1).any(|s| *s == remote.hash) {
            return Ok(());
        }
        // Rule 4: anything else.
        Err(Error::LocalIncompatibleOrStale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::b256;

    const MAINNET: B256 = b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3");
    const SEPOLIA: B256 = b256!("25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9");
    const HOLESKY: B256 = b256!("b5f7f912443c940f21fd611f12828d75b534364ed9e95ca4e307729a4661bde4");
    const HOODI: B256 = b256!("bbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b");

    /// Mainnet block forks as go-ethereum's `params.MainnetChainConfig` lists them (Homestead,
    /// DAO, EIP-150, EIP-155, EIP-158, Byzantium, Constantinople, Petersburg, Istanbul,
    /// Muir Glacier, Berlin, London, Arrow Glacier, Gray Glacier).
    const MAINNET_BLOCKS: [u64; 15] = [
        1_150_000, 1_920_000, 2_463_000, 2_675_000, 2_675_000, 4_370_000, 7_280_000, 7_280_000,
        9_069_000, 9_200_000, 12_244_000, 12_965_000, 13_773_000, 15_050_000, 0,
    ];
    /// Shanghai, Cancun, Prague, Osaka, BPO1, BPO2.
    const MAINNET_TIMES: [u64; 6] = [
        1681338455, 1710338135, 1746612311, 1764798551, 1765290071, 1767747671,
    ];

    fn mainnet() -> Filter {
        Filter::new(MAINNET, 0, MAINNET_BLOCKS, MAINNET_TIMES)
    }

    fn legacy_mainnet() -> Filter {
        Filter::new(MAINNET, 0, MAINNET_BLOCKS, [])
    }

    fn id(hash: u32, next: u64) -> ForkId {
        ForkId {
            hash: hash.to_be_bytes(),
            next,
        }
    }

    /// CRC32 of `hash`'s state extended with one more fork, as go-ethereum's `checksumUpdate`.
    fn update(hash: u32, fork: u64) -> u32 {
        let mut h = crc32fast::Hasher::new_with_initial(hash);
        h.update(&fork.to_be_bytes());
        h.finalize()
    }

    fn check(filter: &Filter, cases: &[(u64, u64, u32, u64)]) {
        for &(head, time, hash, next) in cases {
            assert_eq!(
                filter.fork_id(head, time),
                id(hash, next),
                "head {head} time {time}"
            );
        }
    }

    #[test]
    fn eip2124_mainnet_block_forks() {
        // The EIP-2124 table (Frontier to Petersburg) and go-ethereum's continuation.
        let f = legacy_mainnet();
        check(
            &f,
            &[
                (0, 0, 0xfc64ec04, 1150000),
                (1149999, 0, 0xfc64ec04, 1150000),
                (1150000, 0, 0x97c2c34c, 1920000),
                (1919999, 0, 0x97c2c34c, 1920000),
                (1920000, 0, 0x91d1f948, 2463000),
                (2462999, 0, 0x91d1f948, 2463000),
                (2463000, 0, 0x7a64da13, 2675000),
                (2674999, 0, 0x7a64da13, 2675000),
                (2675000, 0, 0x3edd5b10, 4370000),
                (4369999, 0, 0x3edd5b10, 4370000),
                (4370000, 0, 0xa00bc324, 7280000),
                (7279999, 0, 0xa00bc324, 7280000),
                (7280000, 0, 0x668db0af, 9069000),
                (9068999, 0, 0x668db0af, 9069000),
                (9069000, 0, 0x879d6e30, 9200000),
                (9200000, 0, 0xe029e991, 12244000),
                (12244000, 0, 0x0eb440f6, 12965000),
                (12965000, 0, 0xb715077d, 13773000),
                (13773000, 0, 0x20c327fc, 15050000),
                (15050000, 0, 0xf0afd0e3, 0),
                (20000000, 0, 0xf0afd0e3, 0),
            ],
        );
    }

    /// The EIP-2124 text's own tables: mainnet as scheduled when the EIP was written
    /// (Petersburg is the last fork).
    #[test]
    fn eip2124_spec_tables() {
        let blocks = [1150000, 1920000, 2463000, 2675000, 4370000, 7280000];
        let f = Filter::new(MAINNET, 0, blocks, []);
        check(
            &f,
            &[
                (0, 0, 0xfc64ec04, 1150000),
                (1150000, 0, 0x97c2c34c, 1920000),
                (1920000, 0, 0x91d1f948, 2463000),
                (2463000, 0, 0x7a64da13, 2675000),
                (2675000, 0, 0x3edd5b10, 4370000),
                (4370000, 0, 0xa00bc324, 7280000),
                (7279999, 0, 0xa00bc324, 7280000),
                (7280000, 0, 0x668db0af, 0),
                (7987396, 0, 0x668db0af, 0),
            ],
        );
        use Error::*;
        let cases: &[(u64, ForkId, Result<(), Error>)] = &[
            (7987396, id(0x668db0af, 0), Ok(())),
            (7987396, id(0x668db0af, u64::MAX), Ok(())),
            (7279999, id(0xa00bc324, 0), Ok(())),
            (7279999, id(0xa00bc324, 7280000), Ok(())),
            (7279999, id(0xa00bc324, u64::MAX), Ok(())),
            (7987396, id(0xa00bc324, 7280000), Ok(())),
            (7987396, id(0x3edd5b10, 4370000), Ok(())),
            (7279999, id(0x668db0af, 0), Ok(())),
            (4369999, id(0xa00bc324, 0), Ok(())),
            (7987396, id(0xa00bc324, 0), Err(RemoteStale)),
            (7987396, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7279999, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7987396, id(0xafec6b27, 0), Err(LocalIncompatibleOrStale)),
            (
                88888888,
                id(0x668db0af, 88888888),
                Err(LocalIncompatibleOrStale),
            ),
            (
                7279999,
                id(0xa00bc324, 7279999),
                Err(LocalIncompatibleOrStale),
            ),
        ];
        for (head, remote, want) in cases {
            assert_eq!(
                f.validate(*remote, *head, 0),
                *want,
                "head {head} remote {remote:?}"
            );
        }
    }

    #[test]
    fn mainnet_time_forks() {
        check(
            &mainnet(),
            &[
                (15050000, 0, 0xf0afd0e3, 1681338455),
                (20000000, 1681338454, 0xf0afd0e3, 1681338455),
                (20000000, 1681338455, 0xdce96c2d, 1710338135), // Shanghai
                (30000000, 1710338134, 0xdce96c2d, 1710338135),
                (30000000, 1710338135, 0x9f3d2254, 1746612311), // Cancun
                (30000000, 1746612311, 0xc376cf8b, 1764798551), // Prague
                (30000000, 1764798550, 0xc376cf8b, 1764798551),
                (30000000, 1764798551, 0x5167e2a6, 1765290071), // Osaka
                (30000000, 1765290071, 0xcba2a1c0, 1767747671), // BPO1
                (30000000, 1767747671, 0x07c9462e, 0),          // BPO2
                (50000000, 2000000000, 0x07c9462e, 0),
            ],
        );
    }

    #[test]
    fn testnet_fork_ids() {
        let sepolia_times = [
            1677557088, 1706655072, 1741159776, 1760427360, 1761017184, 1761607008,
        ];
        let sepolia = Filter::new(SEPOLIA, 1633267481, [0, 0, 1735371], sepolia_times);
        check(
            &sepolia,
            &[
                (0, 0, 0xfe3366e7, 1735371),
                (1735371, 0, 0xb96cbd13, 1677557088),
                (1735372, 1677557088, 0xf7f9bc08, 1706655072), // Shanghai
                (1735372, 1706655072, 0x88cf81d9, 1741159776), // Cancun
                (1735372, 1741159776, 0xed88b5fd, 1760427360), // Prague
                (1735372, 1760427360, 0xe2ae4999, 1761017184), // Osaka
                (1735372, 1761017184, 0x56078a1e, 1761607008), // BPO1
                (1735372, 1761607008, 0x268956b6, 0),          // BPO2
            ],
        );
        let holesky_times = [
            1696000704, 1707305664, 1740434112, 1759308480, 1759800000, 1760389824,
        ];
        let holesky = Filter::new(HOLESKY, 1695902100, [0], holesky_times);
        check(
            &holesky,
            &[
                (0, 0, 0xc61a6098, 1696000704),
                (123, 1696000704, 0xfd4f016b, 1707305664),
                (123, 1707305664, 0x9b192ad0, 1740434112),
                (123, 1740434112, 0xdfbd9bed, 1759308480),
                (123, 1759308480, 0x783def52, 1759800000),
                (123, 1759800000, 0xa280a45c, 1760389824),
                (123, 1760389824, 0x9bc6cb31, 0),
            ],
        );
        // Shanghai and Cancun at time 0 are before the genesis time and are not counted.
        let hoodi_times = [0, 0, 1742999832, 1761677592, 1762365720, 1762955544];
        let hoodi = Filter::new(HOODI, 1742212800, [0, 0], hoodi_times);
        check(
            &hoodi,
            &[
                (0, 0, 0xbef71d30, 1742999832),
                (123, 1742999832, 0x0929e24e, 1761677592),
                (123, 1761677592, 0xe7e0e7ff, 1762365720),
                (123, 1762365720, 0x3893353e, 1762955544),
                (123, 1762955544, 0x23aa1351, 0),
            ],
        );
    }

    #[test]
    fn eip2124_validation() {
        use Error::*;
        let cases: &[(u64, ForkId, Result<(), Error>)] = &[
            // Same fork, no or uncertain next fork.
            (15050000, id(0xf0afd0e3, 0), Ok(())),
            (15050000, id(0xf0afd0e3, u64::MAX), Ok(())),
            // Local Byzantium aware of Petersburg; remote Byzantium with or without it.
            (7279999, id(0xa00bc324, 0), Ok(())),
            (7279999, id(0xa00bc324, 7280000), Ok(())),
            (7279999, id(0xa00bc324, u64::MAX), Ok(())),
            // Remote out of sync but aware of the next fork.
            (7280000, id(0xa00bc324, 7280000), Ok(())),
            (7987396, id(0xa00bc324, 7280000), Ok(())),
            (7987396, id(0x3edd5b10, 4370000), Ok(())),
            // Local out of sync.
            (7279999, id(0x668db0af, 0), Ok(())),
            (4369999, id(0xa00bc324, 0), Ok(())),
            // Remote stale.
            (7987396, id(0xa00bc324, 0), Err(RemoteStale)),
            // Local stale or incompatible.
            (7987396, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7279999, id(0x5cddc0e1, 0), Err(LocalIncompatibleOrStale)),
            (7987396, id(0xafec6b27, 0), Err(LocalIncompatibleOrStale)),
            (
                88888888,
                id(0xf0afd0e3, 88888888),
                Err(LocalIncompatibleOrStale),
            ),
            (
                7279999,
                id(0xa00bc324, 7279999),
                Err(LocalIncompatibleOrStale),
            ),
        ];
        let f = legacy_mainnet();
        for (head, remote, want) in cases {
            assert_eq!(
                f.validate(*remote, *head, 0),
                *want,
                "head {head} remote {remote:?}"
            );
        }
    }

    #[test]
    fn eip6122_validation() {
        use Error::*;
        let cases: &[(u64, u64, ForkId, Result<(), Error>)] = &[
            // Block to timestamp transition.
            (15050000, 0, id(0xf0afd0e3, 0), Ok(())),
            (15050000, 0, id(0xf0afd0e3, 1681338455), Ok(())),
            (15050000, 0, id(0xf0afd0e3, u64::MAX), Ok(())),
            (20000000, 1681338455, id(0xf0afd0e3, 1681338455), Ok(())),
            (20123456, 1681338456, id(0xf0afd0e3, 1681338455), Ok(())),
            (20000000, 1681338455, id(0x20c327fc, 15050000), Ok(())),
            (15050000, 0, id(0xdce96c2d, 0), Ok(())),
            (13773000, 0, id(0xf0afd0e3, 0), Ok(())),
            (20000000, 1681338455, id(0xf0afd0e3, 0), Err(RemoteStale)),
            (
                15050000,
                0,
                id(update(0xf0afd0e3, u64::MAX), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                15050000,
                0,
                id(update(0xdce96c2d, u64::MAX), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                888888888,
                1660000000,
                id(0xf0afd0e3, 1660000000),
                Err(LocalIncompatibleOrStale),
            ),
            (
                19999999,
                1667999999,
                id(0xf0afd0e3, 1667999999),
                Err(LocalIncompatibleOrStale),
            ),
            // Timestamp based.
            (20000000, 1681338455, id(0xdce96c2d, 0), Ok(())),
            (20000000, 1681338455, id(0xdce96c2d, u64::MAX), Ok(())),
            (20000000, 1668000000, id(0xdce96c2d, 0), Ok(())),
            (20000000, 1668000000, id(0xdce96c2d, 1710338135), Ok(())),
            (20000000, 1668000000, id(0xdce96c2d, u64::MAX), Ok(())),
            (21000000, 1710338135, id(0xdce96c2d, 1710338135), Ok(())),
            (21123456, 1710338136, id(0xdce96c2d, 1710338135), Ok(())),
            (0, 0, id(0x3edd5b10, 1710338135), Ok(())),
            (21000000, 1700000000, id(0x9f3d2254, 0), Ok(())),
            (21000000, 1678000000, id(0xc376cf8b, 0), Ok(())),
            (21000000, 1710338135, id(0xdce96c2d, 0), Err(RemoteStale)),
            (
                20000000,
                1681338455,
                id(update(0xdce96c2d, u64::MAX), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20000000,
                1668000000,
                id(update(0x9f3d2254, u64::MAX), 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20000000,
                1681338455,
                id(0x12345678, 0),
                Err(LocalIncompatibleOrStale),
            ),
            (
                88888888,
                8888888888,
                id(0x07c9462e, 8888888888),
                Err(LocalIncompatibleOrStale),
            ),
            (
                20999999,
                1699999999,
                id(0x71147644, 1700000000),
                Err(LocalIncompatibleOrStale),
            ),
        ];
        let f = mainnet();
        for (head, time, remote, want) in cases {
            assert_eq!(
                f.validate(*remote, *head, *time),
                *want,
                "head {head} time {time} remote {remote:?}"
            );
        }
    }

    #[test]
    fn rlp_encoding() {
        let cases = [
            (id(0, 0), "c6840000000080"),
            (id(0xdeadbeef, 0xbaddcafe), "ca84deadbeef84baddcafe"),
            (id(u32::MAX, u64::MAX), "ce84ffffffff88ffffffffffffffff"),
        ];
        for (fork_id, want) in cases {
            let bytes = alloy_rlp::encode(fork_id);
            assert_eq!(alloy_primitives::hex::encode(&bytes), want);
            let decoded: ForkId = alloy_rlp::Decodable::decode(&mut bytes.as_slice()).unwrap();
            assert_eq!(decoded, fork_id);
        }
        assert!(
            <ForkId as alloy_rlp::Decodable>::decode(&mut &[0xc5, 0x83, 1, 2, 3, 0x80][..])
                .is_err()
        );
    }
}
