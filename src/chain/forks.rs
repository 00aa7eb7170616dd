//! Fork activation rules read from a go-ethereum chain configuration.

use alloy_eips::eip7840::BlobParams;
use alloy_eips::eip7892::BlobScheduleBlobParams;
use alloy_genesis::ChainConfig;

/// Whether a block-numbered fork scheduled at `fork` is active at block `number`.
pub fn active_block(fork: Option<u64>, number: u64) -> bool {
    fork.is_some_and(|f| f <= number)
}

/// Whether a timestamp fork scheduled at `fork` is active at `time`.
pub fn active_time(fork: Option<u64>, time: u64) -> bool {
    fork.is_some_and(|f| f <= time)
}

/// The block-numbered forks counted in the fork id (EIP-2124), in go-ethereum's field order:
/// Homestead, DAO, EIP-150, EIP-155, EIP-158, Byzantium, Constantinople, Petersburg, Istanbul,
/// Muir Glacier, Berlin, London, Arrow Glacier, Gray Glacier and the merge netsplit block.
pub fn block_forks(c: &ChainConfig) -> Vec<u64> {
    [
        c.homestead_block,
        c.dao_fork_block,
        c.eip150_block,
        c.eip155_block,
        c.eip158_block,
        c.byzantium_block,
        c.constantinople_block,
        c.petersburg_block,
        c.istanbul_block,
        c.muir_glacier_block,
        c.berlin_block,
        c.london_block,
        c.arrow_glacier_block,
        c.gray_glacier_block,
        c.merge_netsplit_block,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The timestamp forks counted in the fork id (EIP-6122): Shanghai, Cancun, Prague, Osaka,
/// the blob-parameter-only forks BPO1 to BPO5 (EIP-7892) and Amsterdam (go-ethereum gathers
/// every `*Time` field of its chain config, `AmsterdamTime` included).
pub fn time_forks(c: &ChainConfig) -> Vec<u64> {
    [
        c.shanghai_time,
        c.cancun_time,
        c.prague_time,
        c.osaka_time,
        c.bpo1_time,
        c.bpo2_time,
        c.bpo3_time,
        c.bpo4_time,
        c.bpo5_time,
        c.amsterdam_time,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The blob parameters (EIP-4844, EIP-7691, EIP-7840, EIP-7892) in force at `time`, or `None`
/// before Cancun. `schedule` is the chain's `blobSchedule` over each fork's defaults
/// ([`ChainConfig::blob_schedule_blob_params`]).
pub fn blob_params(
    c: &ChainConfig,
    schedule: &BlobScheduleBlobParams,
    time: u64,
) -> Option<BlobParams> {
    if !active_time(c.cancun_time, time) {
        return None;
    }
    if let Some(params) = schedule.active_scheduled_params_at_timestamp(time) {
        return Some(*params);
    }
    Some(if active_time(c.osaka_time, time) {
        schedule.osaka
    } else if active_time(c.prague_time, time) {
        schedule.prague
    } else {
        schedule.cancun
    })
}
