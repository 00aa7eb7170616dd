//! The testnet's results: CSV files, SVG plots, the checks, and the summary on stdout
//! (also written to `summary.txt`).
//!
//! | file | rows |
//! |---|---|
//! | `nodes.csv` | one per node: milestones, last metrics, limits seen, learned address |
//! | `delays.csv` | one per (node, replayed block): delay after the replayer, and the path |
//! | `timeline.csv` | one per poll: nodes with ≥1 peer, ≥ target peers, synced, at the last block |
//! | `soak.csv` | one per (sample, process): RSS, open descriptors, threads |
//! | `peers.svg`, `propagation_cdf.svg`, `bytes.svg`, `soak_rss.svg`, `soak_fds.svg`, `soak_threads.svg` | plots of the above |

use std::fmt::Write as _;
use std::path::Path;

use super::plot::{Series, cdf, lines};
use super::{Error, Run, io};
use crate::sim::report::percentile;

/// Writes the files and prints the summary; returns the number of failed checks.
pub(crate) fn write(run: &Run) -> Result<usize, Error> {
    let out = &run.args.out;
    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let save = |name: &str, text: &str| {
        let p = out.join(name);
        std::fs::write(&p, text).map_err(|e| io(p, e))
    };
    let delays = delays(run);
    save("nodes.csv", &nodes_csv(run, &delays))?;
    let mut csv = String::from("node,block,delay_ms,path\n");
    for d in &delays {
        let _ = writeln!(csv, "{},{},{:.3},{}", d.node, d.block, d.ms, d.path);
    }
    save("delays.csv", &csv)?;
    let mut csv = String::from("t_s,with_peer,at_target_peers,synced,at_last_block\n");
    for (t, c) in &run.timeline {
        let _ = writeln!(csv, "{t:.2},{},{},{},{}", c[0], c[1], c[2], c[3]);
    }
    save("timeline.csv", &csv)?;
    let mut csv = String::from("t_s,node,pid,rss_kib,fds,threads\n");
    for (t, i, pid, s) in &run.soak {
        let _ = writeln!(
            csv,
            "{t:.1},{i},{pid},{},{},{}",
            s.rss_kib, s.fds, s.threads
        );
    }
    save("soak.csv", &csv)?;
    plots(run, &delays, out)?;
    let (summary, failed) = summary(run, &delays);
    print!("{summary}");
    save("summary.txt", &summary)?;
    Ok(failed)
}

/// One node's delay for one replayed block.
pub(crate) struct Delay {
    node: usize,
    block: u64,
    ms: f64,
    /// `gossip` (imported as propagated) or `sync` (caught up by a sync round).
    path: &'static str,
}

fn delays(run: &Run) -> Vec<Delay> {
    let Some(source) = run.blocks.first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (node, b) in run.blocks.iter().enumerate().skip(1) {
        for block in run.preload + 1..=run.last_block {
            let (Some(from), Some(at)) = (source.gossip.get(&block), b.at(block)) else {
                continue;
            };
            let path = if b.gossip.get(&block) == Some(&at) {
                "gossip"
            } else {
                "sync"
            };
            let ms = (at - from) as f64 / 1000.0;
            out.push(Delay {
                node,
                block,
                ms,
                path,
            });
        }
    }
    out
}

fn nodes_csv(run: &Run, delays: &[Delay]) -> String {
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.2}"));
    let mut csv = String::from(
        "node,ip,learned_ip,first_peer_s,target_peers_s,synced_s,last_block_s,head,peers_in,\
         peers_out,max_peers_out,max_inbound_per_subnet,table,max_table,bytes_in,bytes_out,\
         disc_packets_in,disc_packets_out,dials,dials_ok,rejected,too_many_peers,inbound_rejected,\
         gossip_blocks,sync_blocks,delay_p50_ms,delay_max_ms,restarts\n",
    );
    for (i, h) in run.hosts.iter().enumerate() {
        let mut mine: Vec<f64> = (delays.iter())
            .filter(|d| d.node == i && d.path == "gossip")
            .map(|d| d.ms)
            .collect();
        mine.sort_by(f64::total_cmp);
        let synced = delays
            .iter()
            .filter(|d| d.node == i && d.path == "sync")
            .count();
        let s = &h.last;
        let _ = writeln!(
            csv,
            "{i},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            h.addr,
            h.learned_ip.as_deref().unwrap_or(""),
            opt(h.first_peer),
            opt(h.at_target),
            opt(h.synced),
            opt(h.at_head),
            s.head,
            s.peers_in,
            s.peers_out,
            h.max_out,
            h.max_inbound_subnet,
            s.table,
            h.max_table,
            s.bytes_in,
            s.bytes_out,
            s.disc_in,
            s.disc_out,
            s.dials,
            s.dials_ok,
            s.rejected,
            s.too_many,
            s.inbound_rejected,
            mine.len(),
            synced,
            opt(percentile(&mine, 50.0)),
            opt(mine.last().copied()),
            h.restarts,
        );
    }
    csv
}

fn plots(run: &Run, delays: &[Delay], out: &Path) -> Result<(), Error> {
    let save = |name: &str, svg: Result<String, super::plot::PlotError>| {
        let svg = svg.map_err(|e| Error::Plot(e.to_string()))?;
        let p = out.join(name);
        std::fs::write(&p, svg).map_err(|e| io(p, e))
    };
    let line = |k: usize, label: String| Series {
        label,
        points: run
            .timeline
            .iter()
            .map(|(t, c)| (*t, c[k] as f64))
            .collect(),
    };
    let peers = [
        line(0, "≥1 peer".into()),
        line(1, format!("≥{} peers", run.args.target_peers)),
        line(2, format!("synced to block {}", run.preload)),
        line(3, format!("at block {}", run.last_block)),
    ];
    let n = run.hosts.len();
    save(
        "peers.svg",
        lines(
            &format!("{n} namespaced nodes: peers and sync"),
            "seconds since the testnet started",
            "nodes",
            &peers,
        ),
    )?;
    let gossip: Vec<f64> = delays
        .iter()
        .filter(|d| d.path == "gossip")
        .map(|d| d.ms)
        .collect();
    let mut slowest = std::collections::BTreeMap::<u64, f64>::new();
    for d in delays.iter().filter(|d| d.path == "gossip") {
        let e = slowest.entry(d.block).or_insert(d.ms);
        *e = e.max(d.ms);
    }
    let per_block: Vec<f64> = slowest.into_values().collect();
    // The x axis ends at the 99th percentile of all deliveries: a few stragglers of
    // seconds would squeeze the rest into one column (the summary gives the maximum).
    let mut all = gossip.clone();
    all.sort_by(f64::total_cmp);
    let clip = percentile(&all, 99.0).unwrap_or(0.0);
    let upto =
        |v: &[f64]| -> Vec<(f64, f64)> { cdf(v).into_iter().filter(|p| p.0 <= clip).collect() };
    let cdfs = [
        Series {
            label: "each node, each block".into(),
            points: upto(&gossip),
        },
        Series {
            label: "slowest node per block".into(),
            points: upto(&per_block),
        },
    ];
    save(
        "propagation_cdf.svg",
        lines(
            "Block propagation delay after the replaying node (CDF, to the 99th percentile)",
            "milliseconds",
            "share",
            &cdfs,
        ),
    )?;
    let sorted = |f: fn(&super::Host) -> u64| {
        let mut v: Vec<f64> = run.hosts.iter().map(|h| f(h) as f64 / 1024.0).collect();
        v.sort_by(f64::total_cmp);
        v.into_iter()
            .enumerate()
            .map(|(i, b)| (i as f64, b))
            .collect()
    };
    let bytes = [
        Series {
            label: "received".into(),
            points: sorted(|h| h.last.bytes_in),
        },
        Series {
            label: "sent".into(),
            points: sorted(|h| h.last.bytes_out),
        },
    ];
    save(
        "bytes.svg",
        lines(
            "Subprotocol payload per node (sorted)",
            "node rank",
            "KiB",
            &bytes,
        ),
    )?;
    type Pick = fn(&super::measure::ProcStats) -> f64;
    let kinds: [(&str, &str, &str, Pick); 3] = [
        ("soak_rss.svg", "Resident memory per node", "MiB", |s| {
            s.rss_kib as f64 / 1024.0
        }),
        (
            "soak_fds.svg",
            "Open file descriptors per node",
            "descriptors",
            |s| s.fds as f64,
        ),
        ("soak_threads.svg", "Threads per node", "threads", |s| {
            s.threads as f64
        }),
    ];
    for (file, title, unit, pick) in kinds {
        // One line per process (a restarted node is a new line).
        let mut per: std::collections::BTreeMap<u32, Series> = Default::default();
        for (t, i, pid, s) in &run.soak {
            per.entry(*pid)
                .or_insert_with(|| Series {
                    label: format!("node {i}"),
                    points: Vec::new(),
                })
                .points
                .push((*t / 60.0, pick(s)));
        }
        let series: Vec<Series> = per.into_values().collect();
        save(
            file,
            lines(title, "minutes since the testnet started", unit, &series),
        )?;
    }
    Ok(())
}

/// `p50 / p95 / max` of some values, or `-`.
fn spread(mut v: Vec<f64>, unit: &str) -> String {
    v.sort_by(f64::total_cmp);
    match (percentile(&v, 50.0), percentile(&v, 95.0), v.last()) {
        (Some(a), Some(b), Some(c)) => format!("{a:.2} / {b:.2} / {c:.2} {unit} (n={})", v.len()),
        _ => "-".into(),
    }
}

/// The summary text and the number of failed checks.
fn summary(run: &Run, delays: &[Delay]) -> (String, usize) {
    let hosts = &run.hosts;
    let n = hosts.len();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "\ntestnet: {n} nodes (+ bootnode) in {} /24 subnets, {:.0}s; blocks {}..={} replayed\n",
        run.subnets,
        run.elapsed,
        run.preload + 1,
        run.last_block
    );
    let times =
        |f: fn(&super::Host) -> Option<f64>| spread(hosts.iter().filter_map(f).collect(), "s");
    let gossip: Vec<f64> = delays
        .iter()
        .filter(|d| d.path == "gossip")
        .map(|d| d.ms)
        .collect();
    let by_sync = delays.iter().filter(|d| d.path == "sync").count();
    let kib = |f: fn(&super::Host) -> u64| {
        spread(hosts.iter().map(|h| f(h) as f64 / 1024.0).collect(), "KiB")
    };
    let rows = [
        ("                          ", "p50 / p95 / max".to_string()),
        ("first peer", times(|h| h.first_peer)),
        ("target peers", times(|h| h.at_target)),
        ("caught up (sync)", times(|h| h.synced)),
        ("at last block", times(|h| h.at_head)),
        ("block delay (gossip)", spread(gossip, "ms")),
        ("payload received", kib(|h| h.last.bytes_in)),
        ("payload sent", kib(|h| h.last.bytes_out)),
        (
            "discovery table",
            spread(hosts.iter().map(|h| h.max_table as f64).collect(), "nodes"),
        ),
        (
            "outbound peers",
            spread(hosts.iter().map(|h| h.max_out as f64).collect(), ""),
        ),
        (
            "inbound per /24",
            spread(
                hosts.iter().map(|h| h.max_inbound_subnet as f64).collect(),
                "",
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<26}{v}");
    }
    let _ = writeln!(
        s,
        "{:<26}{by_sync} (node, block) pairs arrived by sync rather than gossip",
        "blocks by sync"
    );
    let rejected: u64 = hosts.iter().map(|h| h.last.rejected).sum();
    let too_many: u64 = hosts.iter().map(|h| h.last.too_many).sum();
    let dropped: u64 = hosts.iter().map(|h| h.last.inbound_rejected).sum();
    let _ = writeln!(
        s,
        "{:<26}{rejected} refused after Hello ({too_many} as too many peers: slots or per-subnet cap), \
         {dropped} dropped before it (throttle, pending per subnet)",
        "admission"
    );
    soak_lines(run, &mut s);

    // The checks: what loopback cannot show.
    // The node's default peer count over the server's dial ratio (1 in 3 slots dialed).
    let key = secp256k1::SecretKey::from_byte_array([1; 32]).ok();
    let ratio = key.map_or(3, |k| crate::server::Config::new(k).dial_ratio.max(1));
    let dial_limit = crate::node::Config::default().maxpeers / ratio;
    let cap = crate::server::limits::MAX_INBOUND_PER_SUBNET;
    let table_limit = discovery::table::TABLE_IP_LIMIT * run.subnets;
    let count = |f: &dyn Fn(&super::Host) -> bool| hosts.iter().filter(|h| f(h)).count();
    let mut checks = vec![
        (
            format!("inbound peers from one /24 ≤ {cap} (per-subnet cap)"),
            count(&|h| h.max_inbound_subnet <= cap),
        ),
        (
            format!(
                "discovery table ≤ {table_limit} (10 per /24 × {} subnets)",
                run.subnets
            ),
            count(&|h| h.max_table as usize <= table_limit),
        ),
        (
            format!("outbound peers ≤ {dial_limit} (max peers / dial ratio)"),
            count(&|h| h.max_out as usize <= dial_limit),
        ),
        (
            "learned its namespace address from pongs".to_string(),
            count(&|h| h.learned_ip.as_deref() == Some(h.addr.to_string().as_str())),
        ),
    ];
    if run.args.duration.is_none() {
        checks.insert(
            0,
            (
                format!("reached block {}", run.last_block),
                count(&|h| h.at_head.is_some()),
            ),
        );
    }
    let _ = writeln!(s, "\nchecks:");
    let mut failed = 0;
    for (what, ok) in checks {
        let pass = ok == n;
        failed += usize::from(!pass);
        let _ = writeln!(
            s,
            "  {} {ok}/{n} {what}",
            if pass { "PASS" } else { "FAIL" }
        );
    }
    if run.interrupted {
        let _ = writeln!(
            s,
            "  (interrupted: the run was cut short, so the checks do not fail it)"
        );
    }
    if run.timed_out {
        let _ = writeln!(s, "  (gave up after --timeout {:?})", run.args.timeout);
    }
    let _ = writeln!(s, "\nCSV and SVG files in {}", run.args.out.display());
    (s, failed)
}

/// RSS, descriptors and threads in the first and last sampled minute (medians).
fn soak_lines(run: &Run, s: &mut String) {
    let (Some(first), Some(last)) = (run.soak.first(), run.soak.last()) else {
        return;
    };
    let (t0, t1) = (first.0, last.0);
    let window = |from: f64, to: f64, f: fn(&super::measure::ProcStats) -> u64| {
        let mut v: Vec<f64> = (run.soak.iter())
            .filter(|(t, ..)| *t >= from && *t <= to)
            .map(|(_, _, _, st)| f(st) as f64)
            .collect();
        v.sort_by(f64::total_cmp);
        percentile(&v, 50.0).unwrap_or(0.0)
    };
    type Pick = fn(&super::measure::ProcStats) -> u64;
    let kinds: [(&str, Pick, f64); 3] = [
        ("RSS MiB", |st| st.rss_kib, 1024.0),
        ("open fds", |st| st.fds, 1.0),
        ("threads", |st| st.threads, 1.0),
    ];
    for (name, f, scale) in kinds {
        let a = window(t0, t0 + 60.0, f) / scale;
        let b = window(t1 - 60.0, t1, f) / scale;
        let _ = writeln!(
            s,
            "{:<26}median {a:.1} in the first minute, {b:.1} in the last ({:.0}s sampled)",
            format!("soak: {name}"),
            t1 - t0
        );
    }
}
