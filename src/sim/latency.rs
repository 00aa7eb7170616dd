//! Where simulated nodes live and how far apart they are: a world of ten regions with an
//! inter-region round-trip-time matrix and each region's share of Ethereum nodes.
//!
//! # Sources
//!
//! - **RTTs** are the median round-trip times between AWS regions as published by
//!   cloudping.co (<https://www.cloudping.co/grid>, "p50, 1 day" view) and consistent with
//!   WonderNetwork's city-to-city pings (<https://wondernetwork.com/pings>), rounded to 5 ms.
//!   They were transcribed from memory of those tables while writing this module (December
//!   2026; the sites are not reachable from the build machine), so they are accurate to
//!   perhaps ±15 %, which is below the spread that home connections add in practice. Each
//!   region stands for one AWS region (named in [`Region::name`]). Cross-checked against a
//!   published table of average inter-region pings ("Latency Between AWS Global Regions",
//!   reproduced in "AWS Regions", acomputerscientistlearnsaws.blogspot.com, April 2017):
//!   N. Virginia to Frankfurt 88.7 ms (here 90), to Tokyo 145 (145), to Singapore 217
//!   (215), to São Paulo 120 (115); Tokyo to Singapore 74 (70), to Sydney 104 (105);
//!   Frankfurt to São Paulo 195 (200). Routes that have improved since 2017 differ more
//!   (N. Virginia to Sydney 230 then, 195 here; Frankfurt to Singapore 326 then, 160 here).
//! - **Node shares** follow the country split of Ethereum execution-layer nodes shown by
//!   ethernodes.org and nodewatch-style crawlers in 2023–2024 (United States about a third,
//!   Germany the largest European country, then the rest of Western Europe, East Asia and
//!   Singapore), grouped into the ten regions and rounded to whole percent.
//! - **Intra-region** RTT is 10 ms: two nodes in one region are rarely in one data centre.
//!
//! One-way latency is half the RTT times `1 + U[0, JITTER)`: a small, documented jitter so
//! that ties between equally distant peers are broken the way they are in the real world
//! (by noise), not by event insertion order.

use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

/// Index of a region in a [`Regions`] table.
pub type RegionId = usize;

/// Relative jitter on every one-way delay: up to +10 %. Public RTT medians hide a spread of
/// about this much between the p50 and p90 of one pair of regions (cloudping's p90 view).
pub const JITTER: f64 = 0.10;

/// Round-trip time between two nodes in the same region, in milliseconds.
const INTRA_RTT_MS: u32 = 10;

/// One region: a name and its share of the nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    /// Short name with the AWS region it stands for, e.g. `"eu-central (Frankfurt)"`.
    pub name: &'static str,
    /// Share of nodes placed here, in percent (the shares need not sum to 100; they are
    /// normalised).
    pub share: u32,
}

/// A set of regions with a symmetric RTT matrix in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Regions {
    regions: Vec<Region>,
    /// `rtt_ms[a][b]`, symmetric, diagonal = intra-region RTT.
    rtt_ms: Vec<Vec<u32>>,
}

/// Region names of [`Regions::default_world`], in matrix order.
const WORLD: [(&str, u32); 10] = [
    ("na-east (N. Virginia)", 22),
    ("na-west (Oregon)", 14),
    ("sa (Sao Paulo)", 2),
    ("eu-west (London)", 14),
    ("eu-central (Frankfurt)", 24),
    ("af (Cape Town)", 1),
    ("as-south (Mumbai)", 2),
    ("as-southeast (Singapore)", 7),
    ("as-northeast (Tokyo)", 11),
    ("oc (Sydney)", 3),
];

/// Upper triangle of the world's RTT matrix in ms (row a, columns a+1..), see the module
/// docs for the source.
const WORLD_RTT: [&[u32]; 9] = [
    // na-east to: na-west sa eu-west eu-central af as-south as-se as-ne oc
    &[65, 115, 75, 90, 225, 185, 215, 145, 195],
    // na-west to: sa eu-west eu-central af as-south as-se as-ne oc
    &[175, 130, 145, 275, 215, 165, 100, 140],
    // sa to: eu-west eu-central af as-south as-se as-ne oc
    &[185, 200, 340, 300, 325, 255, 310],
    // eu-west to: eu-central af as-south as-se as-ne oc
    &[15, 155, 115, 170, 210, 265],
    // eu-central to: af as-south as-se as-ne oc
    &[155, 120, 160, 225, 250],
    // af to: as-south as-se as-ne oc
    &[270, 300, 355, 410],
    // as-south to: as-se as-ne oc
    &[60, 125, 150],
    // as-se to: as-ne oc
    &[70, 90],
    // as-ne to: oc
    &[105],
];

impl Regions {
    /// The ten-region world of the module docs.
    pub fn default_world() -> Self {
        let n = WORLD.len();
        let mut rtt_ms = vec![vec![INTRA_RTT_MS; n]; n];
        for (a, row) in WORLD_RTT.iter().enumerate() {
            for (i, &ms) in row.iter().enumerate() {
                let b = a + 1 + i;
                rtt_ms[a][b] = ms;
                rtt_ms[b][a] = ms;
            }
        }
        let regions = WORLD
            .iter()
            .map(|&(name, share)| Region { name, share })
            .collect();
        Regions { regions, rtt_ms }
    }

    /// A single region with the given RTT between any two nodes (for tests and for
    /// isolating bandwidth effects from geography).
    pub fn uniform(rtt: Duration) -> Self {
        Regions {
            regions: vec![Region {
                name: "uniform",
                share: 100,
            }],
            rtt_ms: vec![vec![rtt.as_millis().min(u32::MAX as u128) as u32]],
        }
    }

    /// The regions, in matrix order.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Median round-trip time between two regions (no jitter).
    pub fn rtt(&self, a: RegionId, b: RegionId) -> Duration {
        Duration::from_millis(u64::from(self.rtt_ms[a][b]))
    }

    /// Draws a region by node share.
    pub fn assign(&self, rng: &mut StdRng) -> RegionId {
        let total: u32 = self.regions.iter().map(|r| r.share).sum();
        if total == 0 {
            return 0;
        }
        let mut x = rng.random_range(0..total);
        for (i, r) in self.regions.iter().enumerate() {
            if x < r.share {
                return i;
            }
            x -= r.share;
        }
        self.regions.len() - 1
    }

    /// One-way delay from `a` to `b`: half the RTT with up to [`JITTER`] added.
    pub fn one_way(&self, a: RegionId, b: RegionId, rng: &mut StdRng) -> Duration {
        let half = self.rtt(a, b).as_secs_f64() / 2.0;
        Duration::from_secs_f64(half * (1.0 + rng.random::<f64>() * JITTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn world_matrix_is_symmetric_and_plausible() {
        let w = Regions::default_world();
        let n = w.regions().len();
        assert_eq!(n, 10);
        for a in 0..n {
            assert_eq!(w.rtt(a, a), Duration::from_millis(10));
            for b in 0..n {
                assert_eq!(w.rtt(a, b), w.rtt(b, a));
                if a != b {
                    let ms = w.rtt(a, b).as_millis();
                    assert!((10..=450).contains(&ms), "{a}-{b}: {ms} ms");
                }
            }
        }
        // London-Frankfurt is short, Cape Town-Sydney is the longest.
        assert!(w.rtt(3, 4) < w.rtt(0, 1));
        assert_eq!(w.rtt(5, 9), Duration::from_millis(410));
    }

    #[test]
    fn assign_follows_shares() {
        let w = Regions::default_world();
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = vec![0u32; w.regions().len()];
        for _ in 0..100_000 {
            counts[w.assign(&mut rng)] += 1;
        }
        // eu-central (24 %) gets about 24,000 of 100,000; af (1 %) about 1,000.
        assert!((22_500..25_500).contains(&counts[4]), "{counts:?}");
        assert!((700..1_300).contains(&counts[5]), "{counts:?}");
    }

    #[test]
    fn one_way_is_half_rtt_plus_bounded_jitter() {
        let w = Regions::default_world();
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..1000 {
            let d = w.one_way(0, 4, &mut rng).as_secs_f64();
            assert!((0.045..=0.045 * (1.0 + JITTER)).contains(&d), "{d}");
        }
    }
}
