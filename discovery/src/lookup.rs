//! Iterative FindNode lookups as a state machine (discv4.md "Recursive Lookup").
//!
//! The owner calls [`Lookup::next`] until it returns [`State::Waiting`] or
//! [`State::Finished`], sends FindNode for every [`State::Query`], and feeds answers back
//! with [`Lookup::on_response`] / [`Lookup::on_timeout`]. At most `alpha` queries are in
//! flight; the lookup ends when the `k` closest nodes seen (not counting failed ones)
//! have all answered, or nobody is left to ask.

use std::time::{Duration, Instant};

use crate::node::{Node, NodeId, distance_cmp};

/// Lookup concurrency (discv4.md: "α ... such as 3").
pub const ALPHA: usize = 3;
/// Result size: the bucket size `k` (discv4.md).
pub const K: usize = 16;
/// Candidates kept beyond the closest `k` (answers may fill in failures).
const MAX_CANDIDATES: usize = K * 4;

/// What the lookup wants next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Send FindNode(target) to this node.
    Query(Node),
    /// Queries are in flight; call again after a response, timeout or [`Lookup::next_deadline`].
    Waiting,
    /// Done: read [`Lookup::result`].
    Finished,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Entered on insertion; left when queried.
    NotQueried,
    /// Entered when queried; left on response (→ Responded) or deadline (→ Failed).
    InFlight(Instant),
    /// Answered at least one Neighbors packet.
    Responded,
    /// Timed out; a late answer still counts (discv4.md: "until and unless they do respond").
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    node: Node,
    hash: [u8; 32],
    status: Status,
    /// 1 for a seed, one more than the node that told us of it otherwise: the round of
    /// the lookup in which it could first be queried.
    hop: usize,
}

/// One lookup.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: NodeId,
    target_hash: [u8; 32],
    local: NodeId,
    timeout: Duration,
    candidates: Vec<Candidate>,
    queries: usize,
    finished: bool,
}

impl Lookup {
    /// A lookup for `target` started from `seeds` (usually the table's closest nodes).
    /// `timeout` bounds each query.
    pub fn new(
        local: NodeId,
        target: NodeId,
        seeds: impl IntoIterator<Item = Node>,
        timeout: Duration,
    ) -> Self {
        let mut l = Lookup {
            target,
            target_hash: target.hash(),
            local,
            timeout,
            candidates: Vec::new(),
            queries: 0,
            finished: false,
        };
        l.add(seeds, 1);
        l
    }

    /// The target.
    pub fn target(&self) -> NodeId {
        self.target
    }

    /// FindNode queries issued so far.
    pub fn queries(&self) -> usize {
        self.queries
    }

    /// Rounds the lookup took: the deepest hop (1 for a seed, one more than the node that
    /// named it otherwise) of a node that answered.
    pub fn rounds(&self) -> usize {
        (self.candidates.iter())
            .filter(|c| c.status == Status::Responded)
            .map(|c| c.hop)
            .max()
            .unwrap_or(0)
    }

    fn add(&mut self, nodes: impl IntoIterator<Item = Node>, hop: usize) {
        for node in nodes {
            if node.id == self.local || self.candidates.iter().any(|c| c.node.id == node.id) {
                continue;
            }
            let hash = node.id.hash();
            let pos = self
                .candidates
                .partition_point(|c| distance_cmp(&self.target_hash, &c.hash, &hash).is_lt());
            if pos >= MAX_CANDIDATES {
                continue;
            }
            self.candidates.insert(
                pos,
                Candidate {
                    node,
                    hash,
                    status: Status::NotQueried,
                    hop,
                },
            );
            // Drop the farthest not-yet-queried candidate when over capacity.
            if self.candidates.len() > MAX_CANDIDATES
                && let Some(i) = self
                    .candidates
                    .iter()
                    .rposition(|c| c.status == Status::NotQueried)
            {
                self.candidates.remove(i);
            }
        }
    }

    /// Advances the lookup: expires overdue queries and picks the next node to ask.
    pub fn next(&mut self, now: Instant) -> State {
        if self.finished {
            return State::Finished;
        }
        for c in &mut self.candidates {
            if matches!(c.status, Status::InFlight(d) if d <= now) {
                c.status = Status::Failed;
            }
        }
        let in_flight = self
            .candidates
            .iter()
            .filter(|c| matches!(c.status, Status::InFlight(_)))
            .count();
        let mut all_responded = true;
        let mut next = None;
        for c in self
            .candidates
            .iter_mut()
            .filter(|c| c.status != Status::Failed)
            .take(K)
        {
            match c.status {
                Status::Responded => {}
                Status::NotQueried => {
                    all_responded = false;
                    if next.is_none() {
                        next = Some(c);
                    }
                }
                _ => all_responded = false,
            }
        }
        if all_responded {
            self.finished = true;
            return State::Finished;
        }
        match next {
            Some(c) if in_flight < ALPHA => {
                c.status = Status::InFlight(now + self.timeout);
                self.queries += 1;
                State::Query(c.node)
            }
            _ => State::Waiting,
        }
    }

    /// Records a Neighbors answer from `from` (may be called once per packet).
    pub fn on_response(&mut self, from: &NodeId, nodes: &[Node]) {
        let mut hop = 1;
        if let Some(c) = self.candidates.iter_mut().find(|c| c.node.id == *from) {
            c.status = Status::Responded;
            hop = c.hop + 1;
        }
        self.add(nodes.iter().copied(), hop);
    }

    /// Marks a query as failed before its deadline (for example when it could not be sent).
    pub fn on_timeout(&mut self, from: &NodeId) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.node.id == *from)
            && c.status != Status::Responded
        {
            c.status = Status::Failed;
        }
    }

    /// The earliest query deadline, when queries are in flight.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.candidates
            .iter()
            .filter_map(|c| match c.status {
                Status::InFlight(d) => Some(d),
                _ => None,
            })
            .min()
    }

    /// The closest nodes that answered, closest first (at most `k`).
    pub fn result(&self) -> Vec<Node> {
        self.candidates
            .iter()
            .filter(|c| c.status == Status::Responded)
            .take(K)
            .map(|c| c.node)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn nodes(rng: &mut StdRng, n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| {
                let mut id = [0u8; 64];
                rng.fill(&mut id[..]);
                Node {
                    id: NodeId(id),
                    ip: [10, 0, (i / 256) as u8, i as u8].into(),
                    udp: 1,
                    tcp: 1,
                }
            })
            .collect()
    }

    fn closest(all: &[Node], target: &NodeId, n: usize) -> Vec<Node> {
        let t = target.hash();
        let mut v = all.to_vec();
        v.sort_by(|a, b| distance_cmp(&t, &a.id.hash(), &b.id.hash()));
        v.truncate(n);
        v
    }

    /// Every node knows everyone; answers return the 16 closest to the target.
    #[test]
    fn converges_to_true_closest() {
        let mut rng = StdRng::seed_from_u64(7);
        let all = nodes(&mut rng, 300);
        let target = nodes(&mut rng, 1)[0].id;
        let local = NodeId([0; 64]);
        let now = Instant::now();
        let mut l = Lookup::new(local, target, all[..3].to_vec(), Duration::from_secs(1));
        let mut rounds = 0;
        loop {
            let mut asked = Vec::new();
            loop {
                match l.next(now) {
                    State::Query(n) => asked.push(n),
                    State::Waiting => break,
                    State::Finished => {
                        assert_eq!(l.result(), closest(&all, &target, K));
                        assert!(rounds < 20 && l.queries() < 60, "{rounds} {}", l.queries());
                        return;
                    }
                }
            }
            assert!(asked.len() <= ALPHA);
            for n in asked {
                // Each node answers from its own (full) view, so answers are exact.
                let _ = n;
                l.on_response(&n.id, &closest(&all, &target, K));
            }
            rounds += 1;
        }
    }

    #[test]
    fn timeouts_fail_over() {
        let mut rng = StdRng::seed_from_u64(8);
        let all = nodes(&mut rng, 40);
        let target = all[0].id;
        let mut now = Instant::now();
        let mut l = Lookup::new(NodeId([0; 64]), target, all.clone(), Duration::from_secs(1));
        let first: Vec<Node> = (0..ALPHA)
            .map(|_| match l.next(now) {
                State::Query(n) => n,
                s => panic!("{s:?}"),
            })
            .collect();
        assert_eq!(l.next(now), State::Waiting, "alpha bound");
        assert_eq!(l.next_deadline(), Some(now + Duration::from_secs(1)));
        now += Duration::from_secs(1);
        // All three timed out: three new queries go out.
        for _ in 0..ALPHA {
            assert!(matches!(l.next(now), State::Query(n) if !first.contains(&n)));
        }
        // Everybody else times out too: the lookup finishes with no result.
        for _ in 0..40 {
            now += Duration::from_secs(1);
            while let State::Query(_) = l.next(now) {}
        }
        assert_eq!(l.next(now), State::Finished);
        assert!(l.result().is_empty());
        // A late answer from a failed node would still have counted.
        let mut l = Lookup::new(
            NodeId([0; 64]),
            target,
            all[..1].to_vec(),
            Duration::from_secs(1),
        );
        assert!(matches!(l.next(now), State::Query(_)));
        l.on_timeout(&all[0].id);
        l.on_response(&all[0].id, &[]);
        assert_eq!(l.next(now), State::Finished);
        assert_eq!(l.result(), vec![all[0]]);
    }
}
