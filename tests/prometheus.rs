//! The metrics a dashboard is built on, checked against a running node: the Grafana
//! dashboard in `etc/grafana/devp2p-node.json` uses exactly the metric families the node
//! exports, and a real Prometheus server (Debian's `prometheus`, which the test command
//! installs) scrapes a node and answers a query for one of its metrics.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use devp2p::node::{Config, Node};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Blocks the node imports: the head Prometheus must report.
const HEAD: u64 = 12;
/// Bounds each wait.
const LIMIT: Duration = Duration::from_secs(30);

fn dashboard() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("etc/grafana/devp2p-node.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A node with discovery on, `HEAD` blocks and a metrics endpoint, on loopback.
async fn node(dir: &Path) -> Node {
    let config = Config {
        no_discovery: false,
        discport: Some(0),
        metrics: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..Config::local(dir)
    };
    let node = Node::builder(config).start().await.unwrap();
    let imported = node
        .importer()
        .unwrap()
        .import(support::chain_blocks(HEAD), None)
        .await;
    assert_eq!(imported.result.unwrap().head_number, HEAD);
    node
}

/// `GET path` over HTTP/1.0; the status code and body.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    support::http_raw(addr, req.as_bytes()).await
}

/// The metric families a scrape declares (`# TYPE name kind`), with their kinds.
fn families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .map(|(n, k)| (n.to_owned(), k.to_owned()))
        .collect()
}

/// Every `devp2p_*` identifier in the dashboard's queries, with a histogram's
/// `_bucket`/`_sum`/`_count` series mapped to its family.
fn dashboard_names(histograms: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let d = dashboard();
    for panel in d["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let mut rest = expr;
            while let Some(at) = rest.find("devp2p_") {
                let tail = &rest[at..];
                let end = tail
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                let mut name = &tail[..end];
                for suffix in ["_bucket", "_sum", "_count"] {
                    if let Some(base) = name.strip_suffix(suffix)
                        && histograms.contains(base)
                    {
                        name = base;
                    }
                }
                names.insert(name.to_owned());
                rest = &tail[end..];
            }
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_uses_exactly_the_exported_metrics() {
    let dir = support::tempdir("prom-names");
    let node = node(&dir).await;
    let (status, text) = get(node.metrics_addr().unwrap(), "/metrics").await;
    assert_eq!(status, 200);
    let exported = families(&text);
    let histograms: BTreeSet<String> = exported
        .iter()
        .filter(|(_, k)| k == "histogram")
        .map(|(n, _)| n.clone())
        .collect();
    let exported: BTreeSet<String> = exported.into_iter().map(|(n, _)| n).collect();
    let used = dashboard_names(&histograms);
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the node does not export: {unknown:?}"
    );
    let missing: Vec<_> = exported.difference(&used).collect();
    assert!(
        missing.is_empty(),
        "the node exports metrics no dashboard panel shows: {missing:?}"
    );
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `prometheus` server process, killed on drop.
struct Prometheus {
    child: tokio::process::Child,
    addr: SocketAddr,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn prometheus_binary() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join("prometheus"))
        .find(|p| p.is_file())
}

/// Starts Prometheus scraping `target` every second, listening on a free loopback port
/// (it logs the address it bound: `msg="Listening on" address=127.0.0.1:PORT`).
async fn prometheus(bin: &Path, dir: &Path, target: SocketAddr) -> Prometheus {
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: devp2p\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = tokio::time::timeout(LIMIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("msg=\"Listening on\"")
                && let Some(a) = line.split("address=").nth(1)
            {
                return a.trim().parse::<SocketAddr>().unwrap();
            }
        }
        panic!("prometheus exited before listening");
    })
    .await
    .expect("prometheus listening");
    // Keep draining its log so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Prometheus { child, addr }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_node() {
    let Some(bin) = prometheus_binary() else {
        eprintln!(
            "SKIP: no `prometheus` on PATH (scripts/test.sh installs Debian's package as root)"
        );
        return;
    };
    let dir = support::tempdir("prom-scrape");
    std::fs::create_dir_all(&dir).unwrap();
    let node = node(&dir.join("node")).await;
    let prom = prometheus(&bin, &dir, node.metrics_addr().unwrap()).await;
    let query = "/api/v1/query?query=devp2p_chain_head_block%7Bjob%3D%22devp2p%22%7D";
    let value = tokio::time::timeout(LIMIT, async {
        loop {
            let (status, body) = get(prom.addr, query).await;
            if status == 200 {
                let v: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(v["status"], "success", "{body}");
                if let Some(sample) = v["data"]["result"].get(0) {
                    return sample["value"][1].as_str().unwrap().to_owned();
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await
    .expect("prometheus answers with the node's head");
    assert_eq!(value, HEAD.to_string());
    drop(prom);
    node.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
