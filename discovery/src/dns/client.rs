//! The sans-IO tree client: which TXT name to query next, what an answer means.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tracing::debug;

use super::tree::{self, Entry, Root, TreeUrl};
use super::{Config, Error};
use crate::enr::Enr;

/// What the client reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A verified node record from the ENR subtree of `domain`. Records are reported on
    /// every sync of their tree, from the cache when unchanged.
    Enr {
        /// The tree's domain.
        domain: String,
        /// The record.
        enr: Enr,
    },
    /// A sync of `domain` finished: every reachable entry was resolved or given up.
    Synced {
        /// The tree's domain.
        domain: String,
        /// The root's sequence number.
        seq: u64,
    },
    /// A record or lookup of `domain` was rejected; the sync goes on without it.
    Error {
        /// The tree's domain.
        domain: String,
        /// What went wrong.
        error: Error,
    },
}

/// An entry to resolve.
#[derive(Clone, Debug)]
struct Item {
    hash: String,
    /// In the link subtree (else the ENR subtree).
    link: bool,
    depth: usize,
    attempts: u32,
}

/// One walk of a tree from a verified root.
struct Sync {
    root: Root,
    pending: Vec<Item>,
    /// Hashes met in this walk: a second meeting is a loop.
    seen: HashSet<String>,
    links: BTreeSet<TreeUrl>,
    in_flight: usize,
    /// Failed lookups wait until then.
    retry_at: Option<Instant>,
}

struct Tree {
    url: TreeUrl,
    /// Given by the user; other trees live while a link leads to them.
    pinned: bool,
    /// The last verified root.
    root: Option<Root>,
    /// When the root is due (unless a sync runs).
    next_check: Instant,
    root_in_flight: bool,
    failures: u32,
    sync: Option<Sync>,
    /// Verified entries by hash: an update re-fetches only hashes not in here.
    cache: HashMap<String, Entry>,
    links: BTreeSet<String>,
}

enum Query {
    Root(String),
    Entry(String, Item),
}

/// Resolves DNS node lists; see the [module docs](super). Call [`Client::poll_query`] until
/// `None` and look each name up (TXT), feed answers to [`Client::on_answer`], drain
/// [`Client::poll_event`], and call `poll_query` again at [`Client::next_timeout`].
pub struct Client {
    config: Config,
    trees: Vec<Tree>,
    in_flight: HashMap<String, Query>,
    window_start: Instant,
    window_used: u32,
    cached: usize,
    events: VecDeque<Event>,
    rng: StdRng,
}

impl Client {
    /// A client for the lists at `urls`, with randomness from the OS.
    pub fn new(urls: Vec<TreeUrl>, config: Config, now: Instant) -> Self {
        Self::with_seed(urls, config, now, rand::rng().random())
    }

    /// A client whose traversal order comes from `seed` (tests).
    pub fn with_seed(urls: Vec<TreeUrl>, config: Config, now: Instant, seed: u64) -> Self {
        let mut c = Client {
            config,
            trees: Vec::new(),
            in_flight: HashMap::new(),
            window_start: now,
            window_used: 0,
            cached: 0,
            events: VecDeque::new(),
            rng: StdRng::seed_from_u64(seed),
        };
        for url in urls {
            c.add_tree(url, true, now);
        }
        c
    }

    fn add_tree(&mut self, url: TreeUrl, pinned: bool, now: Instant) {
        if let Some(t) = self.trees.iter_mut().find(|t| t.url.domain == url.domain) {
            t.pinned |= pinned;
            return;
        }
        if self.trees.len() >= self.config.max_trees {
            self.error(&url.domain, Error::TooManyTrees);
            return;
        }
        self.trees.push(Tree {
            url,
            pinned,
            root: None,
            next_check: now,
            root_in_flight: false,
            failures: 0,
            sync: None,
            cache: HashMap::new(),
            links: BTreeSet::new(),
        });
    }

    /// The next TXT name to look up, or `None` until an answer arrives or
    /// [`Client::next_timeout`] passes. Entries already cached are walked here, so events
    /// may be ready afterwards even when it returns `None`.
    pub fn poll_query(&mut self, now: Instant) -> Option<String> {
        if now >= self.window_start + self.config.query_window {
            self.window_start = now;
            self.window_used = 0;
        }
        for i in 0..self.trees.len() {
            self.walk_cached(i, now);
        }
        if self.in_flight.len() >= self.config.max_in_flight
            || self.window_used >= self.config.queries_per_window
        {
            return None;
        }
        let (name, query) = self.next_query(now)?;
        self.window_used += 1;
        self.in_flight.insert(name.clone(), query);
        Some(name)
    }

    fn next_query(&mut self, now: Instant) -> Option<(String, Query)> {
        // Start at a random tree so one large tree does not starve the others.
        let n = self.trees.len();
        let start = if n == 0 {
            0
        } else {
            self.rng.random_range(0..n)
        };
        for k in 0..n {
            let t = &mut self.trees[(start + k) % n];
            let domain = t.url.domain.clone();
            match &mut t.sync {
                None if !t.root_in_flight && t.next_check <= now => {
                    t.root_in_flight = true;
                    return Some((domain.clone(), Query::Root(domain)));
                }
                Some(s) if !s.pending.is_empty() && s.retry_at.is_none_or(|r| r <= now) => {
                    s.retry_at = None;
                    let item = s
                        .pending
                        .swap_remove(self.rng.random_range(0..s.pending.len()));
                    s.in_flight += 1;
                    return Some((
                        format!("{}.{domain}", item.hash),
                        Query::Entry(domain, item),
                    ));
                }
                _ => {}
            }
        }
        None
    }

    /// Resolves the pending items of tree `i` that are in its cache, level by level (each
    /// pass takes every cached item, so a walk costs a pass per tree level).
    fn walk_cached(&mut self, i: usize, now: Instant) {
        loop {
            let t = &mut self.trees[i];
            let Some(s) = t.sync.as_mut() else { return };
            let (hits, misses): (Vec<Item>, Vec<Item>) = std::mem::take(&mut s.pending)
                .into_iter()
                .partition(|it| t.cache.contains_key(&it.hash));
            s.pending = misses;
            if hits.is_empty() {
                break;
            }
            for item in hits {
                let Some(entry) = self.trees[i].cache.get(&item.hash).cloned() else {
                    continue;
                };
                self.process(i, &item, entry);
            }
        }
        self.maybe_finish(i, now);
    }

    /// Hands the answer to a name from [`Client::poll_query`]: the TXT records' texts (each
    /// record's strings joined), or why the lookup failed. Unknown names are ignored.
    pub fn on_answer(&mut self, name: &str, answer: Result<Vec<String>, Error>, now: Instant) {
        let Some(query) = self.in_flight.remove(name) else {
            return;
        };
        match query {
            Query::Root(domain) => self.on_root(&domain, answer, now),
            Query::Entry(domain, item) => self.on_entry(&domain, item, answer, now),
        }
    }

    fn tree_index(&self, domain: &str) -> Option<usize> {
        self.trees.iter().position(|t| t.url.domain == domain)
    }

    fn on_root(&mut self, domain: &str, answer: Result<Vec<String>, Error>, now: Instant) {
        let Some(i) = self.tree_index(domain) else {
            return;
        };
        self.trees[i].root_in_flight = false;
        let root = answer.and_then(|txts| {
            let text = txts
                .iter()
                .find(|t| t.starts_with("enrtree-root:"))
                .ok_or(Error::NoRoot)?;
            let root: Root = text.parse()?;
            root.verify(&self.trees[i].url.key)?;
            Ok(root)
        });
        let t = &mut self.trees[i];
        match root {
            Err(e) => {
                t.failures = t.failures.saturating_add(1);
                let backoff = self.config.retry_delay * 2u32.pow(t.failures.min(10) - 1);
                t.next_check = now + backoff.min(self.config.recheck_interval);
                self.error(domain, e);
            }
            Ok(root) => {
                t.failures = 0;
                if let Some(known) = t.root.as_ref().map(|r| r.seq).filter(|&k| k > root.seq) {
                    t.next_check = now + self.config.recheck_interval;
                    self.error(
                        domain,
                        Error::StaleSeq {
                            known,
                            new: root.seq,
                        },
                    );
                    return;
                }
                debug!(target: "dnsdisc", domain, seq = root.seq, "verified root");
                let item = |hash: &str, link| Item {
                    hash: hash.to_owned(),
                    link,
                    depth: 0,
                    attempts: 0,
                };
                let mut pending = vec![item(&root.e, false)];
                if root.l == root.e {
                    self.events.push_back(Event::Error {
                        domain: domain.to_owned(),
                        error: Error::Loop,
                    });
                } else {
                    pending.push(item(&root.l, true));
                }
                t.sync = Some(Sync {
                    seen: pending.iter().map(|it| it.hash.clone()).collect(),
                    root,
                    pending,
                    links: BTreeSet::new(),
                    in_flight: 0,
                    retry_at: None,
                });
                self.walk_cached(i, now);
            }
        }
    }

    fn on_entry(
        &mut self,
        domain: &str,
        item: Item,
        answer: Result<Vec<String>, Error>,
        now: Instant,
    ) {
        let Some(i) = self.tree_index(domain) else {
            return;
        };
        let Some(s) = self.trees[i].sync.as_mut() else {
            return;
        };
        s.in_flight -= 1;
        let entry = answer.and_then(|txts| {
            let want = tree::decode_hash(&item.hash)?;
            let mut error = Error::HashMismatch;
            for text in &txts {
                if text.len() > tree::MAX_RECORD_LEN {
                    error = Error::RecordTooLarge;
                } else if tree::hash_matches(&want, text) {
                    return text.parse::<Entry>();
                }
            }
            Err(error)
        });
        match entry {
            Err(e @ Error::Lookup(_)) if item.attempts + 1 < self.config.max_attempts => {
                s.retry_at = Some(now + self.config.retry_delay);
                s.pending.push(Item {
                    attempts: item.attempts + 1,
                    ..item
                });
                self.error(domain, e);
            }
            Err(e) => self.error(domain, e),
            Ok(entry) => {
                if self.cached >= self.config.max_entries {
                    self.abort(i, Error::TooManyEntries);
                } else {
                    self.cached += 1;
                    self.trees[i].cache.insert(item.hash.clone(), entry.clone());
                    self.process(i, &item, entry);
                }
            }
        }
        self.walk_cached(i, now);
    }

    /// Acts on a verified entry reached through `item`.
    fn process(&mut self, i: usize, item: &Item, entry: Entry) {
        let domain = self.trees[i].url.domain.clone();
        let Some(s) = self.trees[i].sync.as_mut() else {
            return;
        };
        match entry {
            Entry::Branch(children) => {
                if item.depth >= self.config.max_depth {
                    return self.error(&domain, Error::TooDeep);
                }
                let mut looped = false;
                for hash in children {
                    if !s.seen.insert(hash.clone()) {
                        looped = true;
                        continue;
                    }
                    if s.seen.len() > self.config.max_entries {
                        return self.abort(i, Error::TooManyEntries);
                    }
                    s.pending.push(Item {
                        hash,
                        link: item.link,
                        depth: item.depth + 1,
                        attempts: 0,
                    });
                }
                if looped {
                    self.error(&domain, Error::Loop);
                }
            }
            Entry::Enr(enr) if !item.link => self.events.push_back(Event::Enr { domain, enr }),
            Entry::Enr(_) => self.error(&domain, Error::EnrInLinkTree),
            Entry::Link(url) if item.link => {
                s.links.insert(url);
            }
            Entry::Link(_) => self.error(&domain, Error::LinkInEnrTree),
        }
    }

    /// Stops the sync of tree `i`, keeping what it found; the root is checked again later.
    fn abort(&mut self, i: usize, error: Error) {
        let domain = self.trees[i].url.domain.clone();
        if let Some(s) = self.trees[i].sync.as_mut() {
            s.pending.clear();
        }
        self.error(&domain, error);
    }

    /// Ends the sync of tree `i` once nothing is pending or in flight: drops cached entries
    /// the new tree no longer has, and follows its links.
    fn maybe_finish(&mut self, i: usize, now: Instant) {
        let t = &mut self.trees[i];
        let Some(s) = t.sync.take_if(|s| s.pending.is_empty() && s.in_flight == 0) else {
            return;
        };
        let before = t.cache.len();
        t.cache.retain(|h, _| s.seen.contains(h));
        self.cached -= before - t.cache.len();
        t.next_check = now + self.config.recheck_interval;
        t.links = s.links.iter().map(|u| u.domain.clone()).collect();
        let domain = t.url.domain.clone();
        let seq = s.root.seq;
        t.root = Some(s.root);
        self.events.push_back(Event::Synced { domain, seq });
        for url in s.links {
            self.add_tree(url, false, now);
        }
        self.drop_unlinked();
    }

    /// Forgets trees no longer reachable through links from the given ones.
    fn drop_unlinked(&mut self) {
        let mut live: HashSet<String> = HashSet::new();
        let mut stack: Vec<String> = self
            .trees
            .iter()
            .filter(|t| t.pinned)
            .map(|t| t.url.domain.clone())
            .collect();
        while let Some(d) = stack.pop() {
            if live.insert(d.clone())
                && let Some(t) = self.trees.iter().find(|t| t.url.domain == d)
            {
                stack.extend(t.links.iter().cloned());
            }
        }
        let cached = &mut self.cached;
        self.trees.retain(|t| {
            let keep = live.contains(&t.url.domain);
            if !keep {
                *cached -= t.cache.len();
            }
            keep
        });
    }

    fn error(&mut self, domain: &str, error: Error) {
        debug!(target: "dnsdisc", domain, %error, "rejected");
        self.events.push_back(Event::Error {
            domain: domain.to_owned(),
            error,
        });
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Client::poll_query`] may have a query again without an answer arriving
    /// first; `None` while everything waits on answers.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.in_flight.len() >= self.config.max_in_flight {
            return None;
        }
        let window_end = self.window_start + self.config.query_window;
        let budget_left = self.window_used < self.config.queries_per_window;
        self.trees
            .iter()
            .filter_map(|t| match &t.sync {
                None if t.root_in_flight => None,
                None => Some(t.next_check),
                Some(s) if s.pending.is_empty() => None,
                Some(s) => Some(s.retry_at.unwrap_or(window_end)),
            })
            .map(|at| if budget_left { at } else { at.max(window_end) })
            .min()
    }

    /// The trees followed: the given URLs and those reached through links.
    pub fn trees(&self) -> impl Iterator<Item = &TreeUrl> {
        self.trees.iter().map(|t| &t.url)
    }

    /// Entries cached over all trees.
    pub fn cached_entries(&self) -> usize {
        self.cached
    }
}
