//! Who gets a broadcast in full and who only hears of it (sans-IO: the caller passes
//! the randomness).
//!
//! Sending every new block or transaction in full to every peer would make each node
//! receive it once per peer; only announcing it would add a round trip per hop. The eth
//! spec's compromise ("Block Propagation"; go-ethereum does the same for transactions):
//! the full message to the square root of the peers, chosen at random, an announcement
//! to the rest, who fetch it if no full copy reached them first. Block and transaction
//! broadcast both choose with [`split`].

/// How many of `n` peers get a message in full: ceil(sqrt(n)) (eth spec, "Block
/// Propagation").
pub fn full_count(n: usize) -> usize {
    let r = n.isqrt();
    if r * r == n { r } else { r + 1 }
}

/// Splits the `candidates` (peers that do not know the message) into those that get it
/// in full and those that get an announcement: [`full_count`] of all `n` candidates,
/// chosen uniformly at random among those that `can_take_full` (e.g. NewBlock only goes
/// to eth/68 peers), get it in full; the others, and every candidate that cannot take
/// it in full, are announced. `random` gives uniform `u64`s.
pub fn split<T>(
    candidates: Vec<T>,
    can_take_full: impl Fn(&T) -> bool,
    mut random: impl FnMut() -> u64,
) -> (Vec<T>, Vec<T>) {
    let k = full_count(candidates.len());
    let (mut full, mut announce): (Vec<T>, Vec<T>) =
        candidates.into_iter().partition(can_take_full);
    let k = k.min(full.len());
    // Partial Fisher-Yates: the first `k` are a uniform random choice. The modulo bias
    // is below n / 2^64, nothing for peer counts.
    for i in 0..k {
        let j = i + (random() % (full.len() - i) as u64) as usize;
        full.swap(i, j);
    }
    announce.extend(full.drain(k..));
    (full, announce)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reproducible stream of "random" numbers (xorshift).
    fn rng(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    #[test]
    fn full_count_is_the_ceiling_of_the_square_root() {
        let expect = [0, 1, 2, 2, 2, 3, 3, 3, 3, 3, 4];
        for (n, want) in expect.iter().enumerate() {
            assert_eq!(full_count(n), *want, "n = {n}");
        }
        assert_eq!(full_count(50), 8);
        assert_eq!(full_count(10_000), 100);
        assert_eq!(full_count(10_001), 101);
        assert_eq!(full_count(usize::MAX), 1 << (usize::BITS / 2));
    }

    #[test]
    fn every_candidate_is_reached_once() {
        for n in 0..40usize {
            let (full, announce) = split((0..n).collect(), |_| true, rng(n as u64 + 1));
            assert_eq!(full.len(), full_count(n), "n = {n}");
            assert_eq!(announce.len(), n - full_count(n));
            let mut all: Vec<_> = full.iter().chain(&announce).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..n).collect::<Vec<_>>());
        }
    }

    #[test]
    fn only_those_that_can_take_it_get_it_in_full() {
        // 16 candidates, 4 in full; only the odd ones can take it.
        let (full, announce) = split((0..16).collect(), |i| i % 2 == 1, rng(7));
        assert_eq!(full.len(), 4);
        assert!(full.iter().all(|i| i % 2 == 1), "{full:?}");
        assert_eq!(announce.len(), 12);
        // Fewer able than the fan-out: all of them, the rest announced.
        let (full, announce) = split((0..16).collect(), |&i| i == 3, rng(7));
        assert_eq!((full, announce.len()), (vec![3], 15));
        // None able: everyone is announced.
        let (full, announce) = split((0..9).collect::<Vec<i32>>(), |_| false, rng(7));
        assert_eq!((full.len(), announce.len()), (0, 9));
    }

    #[test]
    fn the_choice_is_spread_over_all_candidates() {
        // 9 candidates, 3 in full per round: over 900 rounds each is chosen ~300 times.
        let mut times = [0u32; 9];
        let mut random = rng(42);
        for _ in 0..900 {
            let (full, _) = split((0..9).collect::<Vec<usize>>(), |_| true, &mut random);
            for i in full {
                times[i] += 1;
            }
        }
        assert!(times.iter().all(|&t| (200..400).contains(&t)), "{times:?}");
    }

    #[test]
    fn the_randomness_decides() {
        let (a, _) = split((0..100).collect::<Vec<u32>>(), |_| true, rng(1));
        let (b, _) = split((0..100).collect::<Vec<u32>>(), |_| true, rng(2));
        let (c, _) = split((0..100).collect::<Vec<u32>>(), |_| true, rng(1));
        assert_ne!(a, b);
        assert_eq!(a, c);
    }
}
