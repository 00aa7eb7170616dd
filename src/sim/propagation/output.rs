//! What a propagation run measured, as per-item figures, CSV files, SVG plots and the
//! stdout table.

use std::path::Path;
use std::time::Duration;

use super::engine::Outcome;
use crate::sim::report::{self, CdfSeries, Csv, Error, f3};

/// Figures of one block or transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Index (block number, or transaction index).
    pub index: usize,
    /// The node that created it.
    pub origin: u32,
    /// Nodes it should reach: honest ones online at its creation.
    pub population: usize,
    /// Delay from creation to arrival, in seconds, at each node of the population it
    /// reached, sorted.
    pub delays: Vec<f64>,
    /// Seconds until 50 %, 95 % and 100 % of the population had it (`None`: never).
    pub t: [Option<f64>; 3],
    /// Full copies beyond the first, per node of the population.
    pub dup_per_node: f64,
    /// Announcements received, per node of the population.
    pub ann_per_node: f64,
    /// Bytes of all messages about it, per node (all nodes).
    pub bytes_per_node: f64,
}

impl Item {
    /// Share of the population it reached.
    pub fn reached(&self) -> f64 {
        self.delays.len() as f64 / self.population.max(1) as f64
    }
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Strategy name.
    pub strategy: &'static str,
    /// Per block.
    pub blocks: Vec<Item>,
    /// Per gossiped transaction.
    pub txs: Vec<Item>,
    /// The run itself.
    pub outcome: Outcome,
}

/// Means of a set of items.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Means {
    /// Mean share reached.
    pub reached: f64,
    /// Mean time to 50/95/100 % over the items where it happened, and how many items
    /// never got there.
    pub t: [(Option<f64>, usize); 3],
    /// Mean duplicate full copies per node.
    pub dup: f64,
    /// Mean announcements per node.
    pub ann: f64,
    /// Mean bytes per node per item.
    pub bytes: f64,
}

/// Means over `items`.
pub fn means(items: &[Item]) -> Means {
    let n = items.len().max(1) as f64;
    let avg = |f: &dyn Fn(&Item) -> f64| items.iter().map(f).sum::<f64>() / n;
    let t = [0, 1, 2].map(|i| {
        let got: Vec<f64> = items.iter().filter_map(|x| x.t[i]).collect();
        let mean = (!got.is_empty()).then(|| got.iter().sum::<f64>() / got.len() as f64);
        (mean, items.len() - got.len())
    });
    Means {
        reached: avg(&|x| x.reached()),
        t,
        dup: avg(&|x| x.dup_per_node),
        ann: avg(&|x| x.ann_per_node),
        bytes: avg(&|x| x.bytes_per_node),
    }
}

#[allow(clippy::too_many_arguments)]
fn item(
    index: usize,
    (created, origin): (Duration, u32),
    arrival: &[Option<Duration>],
    full: &[u32],
    ann: &[u32],
    bytes: u64,
    counts: impl Fn(usize) -> bool,
) -> Item {
    let pop: Vec<usize> = (0..arrival.len()).filter(|&i| counts(i)).collect();
    let mut delays: Vec<f64> = pop
        .iter()
        .filter_map(|&i| arrival[i])
        .map(|a| a.saturating_sub(created).as_secs_f64())
        .collect();
    delays.sort_by(f64::total_cmp);
    let population = pop.len();
    let t = [0.5, 0.95, 1.0].map(|p| {
        let k = ((p * population as f64).ceil() as usize).max(1);
        delays.get(k - 1).copied()
    });
    let per =
        |f: &dyn Fn(usize) -> f64| pop.iter().map(|&i| f(i)).sum::<f64>() / pop.len().max(1) as f64;
    Item {
        index,
        origin,
        population,
        delays,
        t,
        dup_per_node: per(&|i| f64::from(full[i].saturating_sub(1))),
        ann_per_node: per(&|i| f64::from(ann[i])),
        bytes_per_node: bytes as f64 / arrival.len().max(1) as f64,
    }
}

/// The per-item figures of a run.
pub fn summarize(o: Outcome) -> Summary {
    let honest = |i: usize| !o.hostile[i];
    let blocks = (1..o.block_created.len())
        .map(|b| {
            let online = &o.block_online[b];
            item(
                b,
                o.block_created[b],
                &o.block_arrival[b],
                &o.block_full[b],
                &o.block_ann[b],
                o.block_bytes[b],
                |i| honest(i) && online[i],
            )
        })
        .collect();
    let txs = (0..o.tx_created.len())
        .map(|t| {
            item(
                t,
                o.tx_created[t],
                &o.tx_arrival[t],
                &o.tx_full[t],
                &o.tx_ann[t],
                o.tx_bytes[t],
                |i| honest(i) && o.tx_online[t][i],
            )
        })
        .collect();
    Summary {
        strategy: o.strategy.name(),
        blocks,
        txs,
        outcome: o,
    }
}

fn ms(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |s| format!("{:.0}", s * 1000.0))
}

/// The stdout table: one row per strategy and kind (means over the items).
pub fn table(runs: &[Summary]) -> String {
    let header = [
        "strategy", "kind", "items", "reached%", "p50_ms", "p95_ms", "p100_ms", "never100",
        "dup/node", "ann/node", "KB/node",
    ];
    let mut rows = Vec::new();
    for s in runs {
        for (kind, items) in [("block", &s.blocks), ("tx", &s.txs)] {
            if items.is_empty() {
                continue;
            }
            let m = means(items);
            rows.push(vec![
                s.strategy.to_string(),
                kind.to_string(),
                items.len().to_string(),
                format!("{:.1}", 100.0 * m.reached),
                ms(m.t[0].0),
                ms(m.t[1].0),
                ms(m.t[2].0),
                m.t[2].1.to_string(),
                format!("{:.2}", m.dup),
                format!("{:.2}", m.ann),
                format!("{:.1}", m.bytes / 1024.0),
            ]);
        }
    }
    report::table(&header, &rows)
}

/// The target, if both `sqrt` and `flood` ran: √n reaches 95 % of nodes within
/// 1.2× flooding's time with at most 1/4 of its bytes (blocks). Returns the verdict text.
pub fn target(runs: &[Summary]) -> Option<String> {
    let get = |name| runs.iter().find(|s| s.strategy == name);
    let (sqrt, flood) = (get("sqrt")?, get("flood")?);
    let (a, b) = (means(&sqrt.blocks), means(&flood.blocks));
    let (ta, tb) = (a.t[1].0?, b.t[1].0?);
    let (time, bytes) = (ta / tb, a.bytes / b.bytes.max(1.0));
    let ok = time <= 1.2 && bytes <= 0.25;
    Some(format!(
        "target (blocks): sqrt p95 {:.0} ms = {:.2}x flood's {:.0} ms (<= 1.2x: {}), bytes/node {:.2}x flood's (<= 0.25x: {}) -> {}",
        ta * 1000.0,
        time,
        tb * 1000.0,
        if time <= 1.2 { "yes" } else { "no" },
        bytes,
        if bytes <= 0.25 { "yes" } else { "no" },
        if ok { "MET" } else { "NOT MET" },
    ))
}

fn items_csv(runs: &[Summary], kind: &str, pick: fn(&Summary) -> &Vec<Item>) -> Csv {
    let mut c = Csv::new(&[
        "strategy",
        kind,
        "origin",
        "population",
        "reached",
        "t50_s",
        "t95_s",
        "t100_s",
        "dup_per_node",
        "ann_per_node",
        "bytes_per_node",
    ]);
    let opt = |x: Option<f64>| x.map_or_else(String::new, f3);
    for s in runs {
        for it in pick(s) {
            c.row([
                s.strategy.to_string(),
                it.index.to_string(),
                it.origin.to_string(),
                it.population.to_string(),
                it.delays.len().to_string(),
                opt(it.t[0]),
                opt(it.t[1]),
                opt(it.t[2]),
                f3(it.dup_per_node),
                f3(it.ann_per_node),
                format!("{:.0}", it.bytes_per_node),
            ]);
        }
    }
    c
}

/// Pooled CDF of the arrival delays of `items` (fractions of the summed populations).
fn pooled(name: &str, items: &[Item]) -> CdfSeries {
    CdfSeries {
        name: name.to_string(),
        values: items
            .iter()
            .flat_map(|i| i.delays.iter().copied())
            .collect(),
        total: items.iter().map(|i| i.population).sum(),
    }
}

/// Writes the CSV files and SVG plots of `runs` to `dir`, returning the file names.
pub fn write_outputs(dir: &Path, runs: &[Summary]) -> Result<Vec<String>, Error> {
    let mut files = Vec::new();
    let mut put = |name: &str, text: &str| -> Result<(), Error> {
        report::write(dir, name, text)?;
        files.push(name.to_string());
        Ok(())
    };
    put(
        "blocks.csv",
        items_csv(runs, "block", |s| &s.blocks).as_str(),
    )?;
    put("txs.csv", items_csv(runs, "tx", |s| &s.txs).as_str())?;
    // Arrival delay by percentile of the nodes, pooled over items: the CDFs as numbers.
    let mut cdf = Csv::new(&["strategy", "kind", "percent", "delay_s"]);
    for s in runs {
        for (kind, items) in [("block", &s.blocks), ("tx", &s.txs)] {
            let p = pooled("", items);
            let mut v = p.values.clone();
            v.sort_by(f64::total_cmp);
            for pct in 1..=100 {
                let k = ((pct as f64 / 100.0) * p.total as f64).ceil() as usize;
                let d = v.get(k.max(1) - 1).map_or_else(String::new, |x| f3(*x));
                c_row(
                    &mut cdf,
                    [s.strategy.into(), kind.into(), pct.to_string(), d],
                );
            }
        }
    }
    put("cdf.csv", cdf.as_str())?;
    let mut nodes = Csv::new(&[
        "strategy",
        "node",
        "region",
        "upload_mbit",
        "hostile",
        "bytes_sent",
        "bytes_received",
        "msgs_sent",
        "msgs_received",
    ]);
    for s in runs {
        let o = &s.outcome;
        for (i, st) in o.stats.iter().enumerate() {
            nodes.row([
                s.strategy.to_string(),
                i.to_string(),
                o.region[i].to_string(),
                format!("{:.1}", o.upload[i] as f64 * 8.0 / 1e6),
                u8::from(o.hostile[i]).to_string(),
                st.bytes_sent.to_string(),
                st.bytes_received.to_string(),
                st.msgs_sent.to_string(),
                st.msgs_received.to_string(),
            ]);
        }
    }
    put("nodes.csv", nodes.as_str())?;
    let mut sum = Csv::new(&[
        "strategy",
        "kind",
        "reached",
        "t50_s",
        "t95_s",
        "t100_s",
        "never_100",
        "dup_per_node",
        "ann_per_node",
        "bytes_per_node",
    ]);
    for s in runs {
        for (kind, items) in [("block", &s.blocks), ("tx", &s.txs)] {
            let m = means(items);
            let opt = |x: Option<f64>| x.map_or_else(String::new, f3);
            sum.row([
                s.strategy.to_string(),
                kind.to_string(),
                f3(m.reached),
                opt(m.t[0].0),
                opt(m.t[1].0),
                opt(m.t[2].0),
                m.t[2].1.to_string(),
                f3(m.dup),
                f3(m.ann),
                format!("{:.0}", m.bytes),
            ]);
        }
    }
    put("summary.csv", sum.as_str())?;

    let series = |pick: fn(&Summary) -> &Vec<Item>| -> Vec<CdfSeries> {
        runs.iter().map(|s| pooled(s.strategy, pick(s))).collect()
    };
    let svg = report::cdf(
        "Block arrival: share of nodes that imported the block",
        "seconds after the block was produced",
        &series(|s| &s.blocks),
    )?;
    put("block_cdf.svg", &svg)?;
    let svg = report::cdf(
        "Transaction arrival: share of nodes that pooled the transaction",
        "seconds after the transaction was created",
        &series(|s| &s.txs),
    )?;
    put("tx_cdf.svg", &svg)?;
    let node_bytes: Vec<CdfSeries> = runs
        .iter()
        .map(|s| CdfSeries {
            name: s.strategy.to_string(),
            values: s
                .outcome
                .stats
                .iter()
                .map(|st| st.bytes_sent as f64 / 1e6)
                .collect(),
            total: s.outcome.stats.len(),
        })
        .collect();
    let svg = report::cdf("Bytes sent per node (whole run)", "MB sent", &node_bytes)?;
    put("node_bytes_cdf.svg", &svg)?;
    let mut bytes = Vec::new();
    let mut dups = Vec::new();
    for s in runs {
        let (b, t) = (means(&s.blocks), means(&s.txs));
        bytes.push((format!("{} (block)", s.strategy), b.bytes / 1024.0));
        dups.push((format!("{} (block)", s.strategy), b.dup));
        if !s.txs.is_empty() {
            bytes.push((format!("{} (tx)", s.strategy), t.bytes / 1024.0));
            dups.push((format!("{} (tx)", s.strategy), t.dup));
        }
    }
    let svg = report::bars("Traffic per node per item", "KiB per node", &bytes)?;
    put("bytes_per_node.svg", &svg)?;
    let svg = report::bars(
        "Duplicate full copies per node",
        "copies beyond the first",
        &dups,
    )?;
    put("duplicates.svg", &svg)?;
    Ok(files)
}

fn c_row(c: &mut Csv, fields: [String; 4]) {
    c.row(fields);
}
