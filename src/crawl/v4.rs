//! Liveness checks over discovery v4, sans-IO: ping (an endpoint proof both ways), then
//! ENRRequest (EIP-868) for the current record.
//!
//! The remote answers an ENRRequest only from a node it has a fresh endpoint proof of,
//! which it gets by pinging us back after our ping: so the request waits
//! [`ENR_DELAY`] after the Pong (go-ethereum's `ensureBond` waits for that ping too), and
//! is sent once more if the first is lost.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use discovery::{Enr, Node, NodeId};

/// Wait after a Pong before the ENRRequest, for the remote's ping back to be answered:
/// a round trip on any sane path (discv4's own request timeout is 500 ms).
pub const ENR_DELAY: Duration = Duration::from_millis(300);
/// Wait for an ENRResponse before retrying or giving up: discv4's request timeout.
pub const ENR_TIMEOUT: Duration = Duration::from_millis(500);
/// ENRRequests per check: one retry covers a request that raced the remote's bonding.
const ENR_TRIES: u8 = 2;
/// A ping with no Pong nor failure reported by the protocol this long is given up
/// (the protocol reports a failure after its 500 ms request timeout).
const PING_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug)]
enum State {
    Pinging { deadline: Instant },
    Waiting { at: Instant },
    Requested { deadline: Instant, tries: u8 },
}

/// What the driver must do for the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Ping the node (`Protocol::ping`).
    Ping(Node),
    /// Ask it for its record (`Protocol::request_enr`).
    RequestEnr(Node),
    /// The check is over: the node's record, or `None`.
    Done(NodeId, Option<Enr>),
}

/// The checks in flight (bounded by the crawl core's `max_checks`).
#[derive(Default)]
pub struct Checks {
    pending: HashMap<NodeId, (Node, State)>,
    steps: Vec<Step>,
}

impl Checks {
    /// Starts checking `node`.
    pub fn start(&mut self, now: Instant, node: Node) {
        if self.pending.contains_key(&node.id) {
            return;
        }
        let deadline = now + PING_DEADLINE;
        self.pending
            .insert(node.id, (node, State::Pinging { deadline }));
        self.steps.push(Step::Ping(node));
    }

    /// Checks in flight.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether none is in flight.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The protocol bonded with `id` (`Event::Bonded`).
    pub fn on_bonded(&mut self, now: Instant, id: &NodeId) {
        if let Some((_, s @ State::Pinging { .. })) = self.pending.get_mut(id) {
            *s = State::Waiting {
                at: now + ENR_DELAY,
            };
        }
    }

    /// A ping to `id` went unanswered (`Event::PingFailed`).
    pub fn on_ping_failed(&mut self, id: &NodeId) {
        if let Some((_, State::Pinging { .. })) = self.pending.get(id) {
            self.pending.remove(id);
            self.steps.push(Step::Done(*id, None));
        }
    }

    /// A record arrived (`Event::Enr`: the protocol matched it to our request and its
    /// sender's id).
    pub fn on_enr(&mut self, enr: Enr) {
        let id = enr.node_id();
        if self.pending.remove(&id).is_some() {
            self.steps.push(Step::Done(id, Some(enr)));
        }
    }

    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut done = Vec::new();
        for (id, (node, state)) in &mut self.pending {
            match *state {
                State::Pinging { deadline } if now >= deadline => done.push(*id),
                State::Waiting { at } if now >= at => {
                    *state = State::Requested {
                        deadline: now + ENR_TIMEOUT,
                        tries: 1,
                    };
                    self.steps.push(Step::RequestEnr(*node));
                }
                State::Requested { deadline, tries } if now >= deadline => {
                    if tries < ENR_TRIES {
                        *state = State::Requested {
                            deadline: now + ENR_TIMEOUT,
                            tries: tries + 1,
                        };
                        self.steps.push(Step::RequestEnr(*node));
                    } else {
                        done.push(*id);
                    }
                }
                _ => {}
            }
        }
        for id in done {
            self.pending.remove(&id);
            self.steps.push(Step::Done(id, None));
        }
    }

    /// The earliest timer.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|(_, s)| match *s {
                State::Pinging { deadline } | State::Requested { deadline, .. } => deadline,
                State::Waiting { at } => at,
            })
            .min()
    }

    /// The steps produced so far, oldest first.
    pub fn drain_steps(&mut self) -> Vec<Step> {
        std::mem::take(&mut self.steps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Enr {
        let key = secp256k1::SecretKey::from_byte_array([9; 32]).unwrap();
        discovery::enr::Builder::new()
            .ip([10, 0, 0, 1].into())
            .udp(1)
            .build(1, &key)
            .unwrap()
    }

    #[test]
    fn ping_then_delayed_enr_request_with_one_retry() {
        let now = Instant::now();
        let enr = record();
        let node = enr.to_node().unwrap();
        let mut c = Checks::default();
        c.start(now, node);
        assert_eq!(c.drain_steps(), vec![Step::Ping(node)]);
        c.on_bonded(now, &node.id);
        c.handle_timeout(now);
        assert!(
            c.drain_steps().is_empty(),
            "waits for the remote's ping back"
        );
        let t = c.next_timeout().unwrap();
        assert_eq!(t, now + ENR_DELAY);
        c.handle_timeout(t);
        assert_eq!(c.drain_steps(), vec![Step::RequestEnr(node)]);
        let t = c.next_timeout().unwrap();
        c.handle_timeout(t);
        assert_eq!(c.drain_steps(), vec![Step::RequestEnr(node)], "one retry");
        c.on_enr(enr.clone());
        assert_eq!(c.drain_steps(), vec![Step::Done(node.id, Some(enr))]);
        assert!(c.is_empty());

        c.start(now, node);
        c.on_bonded(now, &node.id);
        for _ in 0..3 {
            if let Some(t) = c.next_timeout() {
                c.handle_timeout(t);
            }
        }
        let steps = c.drain_steps();
        assert_eq!(steps.last(), Some(&Step::Done(node.id, None)), "{steps:?}");
        c.start(now, node);
        c.on_ping_failed(&node.id);
        assert_eq!(c.drain_steps().last(), Some(&Step::Done(node.id, None)));
    }
}
