//! Garbage nodes: they run the real protocol (so they bond and enter tables like anyone),
//! but every Neighbors packet they send is replaced by one of five kinds of garbage.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

use discovery::node::{Node, NodeId};
use discovery::packet::{self, Crypto, HEADER_SIZE};
use rand::rngs::StdRng;
use rand::{Rng, RngCore};

use super::world::Info;

/// Nodes per garbage Neighbors packet: what fits in one 1280-byte packet (discv4.md).
const PER_PACKET: usize = 12;
/// Lifetime put in the garbage packets' expiration, as an honest node's (go-ethereum).
const LIFETIME: u64 = 20;

/// The garbage nodes' signers and the randomness of what they send.
pub(crate) struct Garbage<C: Crypto> {
    signers: HashMap<usize, C>,
    ids: HashSet<NodeId>,
    rng: StdRng,
}

impl<C: Crypto> Garbage<C> {
    pub(crate) fn new(rng: StdRng) -> Self {
        Garbage {
            signers: HashMap::new(),
            ids: HashSet::new(),
            rng,
        }
    }

    /// Node `i` (id `id`) sends garbage, signed with `signer`.
    pub(crate) fn add(&mut self, i: usize, id: NodeId, signer: C) {
        self.signers.insert(i, signer);
        self.ids.insert(id);
    }

    /// Whether `id` is a garbage node's.
    pub(crate) fn contains(&self, id: &NodeId) -> bool {
        self.ids.contains(id)
    }

    /// The replacement for datagram `data` of garbage node `from` when it is a Neighbors
    /// packet; `None` leaves it as is. One of, equally likely:
    /// - malformed: random bytes of the same length (fails the hash check);
    /// - nonexistent nodes: random ids at addresses no node has;
    /// - forged: real nodes' ids at the garbage node's own address;
    /// - sybil: other garbage nodes only, as if they were the closest;
    /// - far: random real nodes, whatever the target.
    pub(crate) fn answer(
        &mut self,
        from: usize,
        data: &[u8],
        info: &[Info],
        unix: u64,
    ) -> Option<Vec<u8>> {
        if data.get(HEADER_SIZE - 1) != Some(&4) {
            return None;
        }
        let signer = self.signers.get(&from)?;
        let own = info.get(from)?.node;
        let pick = |rng: &mut StdRng, garbage: Option<bool>| {
            let pool: Vec<&Info> = (info.iter())
                .filter(|i| i.online && garbage.is_none_or(|g| i.garbage == g))
                .collect();
            (0..PER_PACKET)
                .filter_map(|_| pool.get(rng.random_range(0..pool.len().max(1))))
                .map(|i| i.node)
                .collect::<Vec<Node>>()
        };
        let nodes: Vec<Node> = match self.rng.random_range(0..5u8) {
            0 => {
                let mut junk = vec![0u8; data.len()];
                self.rng.fill_bytes(&mut junk);
                return Some(junk);
            }
            1 => (0..PER_PACKET)
                .map(|_| {
                    let mut id = [0u8; 64];
                    self.rng.fill_bytes(&mut id);
                    // 10.255.0.0/16: no simulated node lives there.
                    let ip = Ipv4Addr::new(10, 255, self.rng.random(), self.rng.random());
                    Node {
                        id: NodeId(id),
                        ip: IpAddr::V4(ip),
                        udp: 30303,
                        tcp: 30303,
                    }
                })
                .collect(),
            2 => pick(&mut self.rng, Some(false))
                .into_iter()
                .map(|n| Node {
                    ip: own.ip,
                    udp: self.rng.random_range(1024..u16::MAX),
                    ..n
                })
                .collect(),
            3 => pick(&mut self.rng, Some(true)),
            _ => pick(&mut self.rng, None),
        };
        packet::encode_neighbors_with(&nodes, unix + LIFETIME, signer)
            .into_iter()
            .next()
    }
}
