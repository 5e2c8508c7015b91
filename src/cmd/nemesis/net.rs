//! The campaign's private network: one network namespace per node, each with a veth pair
//! into one bridge; the host side of the bridge (address `.1`) is where the clients run.
//! Every name carries the run's prefix (`osn<pid>`) and the subnet is a /24 of 10.213.0.0/16
//! that no other interface on the machine uses, so concurrent runs never meet. Faults are
//! nftables rules inside the namespaces (one table, `osprey_nemesis`, rebuilt whole on
//! every change), so healing is deleting the table.
//!
//! Everything is torn down on drop, and [`cleanup_leftovers`] removes what a killed run
//! left (names whose pid is no longer alive).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Every name this module creates starts with this, then the owning process's pid.
pub const PREFIX: &str = "osn";

/// Runs a command, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<()> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd}"))?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn run_stdin(cmd: &str, args: &[&str], input: &str) -> Result<()> {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd} {} failed: {}\n{input}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn output(cmd: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid in a name made by this module (`osn<pid>...`), if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes namespaces, links and firewall rules left by runs whose process is gone.
pub fn cleanup_leftovers() {
    let dead = |name: &str| owner_pid(name).is_some_and(|p| !pid_alive(p));
    if let Ok(list) = output("ip", &["netns", "list"]) {
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            if dead(ns) {
                let _ = run("ip", &["netns", "del", ns]);
            }
        }
    }
    if let Ok(list) = output("ip", &["-o", "link", "show"]) {
        for l in list.lines() {
            // "12: osn123b: <...>" or "13: osn123h1@if2: <...>"
            let Some(name) = l.split(':').nth(1).map(str::trim) else {
                continue;
            };
            let name = name.split('@').next().unwrap_or(name);
            if dead(name) {
                let _ = run("ip", &["link", "del", name]);
                forward_rules(name, false);
            }
        }
    }
}

/// Lets bridged traffic of `bridge` through the host's FORWARD chain (the host may drop
/// forwarded packets by default, e.g. with Docker, and bridged IPv4 goes through it).
fn forward_rules(bridge: &str, add: bool) {
    for dir in ["-i", "-o"] {
        let exists = run("iptables", &["-C", "FORWARD", dir, bridge, "-j", "ACCEPT"]).is_ok();
        if add && !exists {
            let _ = run("iptables", &["-I", "FORWARD", dir, bridge, "-j", "ACCEPT"]);
        } else if !add {
            while run("iptables", &["-D", "FORWARD", dir, bridge, "-j", "ACCEPT"]).is_ok() {}
        }
    }
}

/// One node's place in the network.
#[derive(Debug, Clone)]
pub struct NetNode {
    pub id: i32,
    pub ns: String,
    pub ip: Ipv4Addr,
}

/// The network of one run.
pub struct Net {
    pub prefix: String,
    pub bridge: String,
    pub host_ip: Ipv4Addr,
    pub nodes: Vec<NetNode>,
    /// Per node: the addresses it currently drops traffic to and from.
    cuts: Vec<BTreeSet<Ipv4Addr>>,
    up: bool,
}

/// The first 10.213.X.0/24 no interface on the machine has an address in.
fn free_subnet() -> Result<u8> {
    let addrs = output("ip", &["-4", "-o", "addr", "show"])?;
    (1..=250u8)
        .find(|x| !addrs.contains(&format!("10.213.{x}.")))
        .context("no free 10.213.X.0/24 subnet")
}

impl Net {
    /// Creates the bridge and one namespace per node id.
    pub fn create(ids: &[i32]) -> Result<Net> {
        let prefix = format!("{PREFIX}{}", std::process::id());
        let subnet = free_subnet()?;
        let bridge = format!("{prefix}b");
        let host_ip = Ipv4Addr::new(10, 213, subnet, 1);
        let mut net = Net {
            prefix: prefix.clone(),
            bridge: bridge.clone(),
            host_ip,
            nodes: Vec::new(),
            cuts: Vec::new(),
            up: true,
        };
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        forward_rules(&bridge, true);
        run(
            "ip",
            &["addr", "add", &format!("{host_ip}/24"), "dev", &bridge],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for &id in ids {
            let ns = format!("{prefix}-{id}");
            let host_end = format!("{prefix}h{id}");
            let ns_end = format!("{prefix}n{id}");
            let ip = Ipv4Addr::new(10, 213, subnet, 10 + id as u8);
            run("ip", &["netns", "add", &ns])?;
            net.nodes.push(NetNode {
                id,
                ns: ns.clone(),
                ip,
            });
            net.cuts.push(BTreeSet::new());
            run(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", &ns_end,
                ],
            )?;
            run("ip", &["link", "set", &host_end, "master", &bridge, "up"])?;
            run("ip", &["link", "set", &ns_end, "netns", &ns])?;
            let inns = |args: &[&str]| -> Result<()> {
                let mut full = vec!["netns", "exec", ns.as_str(), "ip"];
                full.extend_from_slice(args);
                run("ip", &full)
            };
            inns(&["link", "set", "lo", "up"])?;
            inns(&["link", "set", &ns_end, "name", "eth0"])?;
            inns(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
            inns(&["link", "set", "eth0", "up"])?;
        }
        Ok(net)
    }

    pub fn node(&self, id: i32) -> &NetNode {
        self.nodes.iter().find(|n| n.id == id).expect("known node")
    }

    fn index(&self, id: i32) -> usize {
        self.nodes
            .iter()
            .position(|n| n.id == id)
            .expect("known node")
    }

    /// The namespace file a child process joins (`setns`).
    pub fn ns_file(&self, id: i32) -> Result<File> {
        let path = format!("/run/netns/{}", self.node(id).ns);
        File::open(&path).with_context(|| format!("opening {path}"))
    }

    /// Replaces every cut by `groups`: nodes in different groups cannot reach each other.
    /// `client_cut` lists nodes the host (clients) cannot reach either.
    pub fn partition(&mut self, groups: &[Vec<i32>], client_cut: &[i32]) -> Result<()> {
        let group_of = |id: i32| groups.iter().position(|g| g.contains(&id));
        let mut cuts = vec![BTreeSet::new(); self.nodes.len()];
        for a in &self.nodes {
            for b in &self.nodes {
                if a.id != b.id && group_of(a.id) != group_of(b.id) {
                    cuts[self.index(a.id)].insert(b.ip);
                }
            }
            if client_cut.contains(&a.id) {
                cuts[self.index(a.id)].insert(self.host_ip);
            }
        }
        self.apply(cuts)
    }

    /// Cuts exactly the listed pairs (both ways), and nothing else.
    pub fn cut_pairs(&mut self, pairs: &[(i32, i32)]) -> Result<()> {
        let mut cuts = vec![BTreeSet::new(); self.nodes.len()];
        for &(a, b) in pairs {
            let (ia, ib) = (self.index(a), self.index(b));
            cuts[ia].insert(self.nodes[ib].ip);
            cuts[ib].insert(self.nodes[ia].ip);
        }
        self.apply(cuts)
    }

    pub fn heal(&mut self) -> Result<()> {
        self.apply(vec![BTreeSet::new(); self.nodes.len()])
    }

    fn apply(&mut self, cuts: Vec<BTreeSet<Ipv4Addr>>) -> Result<()> {
        for (i, want) in cuts.into_iter().enumerate() {
            if want == self.cuts[i] {
                continue;
            }
            let ns = self.nodes[i].ns.clone();
            let _ = run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &ns,
                    "nft",
                    "delete",
                    "table",
                    "inet",
                    "osprey_nemesis",
                ],
            );
            if !want.is_empty() {
                let set = want
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                let rules = format!(
                    "table inet osprey_nemesis {{\n\
                     chain input {{ type filter hook input priority -10; ip saddr {{ {set} }} drop; }}\n\
                     chain output {{ type filter hook output priority -10; ip daddr {{ {set} }} drop; }}\n\
                     }}\n"
                );
                run_stdin("ip", &["netns", "exec", &ns, "nft", "-f", "-"], &rules)?;
            }
            self.cuts[i] = want;
        }
        Ok(())
    }

    /// Removes everything this run created.
    pub fn teardown(&mut self) {
        if !self.up {
            return;
        }
        self.up = false;
        for n in &self.nodes {
            let _ = run("ip", &["netns", "del", &n.ns]);
        }
        for n in &self.nodes {
            let _ = run("ip", &["link", "del", &format!("{}h{}", self.prefix, n.id)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
        forward_rules(&self.bridge, false);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_our_names() {
        assert_eq!(owner_pid("osn1234-2"), Some(1234));
        assert_eq!(owner_pid("osn1234h3"), Some(1234));
        assert_eq!(owner_pid("osnb"), None);
        assert_eq!(owner_pid("docker0"), None);
    }
}
