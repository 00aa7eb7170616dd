//! Built-in chains: `mainnet`, `sepolia`, `holesky`, `hoodi` and `ethtest` (the default).
//!
//! Fork schedules, genesis fields and bootnodes are the public values go-ethereum ships
//! (`params/config.go`, `core/genesis.go`, `params/bootnodes.go`). The public networks'
//! allocations (8,893 accounts on mainnet) are not bundled: their genesis headers are built from
//! the known header fields with the state root of the allocation, computed once from the
//! published allocation, and the tests check that each header hashes to the well-known genesis
//! hash. `ethtest` (the hive `eth` test chain in `testdata/ethtest`) is computed from its
//! `genesis.json`, allocation included.

use std::collections::BTreeMap;

use alloy_eips::eip7840::BlobParams;
use alloy_genesis::{ChainConfig, Genesis};
use alloy_primitives::{Address, B256, Bytes, U256, address, b256};

use super::{Spec, genesis};

/// The preset names, default first.
pub const NAMES: [&str; 5] = ["ethtest", "mainnet", "sepolia", "holesky", "hoodi"];

/// The default chain of the node.
pub const DEFAULT: &str = "ethtest";

/// Mainnet's well-known genesis hash.
pub const MAINNET_GENESIS: B256 =
    b256!("d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3");
/// Sepolia's well-known genesis hash.
pub const SEPOLIA_GENESIS: B256 =
    b256!("25a5cc106eea7138acab33231d7160d69cb777ee0c2c553fcddf5138993e6dd9");
/// Holesky's well-known genesis hash.
pub const HOLESKY_GENESIS: B256 =
    b256!("b5f7f912443c940f21fd611f12828d75b534364ed9e95ca4e307729a4661bde4");
/// Hoodi's well-known genesis hash.
pub const HOODI_GENESIS: B256 =
    b256!("bbe312868b376a3001692a646dd2d7d1e4406380dfd86b98aa8a34d1557c971b");

/// The hive `eth` test chain's genesis file (`testdata/ethtest/genesis.json`).
pub const ETHTEST_GENESIS_JSON: &str = include_str!("../../testdata/ethtest/genesis.json");

/// The EIP-1459 node list of a public preset: go-ethereum's `KnownDNSNetwork(genesis,
/// "all")`, published by the Ethereum Foundation's crawlers under one signing key.
pub fn dns_tree(name: &str) -> Option<String> {
    const PREFIX: &str = "enrtree://AKA3AM6LPBYEUDMVNU3BSVQJ5AD45Y7YPOHJLEF6W26QOE4VTUDPE@all.";
    matches!(name, "mainnet" | "sepolia" | "holesky" | "hoodi")
        .then(|| format!("{PREFIX}{name}.ethdisco.net"))
}

/// Discovery v5 bootnodes of the public presets (go-ethereum `V5Bootnodes`, one list for
/// every network: consensus-layer bootnodes run by the Teku, Prysm, Lighthouse, EF and
/// Nimbus teams). They serve v5 lookups; having no `eth` entry they are never dialled.
pub const V5_BOOTNODES: &[&str] = &[
    "enr:-KG4QMOEswP62yzDjSwWS4YEjtTZ5PO6r65CPqYBkgTTkrpaedQ8uEUo1uMALtJIvb2w_WWEVmg5yt1UAuK1ftxUU7QDhGV0aDKQu6TalgMAAAD__________4JpZIJ2NIJpcIQEnfA2iXNlY3AyNTZrMaEDfol8oLr6XJ7FsdAYE7lpJhKMls4G_v6qQOGKJUWGb_uDdGNwgiMog3VkcIIjKA",
    "enr:-KG4QF4B5WrlFcRhUU6dZETwY5ZzAXnA0vGC__L1Kdw602nDZwXSTs5RFXFIFUnbQJmhNGVU6OIX7KVrCSTODsz1tK4DhGV0aDKQu6TalgMAAAD__________4JpZIJ2NIJpcIQExNYEiXNlY3AyNTZrMaECQmM9vp7KhaXhI-nqL_R0ovULLCFSFTa9CPPSdb1zPX6DdGNwgiMog3VkcIIjKA",
    "enr:-Ku4QImhMc1z8yCiNJ1TyUxdcfNucje3BGwEHzodEZUan8PherEo4sF7pPHPSIB1NNuSg5fZy7qFsjmUKs2ea1Whi0EBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpD1pf1CAAAAAP__________gmlkgnY0gmlwhBLf22SJc2VjcDI1NmsxoQOVphkDqal4QzPMksc5wnpuC3gvSC8AfbFOnZY_On34wIN1ZHCCIyg",
    "enr:-Ku4QP2xDnEtUXIjzJ_DhlCRN9SN99RYQPJL92TMlSv7U5C1YnYLjwOQHgZIUXw6c-BvRg2Yc2QsZxxoS_pPRVe0yK8Bh2F0dG5ldHOIAAAAAAAAAACEZXRoMpD1pf1CAAAAAP__________gmlkgnY0gmlwhBLf22SJc2VjcDI1NmsxoQMeFF5GrS7UZpAH2Ly84aLK-TyvH-dRo0JM1i8yygH50YN1ZHCCJxA",
    "enr:-Ku4QPp9z1W4tAO8Ber_NQierYaOStqhDqQdOPY3bB3jDgkjcbk6YrEnVYIiCBbTxuar3CzS528d2iE7TdJsrL-dEKoBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpD1pf1CAAAAAP__________gmlkgnY0gmlwhBLf22SJc2VjcDI1NmsxoQMw5fqqkw2hHC4F5HZZDPsNmPdB1Gi8JPQK7pRc9XHh-oN1ZHCCKvg",
    "enr:-Le4QPUXJS2BTORXxyx2Ia-9ae4YqA_JWX3ssj4E_J-3z1A-HmFGrU8BpvpqhNabayXeOZ2Nq_sbeDgtzMJpLLnXFgAChGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISsaa0Zg2lwNpAkAIkHAAAAAPA8kv_-awoTiXNlY3AyNTZrMaEDHAD2JKYevx89W0CcFJFiskdcEzkH_Wdv9iW42qLK79ODdWRwgiMohHVkcDaCI4I",
    "enr:-Le4QLHZDSvkLfqgEo8IWGG96h6mxwe_PsggC20CL3neLBjfXLGAQFOPSltZ7oP6ol54OvaNqO02Rnvb8YmDR274uq8ChGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISLosQxg2lwNpAqAX4AAAAAAPA8kv_-ax65iXNlY3AyNTZrMaEDBJj7_dLFACaxBfaI8KZTh_SSJUjhyAyfshimvSqo22WDdWRwgiMohHVkcDaCI4I",
    "enr:-Le4QH6LQrusDbAHPjU_HcKOuMeXfdEB5NJyXgHWFadfHgiySqeDyusQMvfphdYWOzuSZO9Uq2AMRJR5O4ip7OvVma8BhGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISLY9ncg2lwNpAkAh8AgQIBAAAAAAAAAAmXiXNlY3AyNTZrMaECDYCZTZEksF-kmgPholqgVt8IXr-8L7Nu7YrZ7HUpgxmDdWRwgiMohHVkcDaCI4I",
    "enr:-Le4QIqLuWybHNONr933Lk0dcMmAB5WgvGKRyDihy1wHDIVlNuuztX62W51voT4I8qD34GcTEOTmag1bcdZ_8aaT4NUBhGV0aDKQtTA_KgEAAAAAIgEAAAAAAIJpZIJ2NIJpcISLY04ng2lwNpAkAh8AgAIBAAAAAAAAAA-fiXNlY3AyNTZrMaEDscnRV6n1m-D9ID5UsURk0jsoKNXt1TIrj8uKOGW6iluDdWRwgiMohHVkcDaCI4I",
    "enr:-Ku4QHqVeJ8PPICcWk1vSn_XcSkjOkNiTg6Fmii5j6vUQgvzMc9L1goFnLKgXqBJspJjIsB91LTOleFmyWWrFVATGngBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhAMRHkWJc2VjcDI1NmsxoQKLVXFOhp2uX6jeT0DvvDpPcU8FWMjQdR4wMuORMhpX24N1ZHCCIyg",
    "enr:-Ku4QG-2_Md3sZIAUebGYT6g0SMskIml77l6yR-M_JXc-UdNHCmHQeOiMLbylPejyJsdAPsTHJyjJB2sYGDLe0dn8uYBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhBLY-NyJc2VjcDI1NmsxoQORcM6e19T1T9gi7jxEZjk_sjVLGFscUNqAY9obgZaxbIN1ZHCCIyg",
    "enr:-Ku4QPn5eVhcoF1opaFEvg1b6JNFD2rqVkHQ8HApOKK61OIcIXD127bKWgAtbwI7pnxx6cDyk_nI88TrZKQaGMZj0q0Bh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhDayLMaJc2VjcDI1NmsxoQK2sBOLGcUb4AwuYzFuAVCaNHA-dy24UuEKkeFNgCVCsIN1ZHCCIyg",
    "enr:-Ku4QEWzdnVtXc2Q0ZVigfCGggOVB2Vc1ZCPEc6j21NIFLODSJbvNaef1g4PxhPwl_3kax86YPheFUSLXPRs98vvYsoBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhDZBrP2Jc2VjcDI1NmsxoQM6jr8Rb1ktLEsVcKAPa08wCsKUmvoQ8khiOl_SLozf9IN1ZHCCIyg",
    "enr:-LK4QA8FfhaAjlb_BXsXxSfiysR7R52Nhi9JBt4F8SPssu8hdE1BXQQEtVDC3qStCW60LSO7hEsVHv5zm8_6Vnjhcn0Bh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhAN4aBKJc2VjcDI1NmsxoQJerDhsJ-KxZ8sHySMOCmTO6sHM3iCFQ6VMvLTe948MyYN0Y3CCI4yDdWRwgiOM",
    "enr:-LK4QKWrXTpV9T78hNG6s8AM6IO4XH9kFT91uZtFg1GcsJ6dKovDOr1jtAAFPnS2lvNltkOGA9k29BUN7lFh_sjuc9QBh2F0dG5ldHOIAAAAAAAAAACEZXRoMpC1MD8qAAAAAP__________gmlkgnY0gmlwhANAdd-Jc2VjcDI1NmsxoQLQa6ai7y9PMN5hpLe5HmiJSlYzMuzP7ZhwRiwHvqNXdoN0Y3CCI4yDdWRwgiOM",
];

/// The v5 bootnodes of a preset: [`V5_BOOTNODES`] for the public networks, none otherwise.
pub fn v5_bootnodes(name: &str) -> &'static [&'static str] {
    if dns_tree(name).is_some() {
        V5_BOOTNODES
    } else {
        &[]
    }
}

/// Mainnet bootnodes (go-ethereum `MainnetBootnodes`).
pub const MAINNET_BOOTNODES: &[&str] = &[
    "enode://d860a01f9722d78051619d1e2351aba3f43f943f6f00718d1b9baa4101932a1f5011f16bb2b1bb35db20d6fe28fa0bf09636d26a87d31de9ec6203eeedb1f666@18.138.108.67:30303",
    "enode://22a8232c3abc76a16ae9d6c3b164f98775fe226f0917b0ca871128a74a8e9630b458460865bab457221f1d448dd9791d24c4e5d88786180ac185df813a68d4de@3.209.45.79:30303",
    "enode://2b252ab6a1d0f971d9722cb839a42cb81db019ba44c08754628ab4a823487071b5695317c8ccd085219c3a03af063495b2f1da8d18218da2d6a82981b45e6ffc@65.108.70.101:30303",
    "enode://4aeb4ab6c14b23e2c4cfdce879c04b0748a20d8e9b59e25ded2a08143e265c6c25936e74cbc8e641e3312ca288673d91f2f93f8e277de3cfa444ecdaaf982052@157.90.35.166:30303",
];
/// Sepolia bootnodes (go-ethereum `SepoliaBootnodes`).
pub const SEPOLIA_BOOTNODES: &[&str] = &[
    "enode://4e5e92199ee224a01932a377160aa432f31d0b351f84ab413a8e0a42f4f36476f8fb1cbe914af0d9aef0d51665c214cf653c651c4bbd9d5550a934f241f1682b@138.197.51.181:30303",
    "enode://143e11fb766781d22d92a2e33f8f104cddae4411a122295ed1fdb6638de96a6ce65f5b7c964ba3763bba27961738fef7d3ecc739268f3e5e771fb4c87b6234ba@146.190.1.103:30303",
    "enode://8b61dc2d06c3f96fddcbebb0efb29d60d3598650275dc469c22229d3e5620369b0d3dedafd929835fe7f489618f19f456fe7c0df572bf2d914a9f4e006f783a9@170.64.250.88:30303",
    "enode://10d62eff032205fcef19497f35ca8477bea0eadfff6d769a147e895d8b2b8f8ae6341630c645c30f5df6e67547c03494ced3d9c5764e8622a26587b083b028e8@139.59.49.206:30303",
    "enode://9e9492e2e8836114cc75f5b929784f4f46c324ad01daf87d956f98b3b6c5fcba95524d6e5cf9861dc96a2c8a171ea7105bb554a197455058de185fa870970c7c@138.68.123.152:30303",
];
/// Holesky bootnodes (go-ethereum `HoleskyBootnodes`).
pub const HOLESKY_BOOTNODES: &[&str] = &[
    "enode://ac906289e4b7f12df423d654c5a962b6ebe5b3a74cc9e06292a85221f9a64a6f1cfdd6b714ed6dacef51578f92b34c60ee91e9ede9c7f8fadc4d347326d95e2b@146.190.13.128:30303",
    "enode://a3435a0155a3e837c02f5e7f5662a2f1fbc25b48e4dc232016e1c51b544cb5b4510ef633ea3278c0e970fa8ad8141e2d4d0f9f95456c537ff05fdf9b31c15072@178.128.136.233:30303",
];
/// Hoodi bootnodes (go-ethereum `HoodiBootnodes`).
pub const HOODI_BOOTNODES: &[&str] = &[
    "enode://2112dd3839dd752813d4df7f40936f06829fc54c0e051a93967c26e5f5d27d99d886b57b4ffcc3c475e930ec9e79c56ef1dbb7d86ca5ee83a9d2ccf36e5c240c@134.209.138.84:30303",
    "enode://60203fcb3524e07c5df60a14ae1c9c5b24023ea5d47463dfae051d2c9f3219f309657537576090ca0ae641f73d419f53d8e8000d7a464319d4784acd7d2abc41@209.38.124.160:30303",
    "enode://8ae4a48101b2299597341263da0deb47cc38aa4d3ef4b7430b897d49bfa10eb1ccfe1655679b1ed46928ef177fbf21b86837bd724400196c508427a6f41602cd@134.199.184.23:30303",
];

/// A preset by name; `Ok(None)` if `name` is no preset.
pub fn by_name(name: &str) -> Result<Option<Spec>, genesis::Error> {
    Ok(Some(match name {
        "ethtest" => ethtest()?,
        "mainnet" => mainnet(),
        "sepolia" => sepolia(),
        "holesky" => holesky(),
        "hoodi" => hoodi(),
        _ => return Ok(None),
    }))
}

/// The hive `eth` test chain, computed from its bundled `genesis.json`.
pub fn ethtest() -> Result<Spec, genesis::Error> {
    let genesis: Genesis =
        serde_json::from_str(ETHTEST_GENESIS_JSON).map_err(|source| genesis::Error::Json {
            path: "testdata/ethtest/genesis.json (bundled)".into(),
            source,
        })?;
    Ok(Spec::from_genesis("ethtest", &genesis))
}

/// The blob schedule shared by the public networks: Cancun and Prague defaults (EIP-4844,
/// EIP-7691) and the two blob-parameter-only forks (EIP-7892).
fn blob_schedule() -> BTreeMap<String, BlobParams> {
    BTreeMap::from([
        ("cancun".to_owned(), BlobParams::cancun()),
        ("prague".to_owned(), BlobParams::prague()),
        ("bpo1".to_owned(), BlobParams::bpo1()),
        ("bpo2".to_owned(), BlobParams::bpo2()),
    ])
}

/// A config with every pre-merge block fork at genesis (the testnets' shape).
fn all_at_genesis(chain_id: u64, deposit_contract: Address) -> ChainConfig {
    ChainConfig {
        chain_id,
        homestead_block: Some(0),
        eip150_block: Some(0),
        eip155_block: Some(0),
        eip158_block: Some(0),
        byzantium_block: Some(0),
        constantinople_block: Some(0),
        petersburg_block: Some(0),
        istanbul_block: Some(0),
        berlin_block: Some(0),
        london_block: Some(0),
        deposit_contract_address: Some(deposit_contract),
        blob_schedule: blob_schedule(),
        ..ChainConfig::default()
    }
}

/// Builds a preset from its genesis fields and its allocation's state root.
#[allow(clippy::too_many_arguments)]
fn public(
    name: &str,
    config: ChainConfig,
    nonce: u64,
    timestamp: u64,
    extra_data: &[u8],
    gas_limit: u64,
    difficulty: u64,
    state_root: B256,
    bootnodes: &[&str],
) -> Spec {
    let genesis = Genesis {
        config,
        nonce,
        timestamp,
        extra_data: Bytes::copy_from_slice(extra_data),
        gas_limit,
        difficulty: U256::from(difficulty),
        ..Genesis::default()
    };
    let header = genesis::header_with_state_root(&genesis, state_root);
    let network_id = genesis.config.chain_id;
    let bootnodes = bootnodes.iter().map(|s| (*s).to_owned()).collect();
    let mut spec = Spec::with_header(name, network_id, genesis.config, header, bootnodes);
    spec.public = true;
    spec
}

/// Ethereum mainnet (network id 1).
pub fn mainnet() -> Spec {
    let config = ChainConfig {
        chain_id: 1,
        homestead_block: Some(1_150_000),
        dao_fork_block: Some(1_920_000),
        dao_fork_support: true,
        eip150_block: Some(2_463_000),
        eip155_block: Some(2_675_000),
        eip158_block: Some(2_675_000),
        byzantium_block: Some(4_370_000),
        constantinople_block: Some(7_280_000),
        petersburg_block: Some(7_280_000),
        istanbul_block: Some(9_069_000),
        muir_glacier_block: Some(9_200_000),
        berlin_block: Some(12_244_000),
        london_block: Some(12_965_000),
        arrow_glacier_block: Some(13_773_000),
        gray_glacier_block: Some(15_050_000),
        terminal_total_difficulty: Some(U256::from(58_750_000_000_000_000_000_000u128)),
        terminal_total_difficulty_passed: true,
        shanghai_time: Some(1_681_338_455),
        cancun_time: Some(1_710_338_135),
        prague_time: Some(1_746_612_311),
        osaka_time: Some(1_764_798_551),
        bpo1_time: Some(1_765_290_071),
        bpo2_time: Some(1_767_747_671),
        deposit_contract_address: Some(address!("00000000219ab540356cbb839cbe05303d7705fa")),
        blob_schedule: blob_schedule(),
        ..ChainConfig::default()
    };
    let extra = b256!("11bbe8db4e347b4e8c937c1c8370e4b5ed33adb3db69cbdb7a38e1e50b1b82fa");
    let root = b256!("d7f8974fb5ac78d9ac099b9ad5018bedc2ce0a72dad1827a1709da30580f0544");
    let difficulty = 17_179_869_184;
    public(
        "mainnet",
        config,
        66,
        0,
        extra.as_slice(),
        5000,
        difficulty,
        root,
        MAINNET_BOOTNODES,
    )
}

/// Sepolia (network id 11155111).
pub fn sepolia() -> Spec {
    let deposit = address!("7f02c3e3c98b133055b8b348b2ac625669ed295d");
    let config = ChainConfig {
        muir_glacier_block: Some(0),
        terminal_total_difficulty: Some(U256::from(17_000_000_000_000_000u64)),
        terminal_total_difficulty_passed: true,
        merge_netsplit_block: Some(1_735_371),
        shanghai_time: Some(1_677_557_088),
        cancun_time: Some(1_706_655_072),
        prague_time: Some(1_741_159_776),
        osaka_time: Some(1_760_427_360),
        bpo1_time: Some(1_761_017_184),
        bpo2_time: Some(1_761_607_008),
        ..all_at_genesis(11_155_111, deposit)
    };
    let root = b256!("5eb6e371a698b8d68f665192350ffcecbbbf322916f4b51bd79bb6887da3f494");
    let extra = b"Sepolia, Athens, Attica, Greece!";
    public(
        "sepolia",
        config,
        0,
        1_633_267_481,
        extra,
        0x1c9c380,
        0x20000,
        root,
        SEPOLIA_BOOTNODES,
    )
}

/// Holesky (network id 17000).
pub fn holesky() -> Spec {
    let deposit = address!("4242424242424242424242424242424242424242");
    let config = ChainConfig {
        terminal_total_difficulty: Some(U256::ZERO),
        terminal_total_difficulty_passed: true,
        shanghai_time: Some(1_696_000_704),
        cancun_time: Some(1_707_305_664),
        prague_time: Some(1_740_434_112),
        osaka_time: Some(1_759_308_480),
        bpo1_time: Some(1_759_800_000),
        bpo2_time: Some(1_760_389_824),
        ..all_at_genesis(17_000, deposit)
    };
    let root = b256!("69d8c9d72f6fa4ad42d4702b433707212f90db395eb54dc20bc85de253788783");
    public(
        "holesky",
        config,
        0x1234,
        1_695_902_100,
        &[],
        0x17d7840,
        1,
        root,
        HOLESKY_BOOTNODES,
    )
}

/// Hoodi (network id 560048).
pub fn hoodi() -> Spec {
    let deposit = address!("00000000219ab540356cbb839cbe05303d7705fa");
    let config = ChainConfig {
        muir_glacier_block: Some(0),
        terminal_total_difficulty: Some(U256::ZERO),
        terminal_total_difficulty_passed: true,
        merge_netsplit_block: Some(0),
        shanghai_time: Some(0),
        cancun_time: Some(0),
        prague_time: Some(1_742_999_832),
        osaka_time: Some(1_761_677_592),
        bpo1_time: Some(1_762_365_720),
        bpo2_time: Some(1_762_955_544),
        ..all_at_genesis(560_048, deposit)
    };
    let root = b256!("da87d7f5f91c51508791bbcbd4aa5baf04917830b86985eeb9ad3d5bfb657576");
    public(
        "hoodi",
        config,
        0x1234,
        1_742_212_800,
        &[],
        0x2255100,
        1,
        root,
        HOODI_BOOTNODES,
    )
}
