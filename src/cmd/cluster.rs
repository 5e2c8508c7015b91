//! `osprey cluster up | down | kill | start`: a local multi-process Osprey cluster.
//!
//! `up` writes one Kafka-style `.properties` file per node, starts every node as a
//! detached `osprey broker --config FILE` process of this same executable, records them in
//! `cluster.json`, and waits until every listener accepts TCP. `down` stops them all;
//! `kill` and `start` stop and restart one node, for failover demos.
//!
//! Modules: [`layout`] (ids, ports, properties; pure), [`state`] (`cluster.json`),
//! [`process`] (spawning, signals, port probes).

pub mod layout;
pub mod process;
pub mod state;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use layout::{ClusterSpec, ReplicationDefaults};
use process::{StartFailure, Stopped};
use state::{ClusterState, NodeRecord};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::Duration;

/// How long a stopped node gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a failed node's log shown.
const LOG_TAIL_LINES: usize = 30;

#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand, Debug, Clone)]
pub enum ClusterCommand {
    /// Write node configs, start every node detached, wait until all listen.
    Up(UpArgs),
    /// Stop every node of the cluster (SIGTERM, then SIGKILL after 5 s).
    Down(DirArgs),
    /// SIGKILL one node (simulates a crash).
    Kill(NodeArgs),
    /// Start one stopped node again from its config.
    Start(NodeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DirArgs {
    /// The cluster directory (configs, logs, data, cluster.json).
    #[arg(long, default_value = "./osprey-cluster")]
    pub dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// Brokers (with --combined: nodes that are both controller and broker).
    #[arg(long, default_value_t = 3)]
    pub brokers: u16,
    /// Dedicated KRaft controllers (ignored with --combined).
    #[arg(long, default_value_t = 1)]
    pub controllers: u16,
    /// Every node is `controller,broker`.
    #[arg(long)]
    pub combined: bool,
    /// First port; node k (in id order) uses base+2k (PLAINTEXT) and base+2k+1 (CONTROLLER).
    #[arg(long, default_value_t = 19092)]
    pub base_port: u16,
    /// Seconds to wait for every node's listeners.
    #[arg(long, default_value_t = 20)]
    pub timeout_secs: u64,
    /// The executable run as `EXE broker --config FILE` for each node (default: this one).
    #[arg(long, hide = true)]
    pub node_exe: Option<PathBuf>,
    /// Extra `key=value` properties appended to every node's config (repeatable), e.g.
    /// `--set metadata.log.max.record.bytes.between.snapshots=4096`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub dir: DirArgs,
}

#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// The node id.
    #[arg(long)]
    pub node: i32,
    /// Seconds `start` waits for the node's listeners.
    #[arg(long, default_value_t = 20)]
    pub timeout_secs: u64,
    /// The executable run as `EXE broker --config FILE` for each node (default: this one).
    #[arg(long, hide = true)]
    pub node_exe: Option<PathBuf>,
    #[command(flatten)]
    pub dir: DirArgs,
}

pub fn run(args: ClusterArgs) -> ExitCode {
    let result = match args.command {
        ClusterCommand::Up(a) => up(&a),
        ClusterCommand::Down(a) => down(&a),
        ClusterCommand::Kill(a) => kill(&a),
        ClusterCommand::Start(a) => start(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(dir: &Path) -> Result<ClusterState> {
    ClusterState::load(dir)?.with_context(|| {
        format!(
            "no {} in {} (was `osprey cluster up` run there?)",
            state::STATE_FILE,
            dir.display()
        )
    })
}

/// The node's pid if that process is still the node (not a recycled pid).
fn running_pid(n: &NodeRecord) -> Option<u32> {
    n.pid.filter(|&p| process::is_node_process(p, &n.config))
}

fn up(a: &UpArgs) -> Result<()> {
    let dir = &a.dir.dir;
    if let Some(old) = ClusterState::load(dir)? {
        let live: Vec<i32> = old
            .nodes
            .iter()
            .filter(|n| running_pid(n).is_some())
            .map(|n| n.id)
            .collect();
        if !live.is_empty() {
            bail!(
                "nodes {live:?} of the cluster in {} are still running; run `osprey cluster down --dir {}` first",
                dir.display(),
                dir.display()
            );
        }
    }
    let plan = layout::plan(&ClusterSpec {
        brokers: a.brokers,
        controllers: a.controllers,
        combined: a.combined,
        base_port: a.base_port,
    })?;
    let busy: Vec<u16> = plan
        .iter()
        .flat_map(|n| n.ports())
        .filter(|&p| !process::port_free(p))
        .collect();
    if !busy.is_empty() {
        bail!("ports {busy:?} are already in use; pick another --base-port");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("resolving {}", dir.display()))?;
    let defaults = ReplicationDefaults::for_brokers(a.brokers);
    for kv in &a.set {
        if kv.split_once('=').is_none_or(|(k, _)| k.trim().is_empty()) {
            bail!("--set {kv:?}: expected KEY=VALUE");
        }
    }
    let mut cluster = ClusterState {
        bootstrap_servers: layout::bootstrap_servers(&plan),
        nodes: Vec::new(),
    };
    for n in &plan {
        let data = layout::data_dir(&dir, n.id);
        std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
        let config = layout::config_path(&dir, n.id);
        let mut text = layout::properties(n, &plan, &data, defaults);
        for kv in &a.set {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(kv);
            text.push('\n');
        }
        std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
        cluster
            .nodes
            .push(NodeRecord::new(n, config, layout::log_path(&dir, n.id)));
    }
    let exe = node_exe(a.node_exe.as_deref())?;
    let mut children: Vec<Child> = Vec::new();
    for i in 0..cluster.nodes.len() {
        match process::spawn_node(&exe, &cluster.nodes[i]) {
            Ok(child) => {
                cluster.nodes[i].pid = Some(child.id());
                children.push(child);
            }
            Err(e) => {
                abort_start(&mut cluster, &dir);
                return Err(e);
            }
        }
    }
    // Saved before waiting, so `down` can clean up even if this process is interrupted.
    cluster.save(&dir)?;
    let nodes: Vec<&NodeRecord> = cluster.nodes.iter().collect();
    let failed = process::wait_ready(&nodes, &mut children, Duration::from_secs(a.timeout_secs))?;
    if let Some((i, why)) = failed {
        let node = cluster.nodes[i].clone();
        report_start_failure(&node, &why, a.timeout_secs);
        abort_start(&mut cluster, &dir);
        bail!("node {} did not start; the cluster was stopped", node.id);
    }
    print_ready(&cluster, &dir);
    Ok(())
}

fn node_exe(explicit: Option<&Path>) -> Result<PathBuf> {
    match explicit {
        Some(p) => Ok(p.to_path_buf()),
        None => std::env::current_exe().context("locating the osprey executable"),
    }
}

/// Stops every node `up` started and records that nothing runs.
fn abort_start(cluster: &mut ClusterState, dir: &Path) {
    let pids: Vec<u32> = cluster.nodes.iter().filter_map(|n| n.pid).collect();
    process::stop_all(&pids, STOP_GRACE);
    for n in &mut cluster.nodes {
        n.pid = None;
    }
    if let Err(e) = cluster.save(dir) {
        eprintln!("warning: could not update cluster.json: {e:#}");
    }
}

fn report_start_failure(node: &NodeRecord, why: &StartFailure, timeout_secs: u64) {
    match why {
        StartFailure::Exited(status) => {
            eprintln!("node {} exited early ({status})", node.id)
        }
        StartFailure::TimedOut => eprintln!(
            "node {} is not listening on {:?} after {timeout_secs} s",
            node.id,
            node.ports()
        ),
    }
    eprintln!(
        "--- last {LOG_TAIL_LINES} lines of {} ---\n{}\n---",
        node.log.display(),
        process::tail(&node.log, LOG_TAIL_LINES)
    );
}

fn print_ready(cluster: &ClusterState, dir: &Path) {
    println!("Osprey cluster is up ({}):", dir.display());
    for n in &cluster.nodes {
        println!(
            "  node {:>3}  {:<17}  ports {:?}  pid {}  log {}",
            n.id,
            n.roles.as_property(),
            n.ports(),
            n.pid.map_or("-".into(), |p| p.to_string()),
            n.log.display()
        );
    }
    let bs = &cluster.bootstrap_servers;
    println!();
    println!("bootstrap servers: {bs}");
    println!();
    println!("try:");
    println!("  kcat -L -b {bs}");
    println!("  osprey topics --bootstrap-server {bs} describe");
    println!(
        "  osprey cluster kill --node N --dir {0}   # crash one node; `cluster start --node N` restarts it",
        dir.display()
    );
    println!("  osprey cluster down --dir {}", dir.display());
}

fn down(dir_args: &DirArgs) -> Result<()> {
    let dir = &dir_args.dir;
    let mut cluster = load(dir)?;
    let running: Vec<(i32, u32)> = cluster
        .nodes
        .iter()
        .filter_map(|n| running_pid(n).map(|p| (n.id, p)))
        .collect();
    let pids: Vec<u32> = running.iter().map(|&(_, p)| p).collect();
    let fates = process::stop_all(&pids, STOP_GRACE);
    for n in &cluster.nodes {
        match running.iter().position(|&(id, _)| id == n.id) {
            Some(i) => {
                let how = match fates[i] {
                    Stopped::Terminated => "stopped",
                    Stopped::Killed => "killed after 5 s (did not exit on SIGTERM)",
                    Stopped::NotRunning => "had already exited",
                };
                println!("node {} (pid {}): {how}", n.id, running[i].1);
            }
            None => println!("node {}: not running", n.id),
        }
    }
    for n in &mut cluster.nodes {
        n.pid = None;
    }
    cluster.save(dir)?;
    println!("data and logs are kept in {}", dir.display());
    Ok(())
}

fn kill(a: &NodeArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let mut cluster = load(dir)?;
    let node = cluster
        .node_mut(a.node)
        .with_context(|| format!("no node {} in the cluster", a.node))?;
    let Some(pid) = running_pid(node) else {
        node.pid = None;
        cluster.save(dir)?;
        bail!("node {} is not running", a.node);
    };
    process::send_signal(pid, libc::SIGKILL)
        .with_context(|| format!("sending SIGKILL to pid {pid}"))?;
    node.pid = None;
    cluster.save(dir)?;
    println!("node {} (pid {pid}) killed with SIGKILL", a.node);
    Ok(())
}

fn start(a: &NodeArgs) -> Result<()> {
    let dir = &a.dir.dir;
    let mut cluster = load(dir)?;
    let node = cluster
        .node(a.node)
        .with_context(|| format!("no node {} in the cluster", a.node))?
        .clone();
    if let Some(pid) = running_pid(&node) {
        bail!("node {} is already running (pid {pid})", a.node);
    }
    if let Some(p) = node.ports().into_iter().find(|&p| !process::port_free(p)) {
        bail!("port {p} of node {} is in use by another process", a.node);
    }
    let exe = node_exe(a.node_exe.as_deref())?;
    let child = process::spawn_node(&exe, &node)?;
    let pid = child.id();
    if let Some(n) = cluster.node_mut(a.node) {
        n.pid = Some(pid);
    }
    cluster.save(dir)?;
    let mut children = [child];
    let failed = process::wait_ready(&[&node], &mut children, Duration::from_secs(a.timeout_secs))?;
    if let Some((_, why)) = failed {
        report_start_failure(&node, &why, a.timeout_secs);
        process::stop_all(&[pid], STOP_GRACE);
        if let Some(n) = cluster.node_mut(a.node) {
            n.pid = None;
        }
        cluster.save(dir)?;
        bail!("node {} did not start", a.node);
    }
    println!(
        "node {} started (pid {pid}), listening on {:?}",
        a.node,
        node.ports()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ClusterArgs,
    }

    fn parse(args: &[&str]) -> ClusterCommand {
        let argv = std::iter::once("cluster").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().args.command
    }

    #[test]
    fn up_defaults_and_flags() {
        let ClusterCommand::Up(a) = parse(&["up"]) else {
            panic!("not up")
        };
        assert_eq!((a.brokers, a.controllers, a.combined), (3, 1, false));
        assert_eq!((a.base_port, a.timeout_secs), (19092, 20));
        assert_eq!(a.dir.dir, PathBuf::from("./osprey-cluster"));
        let ClusterCommand::Up(a) = parse(&[
            "up",
            "--brokers",
            "5",
            "--combined",
            "--dir",
            "d",
            "--base-port",
            "3000",
        ]) else {
            panic!("not up")
        };
        assert_eq!((a.brokers, a.combined, a.base_port), (5, true, 3000));
        assert_eq!(a.dir.dir, PathBuf::from("d"));
    }

    #[test]
    fn node_commands_need_a_node() {
        let ClusterCommand::Kill(a) = parse(&["kill", "--node", "2"]) else {
            panic!("not kill")
        };
        assert_eq!(a.node, 2);
        assert!(
            matches!(parse(&["start", "--node", "4"]), ClusterCommand::Start(a) if a.node == 4)
        );
        assert!(
            matches!(parse(&["down", "--dir", "x"]), ClusterCommand::Down(d) if d.dir == Path::new("x"))
        );
        let argv = ["cluster", "kill"];
        assert!(Cli::try_parse_from(argv).is_err());
    }
}
