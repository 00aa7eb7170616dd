//! The testnet's network: one network namespace per process, joined by veth pairs to a
//! bridge in a hub namespace that routes between the /24 subnets.
//!
//! ```text
//!  root namespace                hub namespace (forwarding on)        node namespaces
//!  dptn<pid> A.B.254.1 ─veth─ up0 A.B.254.2                      ┌─ v0 ─veth─ eth0 A.B.1.10
//!  route A.B.0.0/16 via hub      br0: A.B.0.1, A.B.1.1, … /24 ───┼─ v1 ─veth─ eth0 A.B.1.11
//!                                                                 └─ …
//! ```
//!
//! Every node namespace has one interface, its address, and a route to `A.B.0.0/16` via
//! its subnet's gateway on the hub: no default route, so nothing leaves for the host's
//! networks, and no NAT anywhere. The uplink from the root namespace exists only so that
//! the testnet (in the root namespace) can reach the nodes' metrics and JSON-RPC; the hub
//! has no route beyond it.
//!
//! # Names and cleanup
//!
//! Every name starts with [`PREFIX`] and this process's id (`dptn1234-hub`,
//! `dptn1234-n7`, the root-side link `dptn1234`), so concurrent testnets (and
//! tests/upnp_gateway.rs, whose names start `dp<pid>-`) never share one. [`Lab`] deletes
//! its namespaces on drop, a panic included; deleting a namespace deletes its veth ends,
//! the bridge, and with the uplink the root namespace's route. A run killed outright
//! leaves them behind: [`sweep`] (called at every start) deletes the namespaces and links
//! of runs whose process is gone.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The first characters of every namespace and link a testnet makes.
pub const PREFIX: &str = "dptn";
/// The third octet of the uplink /30 between the root and hub namespaces; node subnets
/// stay below it.
pub const UPLINK_NET: u8 = 254;
/// The first host number of the nodes in each /24 (.1 is the hub's gateway address).
pub const FIRST_HOST: u8 = 10;
/// Most nodes per /24: host numbers FIRST_HOST..=254.
pub const MAX_PER_SUBNET: usize = 245;

/// Whether this process runs as root (what `ip netns` needs).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// `tool`'s path: on `PATH`, or in the sbin directories a non-login root shell may lack.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.is_file())
}

/// Runs `prog args`; its stdout, or what failed (with its stderr).
pub fn run(prog: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} {args:?}: {e}", prog.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} {}: {}: {}",
            prog.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Why a testnet cannot run here, if it cannot: not root, or no `ip` that can make a
/// namespace.
pub fn unavailable() -> Option<String> {
    if !is_root() {
        return Some("network namespaces need root (run as root or with sudo)".into());
    }
    let Some(ip) = find_tool("ip") else {
        return Some("no `ip` command (iproute2)".into());
    };
    let probe = format!("{PREFIX}{}-probe", std::process::id());
    if let Err(e) = run(&ip, &["netns", "add", &probe]) {
        return Some(format!("cannot make a network namespace: {e}"));
    }
    let _ = run(&ip, &["netns", "del", &probe]);
    None
}

/// The pid in a name made by a testnet (`dptn<pid>` or `dptn<pid>-…`).
fn owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let after = &rest[digits.len()..];
    (after.is_empty() || after.starts_with('-'))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Deletes the namespaces and root-side links of earlier testnets whose process no longer
/// runs; returns how many it deleted.
pub fn sweep(ip: &Path) -> usize {
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    let mut deleted = 0;
    // Lines like `dptn1234-n7 (id: 3)`.
    let list = run(ip, &["netns", "list"]).unwrap_or_default();
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        if owner(name).is_some_and(|pid| !alive(pid)) && run(ip, &["netns", "del", name]).is_ok() {
            deleted += 1;
        }
    }
    // Lines like `12: dptn1234@if3: <…>`; normally gone with the hub namespace.
    let links = run(ip, &["-o", "link", "show"]).unwrap_or_default();
    for l in links.lines() {
        let Some(name) = l.split(": ").nth(1).and_then(|n| n.split('@').next()) else {
            continue;
        };
        if owner(name).is_some_and(|pid| !alive(pid)) && run(ip, &["link", "del", name]).is_ok() {
            deleted += 1;
        }
    }
    deleted
}

/// Where node `i` sits: its /24 (third octet) and address.
pub fn node_addr(base: [u8; 2], per_subnet: usize, i: usize) -> (u8, Ipv4Addr) {
    let per = per_subnet.clamp(1, MAX_PER_SUBNET);
    // Subnet 0 holds the bootnode; nodes fill subnets 1, 2, … per_subnet at a time.
    let subnet = (1 + i / per) as u8;
    let host = FIRST_HOST + (i % per) as u8;
    (subnet, Ipv4Addr::new(base[0], base[1], subnet, host))
}

/// The bootnode's address: alone in subnet 0.
pub fn bootnode_addr(base: [u8; 2]) -> Ipv4Addr {
    Ipv4Addr::new(base[0], base[1], 0, FIRST_HOST)
}

/// The namespaces of one testnet, deleted on drop.
pub struct Lab {
    ip: PathBuf,
    tag: String,
    base: [u8; 2],
    hub: String,
    /// Namespaces made so far, the hub first.
    made: Vec<String>,
    /// Subnets (third octets) with a gateway address on the bridge.
    gateways: Vec<u8>,
}

impl Lab {
    /// Makes the hub namespace, its bridge, and the uplink from the root namespace.
    pub fn new(ip: PathBuf, base: [u8; 2]) -> Result<Lab, String> {
        let tag = format!("{PREFIX}{}", std::process::id());
        let hub = format!("{tag}-hub");
        let mut lab = Lab {
            ip,
            tag,
            base,
            hub: hub.clone(),
            made: Vec::new(),
            gateways: Vec::new(),
        };
        lab.ip(&["netns", "add", &hub])?;
        lab.made.push(hub.clone());
        let net = |c: u8, d: u8| format!("{}.{}.{c}.{d}", base[0], base[1]);
        let up_root = format!("{}/30", net(UPLINK_NET, 1));
        let up_hub = format!("{}/30", net(UPLINK_NET, 2));
        let all = format!("{}/16", net(0, 0));
        let tag = lab.tag.clone();
        #[rustfmt::skip]
        let steps: [&[&str]; 11] = [
            &["link", "add", &tag, "type", "veth", "peer", "name", "up0", "netns", &hub],
            &["-n", &hub, "link", "add", "br0", "type", "bridge"],
            &["-n", &hub, "link", "set", "br0", "up"],
            &["-n", &hub, "link", "set", "lo", "up"],
            &["-n", &hub, "addr", "add", &up_hub, "dev", "up0"],
            &["-n", &hub, "link", "set", "up0", "up"],
            &["addr", "add", &up_root, "dev", &tag],
            &["link", "set", &tag, "up"],
            // The testnet reaches every node through the hub; the route goes with the link.
            &["route", "add", &all, "via", &net(UPLINK_NET, 2), "dev", &tag],
            // Routing between subnets through the bridge's gateway addresses.
            &["netns", "exec", &hub, "sh", "-c",
              "echo 1 > /proc/sys/net/ipv4/ip_forward; \
               echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects; \
               echo 0 > /proc/sys/net/ipv4/conf/br0/send_redirects"],
            &["-n", &hub, "addr", "add", &format!("{}/24", net(0, 1)), "dev", "br0"],
        ];
        for s in steps {
            lab.ip(s)?;
        }
        lab.gateways.push(0);
        Ok(lab)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        run(&self.ip, args)
    }

    /// The namespace of process `name` (`node7`, `bootnode`).
    pub fn namespace(&self, name: &str) -> String {
        format!("{}-{name}", self.tag)
    }

    /// Makes the namespace `name` with address `addr`/24 on `eth0`, bridged into the hub;
    /// returns the namespace's name.
    pub fn add_host(&mut self, name: &str, addr: Ipv4Addr) -> Result<String, String> {
        let ns = self.namespace(name);
        let subnet = addr.octets()[2];
        if !self.gateways.contains(&subnet) {
            let gw = format!("{}.{}.{subnet}.1/24", self.base[0], self.base[1]);
            self.ip(&["-n", &self.hub, "addr", "add", &gw, "dev", "br0"])?;
            self.gateways.push(subnet);
        }
        self.ip(&["netns", "add", &ns])?;
        self.made.push(ns.clone());
        // The hub-side end is named after the host: unique within the hub.
        let port = format!("v-{name}");
        let port: String = port.chars().take(15).collect();
        let (hub, me) = (self.hub.clone(), ns.clone());
        let cidr = format!("{addr}/24");
        let gw = format!("{}.{}.{subnet}.1", self.base[0], self.base[1]);
        let all = format!("{}.{}.0.0/16", self.base[0], self.base[1]);
        #[rustfmt::skip]
        let steps: [&[&str]; 6] = [
            &["link", "add", "eth0", "netns", &me, "type", "veth", "peer", "name", &port, "netns", &hub],
            &["-n", &hub, "link", "set", &port, "master", "br0", "up"],
            &["-n", &me, "addr", "add", &cidr, "dev", "eth0"],
            &["-n", &me, "link", "set", "eth0", "up"],
            &["-n", &me, "link", "set", "lo", "up"],
            // The testnet's /16 only: no default route, nothing leaves.
            &["-n", &me, "route", "add", &all, "via", &gw],
        ];
        for s in steps {
            self.ip(s)?;
        }
        Ok(ns)
    }

    /// `ip netns exec NS`, to put before a command line.
    pub fn exec_prefix(&self, ns: &str) -> (PathBuf, Vec<std::ffi::OsString>) {
        (
            self.ip.clone(),
            vec!["netns".into(), "exec".into(), ns.into()],
        )
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // The uplink first, by name: a deleted namespace's links go only when the kernel
        // finishes tearing it down, after `ip netns del` returns, and the root-side end
        // (with its route) would linger until then. Deleting one veth end deletes both.
        let _ = run(&self.ip, &["link", "del", &self.tag]);
        // Nodes, then the hub with its bridge.
        for ns in self.made.iter().rev() {
            let _ = run(&self.ip, &["netns", "del", ns]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_their_owner() {
        assert_eq!(owner("dptn1234-n7"), Some(1234));
        assert_eq!(owner("dptn1234"), Some(1234));
        assert_eq!(owner("dptn1234x"), None);
        assert_eq!(owner("dp1234-lan"), None);
        assert_eq!(owner("dptn-n7"), None);
    }

    #[test]
    fn nodes_fill_subnets_in_turn() {
        let b = [10, 77];
        assert_eq!(node_addr(b, 16, 0), (1, Ipv4Addr::new(10, 77, 1, 10)));
        assert_eq!(node_addr(b, 16, 15), (1, Ipv4Addr::new(10, 77, 1, 25)));
        assert_eq!(node_addr(b, 16, 16), (2, Ipv4Addr::new(10, 77, 2, 10)));
        assert_eq!(node_addr(b, 16, 199).0, 13);
        assert_eq!(bootnode_addr(b), Ipv4Addr::new(10, 77, 0, 10));
    }
}
