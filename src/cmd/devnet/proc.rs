//! The devnet's child processes: started with their stdout read for the enode URL they
//! print first, stopped as Ctrl-C would stop them, killed if dropped still running.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Error, STOP_WAIT};

/// How long a child has to print its enode URL after it is started.
const START_WAIT: Duration = Duration::from_secs(30);

/// Sends every child SIGINT, waits up to [`STOP_WAIT`] in all for them to exit, and kills
/// the rest.
pub(crate) async fn stop_all(procs: &mut [&mut Proc]) {
    for p in procs.iter_mut() {
        p.interrupt();
    }
    let deadline = tokio::time::Instant::now() + STOP_WAIT;
    for p in procs.iter_mut() {
        while p.exited().is_none() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Whatever still runs is killed by `Proc`'s drop; do it now so it is reaped.
        p.kill();
    }
}

/// A child process of the devnet, killed if dropped while it still runs.
pub(crate) struct Proc {
    pub(crate) child: Child,
    pub(crate) exit: Option<String>,
}

impl Proc {
    /// Starts `exe argv` with stderr to `log`, and waits for the enode URL it prints
    /// first on stdout and, with `rpc`, the `rpc http://ADDR` line that follows it (the
    /// child binds port 0 and reports what it got, so no port is picked and released
    /// here for another process to take).
    pub(crate) async fn start(
        exe: &Path,
        what: String,
        log: PathBuf,
        argv: Vec<std::ffi::OsString>,
        rpc: bool,
    ) -> Result<(Proc, String, Option<SocketAddr>), Error> {
        let file = std::fs::File::create(&log).map_err(|source| Error::Io {
            path: log.clone(),
            source,
        })?;
        let child = Command::new(exe)
            .args(&argv)
            // Plain text logs: the files are for reading, not for a terminal.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .map_err(|source| Error::Io {
                path: exe.into(),
                source,
            })?;
        let mut proc = Proc { child, exit: None };
        let first = proc.first_lines(if rpc { 2 } else { 1 });
        let fail = |reason: String| Error::Start {
            what: what.clone(),
            reason,
            log: log.clone(),
        };
        match tokio::time::timeout(START_WAIT, first).await {
            Ok(Ok(lines)) => {
                let enode = lines.first().cloned().unwrap_or_default();
                if !enode.starts_with("enode://") {
                    return Err(fail(format!("printed {enode:.80} instead of an enode URL")));
                }
                if !rpc {
                    return Ok((proc, enode, None));
                }
                let line = lines.get(1).map_or("", String::as_str);
                match line.strip_prefix("rpc http://").map(str::parse) {
                    Some(Ok(addr)) => Ok((proc, enode, Some(addr))),
                    _ => Err(fail(format!(
                        "printed {line:.80} instead of its JSON-RPC address"
                    ))),
                }
            }
            Ok(Err(_)) => {
                // It closed stdout: it is exiting. Its log's last line says why.
                let deadline = Instant::now() + Duration::from_secs(5);
                while proc.exited().is_none() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let status = proc.exited().unwrap_or_else(|| "closed stdout".into());
                let last = std::fs::read_to_string(&log)
                    .ok()
                    .and_then(|t| {
                        t.lines()
                            .rev()
                            .find(|l| !l.trim().is_empty())
                            .map(String::from)
                    })
                    .unwrap_or_default();
                Err(fail(format!("{status}: {last:.300}")))
            }
            Err(_) => Err(fail(format!("no enode URL within {START_WAIT:?}"))),
        }
    }

    /// The first `n` lines of the child's stdout, read on a thread that then drains the
    /// rest (a bootnode also prints its ENR), so the child never writes to a closed pipe.
    /// Fails if stdout closes before `n` lines.
    fn first_lines(&mut self, n: usize) -> tokio::sync::oneshot::Receiver<Vec<String>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if let Some(out) = self.child.stdout.take() {
            std::thread::spawn(move || {
                let mut lines = BufReader::new(out).lines();
                let first: Vec<String> = lines
                    .by_ref()
                    .take(n)
                    .map_while(Result::ok)
                    .map(|l| l.trim().to_string())
                    .collect();
                if first.len() == n {
                    let _ = tx.send(first);
                }
                for _ in lines.by_ref() {}
            });
        }
        rx
    }

    /// How the child exited, once it has (`None` while it runs).
    pub(crate) fn exited(&mut self) -> Option<String> {
        if self.exit.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.exit = Some(status.to_string()),
                Ok(None) => {}
                Err(e) => self.exit = Some(e.to_string()),
            }
        }
        self.exit.clone()
    }

    /// Asks the child to stop as Ctrl-C would.
    fn interrupt(&mut self) {
        if self.exited().is_some() {
            return;
        }
        // std has no way to send a signal, and the crate has no libc dependency; kill(1)
        // is on every Unix. Elsewhere there is only the hard stop.
        #[cfg(unix)]
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        #[cfg(not(unix))]
        self.kill();
    }

    /// Kills the child if it still runs, and reaps it.
    fn kill(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(format!("killed ({status})"));
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
