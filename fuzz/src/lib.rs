//! Fuzz entry points for every decoder of network input in the workspace.
//!
//! Each target is a plain `pub fn <name>(data: &[u8])` that feeds `data` to a decoder,
//! panics if the decoder panics, and asserts the decoder's invariants (round trips,
//! bounds, streaming vs one-shot agreement). The functions are shared by:
//!
//! * the cargo-fuzz binaries in `fuzz_targets/` (one per function, see `README.md`), and
//! * `tests/corpus.rs`, which runs every entry of [`TARGETS`] over its seed corpus (plus
//!   truncations and bit flips) in the normal `cargo test`.
//!
//! Adding a target: write the function in a module, add a row to [`TARGETS`], a
//! `fuzz_targets/<name>.rs` file, a `[[bin]]` entry in `Cargo.toml` and seeds in
//! `corpus/<name>/`.

pub mod discovery;
pub mod dns;
pub mod eth;
pub mod rlpx;

/// One fuzz target: its name (the cargo-fuzz binary), the seed corpus directories under
/// `fuzz/corpus/` it is run over by `tests/corpus.rs`, and the function itself.
#[derive(Clone, Copy)]
pub struct Target {
    /// Binary name in `fuzz_targets/`, also `fuzz/corpus/<name>` when it has its own seeds.
    pub name: &'static str,
    /// Seed directories (names under `fuzz/corpus/`), all of which must be non-empty.
    pub corpus: &'static [&'static str],
    /// The entry point; panics on a bug.
    pub run: fn(&[u8]),
}

/// Every target with its seed directories.
#[rustfmt::skip]
pub const TARGETS: &[Target] = &[
    Target { name: "auth", corpus: &["auth"], run: rlpx::auth },
    Target { name: "ack", corpus: &["ack"], run: rlpx::ack },
    // ECIES ciphertexts are what the auth/ack seeds carry (after the EIP-8 size prefix).
    Target { name: "ecies", corpus: &["auth", "ack"], run: rlpx::ecies },
    Target { name: "frame", corpus: &["frame"], run: rlpx::frame },
    Target { name: "hello", corpus: &["hello"], run: rlpx::hello },
    Target { name: "disconnect", corpus: &["disconnect"], run: rlpx::disconnect },
    Target { name: "snappy", corpus: &["snappy"], run: rlpx::snappy },
    Target { name: "discv4_packet", corpus: &["discv4_packet"], run: discovery::packet },
    Target { name: "enr", corpus: &["enr"], run: discovery::enr },
    Target { name: "dns_root", corpus: &["dns_root"], run: dns::root },
    // Links and ENR leaves are entries too; the `enr:` seeds reach the record decoder.
    Target { name: "dns_entry", corpus: &["dns_entry", "enr"], run: dns::entry },
    Target { name: "eth_message", corpus: &["eth_message"], run: eth::message },
];
