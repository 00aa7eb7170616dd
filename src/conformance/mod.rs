//! Conformance suites: `devp2p test discv4|rlpx|eth` checks a remote node against ports of
//! go-ethereum's `cmd/devp2p` test suites (`internal/v4test`, `internal/ethtest`), case by
//! case: the same packets, the same field encodings, the same expectations
//! (`docs/conformance.md` lists them, with the go-ethereum commit they come from).
//!
//! Each suite is a list of named cases; [`run`] runs those a `--run` pattern selects, one
//! after the other (like go-ethereum's `utesting`), each under a time limit, and gathers a
//! [`Report`]: one line per case, a JSON form for machines.

pub mod discv4;
pub mod eth;
pub mod rlpx;

mod chain;
mod conn;

use std::future::Future;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The node did not behave as the case expects.
    Fail(String),
    /// The case cannot run here (what it needs is missing); not a failure.
    Skip(String),
}

/// What one case returns: `Ok` is a pass.
pub type Outcome = Result<(), Verdict>;

/// Fails the case with a formatted message.
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::conformance::Verdict::Fail(format!($($arg)*)))
    };
}
pub(crate) use fail;

/// Turns any error into a failure of the case, with context.
pub(crate) trait Context<T> {
    /// `Err(e)` becomes `Verdict::Fail("{what}: {e}")`.
    fn context(self, what: &str) -> Result<T, Verdict>;
}

impl<T, E: std::fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, Verdict> {
        self.map_err(|e| Verdict::Fail(format!("{what}: {e}")))
    }
}

/// A suite: named cases run against one remote node.
pub trait Suite {
    /// The suite's name (`discv4`, `rlpx`, `eth`).
    fn name(&self) -> &'static str;
    /// Every case, in go-ethereum's order.
    fn cases(&self) -> &'static [&'static str];
    /// Longest a case may take before it fails as timed out.
    fn case_timeout(&self) -> Duration;
    /// Runs one case by name.
    fn run_case(&self, name: &str) -> impl Future<Output = Outcome> + Send;
}

/// The result of one case.
#[derive(Debug, Clone, Serialize)]
pub struct CaseReport {
    /// The case name, as go-ethereum names it.
    pub name: String,
    /// `PASS`, `FAIL` or `SKIP`.
    pub result: &'static str,
    /// Why it failed or was skipped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Time taken.
    pub millis: u64,
}

impl std::fmt::Display for CaseReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.result, self.name)?;
        match &self.reason {
            Some(r) => write!(f, " ({r})"),
            None => Ok(()),
        }
    }
}

/// The results of a suite run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The suite.
    pub suite: &'static str,
    /// The remote node under test.
    pub node: String,
    /// One entry per case run.
    pub cases: Vec<CaseReport>,
    /// Cases passed.
    pub passed: usize,
    /// Cases failed.
    pub failed: usize,
    /// Cases skipped.
    pub skipped: usize,
}

impl Report {
    /// The summary line: `N passed, M failed`.
    pub fn summary(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }
}

/// Runs the cases of `suite` whose name `select` accepts, in order, printing each result
/// line through `line` as it completes.
pub async fn run<S: Suite>(
    suite: &S,
    node: String,
    select: impl Fn(&str) -> bool,
    mut line: impl FnMut(&CaseReport),
) -> Report {
    let mut report = Report {
        suite: suite.name(),
        node,
        cases: Vec::new(),
        passed: 0,
        failed: 0,
        skipped: 0,
    };
    for &name in suite.cases().iter().filter(|n| select(n)) {
        let start = Instant::now();
        let outcome = tokio::time::timeout(suite.case_timeout(), suite.run_case(name))
            .await
            .unwrap_or_else(|_| {
                Err(Verdict::Fail(format!(
                    "timed out after {:?}",
                    suite.case_timeout()
                )))
            });
        let (result, reason) = match outcome {
            Ok(()) => {
                report.passed += 1;
                ("PASS", None)
            }
            Err(Verdict::Fail(r)) => {
                report.failed += 1;
                ("FAIL", Some(r))
            }
            Err(Verdict::Skip(r)) => {
                report.skipped += 1;
                ("SKIP", Some(r))
            }
        };
        let case = CaseReport {
            name: name.to_owned(),
            result,
            reason,
            millis: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        line(&case);
        report.cases.push(case);
    }
    report
}

/// UNIX seconds now.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
