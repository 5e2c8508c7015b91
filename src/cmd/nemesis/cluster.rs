//! The cluster under test: real `osprey broker` processes, each in its own network namespace
//! (joined with `setns` before exec, so the process keeps the host's mounts) and each with its
//! log directory on its own lazy filesystem (`osprey-lazyfs`), so a power cut can drop the
//! unflushed tail. Processes are started, killed, stopped, paused and resumed here; the
//! schedule decides when.

use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use osprey_lazyfs::{Control, Mount};

use super::net::Net;

/// The PLAINTEXT (clients, replication) and CONTROLLER (quorum) ports, the same on every
/// node: each has its own address.
pub const BROKER_PORT: u16 = 9092;
pub const CONTROLLER_PORT: u16 = 9093;

/// Capacity of each node's in-memory log directory.
const DISK_BYTES: u64 = 768 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Controller,
    Broker,
    Combined,
}

impl Role {
    pub fn is_controller(self) -> bool {
        matches!(self, Role::Controller | Role::Combined)
    }
    pub fn is_broker(self) -> bool {
        matches!(self, Role::Broker | Role::Combined)
    }
}

/// How the cluster is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Three controllers (ids 1–3) and three brokers (ids 4–6), as deploy/compose.ha.yml.
    Dedicated,
    /// Three `controller,broker` nodes (ids 1–3), as deploy/compose.combined.yml.
    Combined,
}

impl Layout {
    pub fn roles(self) -> Vec<(i32, Role)> {
        match self {
            Layout::Dedicated => vec![
                (1, Role::Controller),
                (2, Role::Controller),
                (3, Role::Controller),
                (4, Role::Broker),
                (5, Role::Broker),
                (6, Role::Broker),
            ],
            Layout::Combined => vec![
                (1, Role::Combined),
                (2, Role::Combined),
                (3, Role::Combined),
            ],
        }
    }
}

/// The settings a run passes to every node.
#[derive(Clone, Debug)]
pub struct Settings {
    pub unclean: bool,
    pub min_insync: u16,
    /// Extra `key=value` properties.
    pub extra: Vec<(String, String)>,
}

/// Process state as the nemesis left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcState {
    Running,
    Paused,
    Down,
}

pub struct Node {
    pub id: i32,
    pub role: Role,
    pub config: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    pub state: ProcState,
    mount: Option<Mount>,
    pub disk: Control,
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub net: Net,
    binary: PathBuf,
}

fn properties(
    id: i32,
    role: Role,
    ip: std::net::Ipv4Addr,
    voters: &str,
    data: &Path,
    s: &Settings,
) -> String {
    let mut listeners = Vec::new();
    if role.is_broker() {
        listeners.push(format!("PLAINTEXT://{ip}:{BROKER_PORT}"));
    }
    if role.is_controller() {
        listeners.push(format!("CONTROLLER://{ip}:{CONTROLLER_PORT}"));
    }
    let roles = match role {
        Role::Controller => "controller",
        Role::Broker => "broker",
        Role::Combined => "controller,broker",
    };
    let mut props = vec![
        ("node.id".to_string(), id.to_string()),
        ("process.roles".into(), roles.into()),
        ("listeners".into(), listeners.join(",")),
        ("controller.listener.names".into(), "CONTROLLER".into()),
        (
            "listener.security.protocol.map".into(),
            "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT".into(),
        ),
        ("controller.quorum.voters".into(), voters.into()),
        ("log.dirs".into(), data.display().to_string()),
        ("default.replication.factor".into(), "3".into()),
        ("offsets.topic.replication.factor".into(), "3".into()),
        ("min.insync.replicas".into(), s.min_insync.to_string()),
        (
            "unclean.leader.election.enable".into(),
            s.unclean.to_string(),
        ),
        ("num.partitions".into(), "6".into()),
        ("auto.create.topics.enable".into(), "false".into()),
        // Failures are found within seconds rather than Kafka's 9 s/30 s, so a two-minute
        // run sees many failovers; the protocol is the same.
        ("broker.heartbeat.interval.ms".into(), "500".into()),
        ("broker.session.timeout.ms".into(), "3000".into()),
        ("replica.lag.time.max.ms".into(), "5000".into()),
    ];
    if role.is_broker() {
        props.push((
            "advertised.listeners".into(),
            format!("PLAINTEXT://{ip}:{BROKER_PORT}"),
        ));
        props.push(("inter.broker.listener.name".into(), "PLAINTEXT".into()));
    }
    props.extend(s.extra.iter().cloned());
    props
        .into_iter()
        .map(|(k, v)| format!("{k}={v}\n"))
        .collect()
}

impl Cluster {
    /// Creates the network, mounts each node's disk and writes its config; starts nothing.
    pub fn create(
        run_dir: &Path,
        layout: Layout,
        settings: &Settings,
        binary: &Path,
    ) -> Result<Cluster> {
        let roles = layout.roles();
        let ids: Vec<i32> = roles.iter().map(|r| r.0).collect();
        let net = Net::create(&ids)?;
        let voters = roles
            .iter()
            .filter(|(_, r)| r.is_controller())
            .map(|(id, _)| format!("{id}@{}:{CONTROLLER_PORT}", net.node(*id).ip))
            .collect::<Vec<_>>()
            .join(",");
        let mut nodes = Vec::new();
        for (id, role) in roles {
            let dir = run_dir.join(format!("node-{id}"));
            let data = dir.join("data");
            fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
            let mount = Mount::new(&data, DISK_BYTES, &format!("{}-{id}", net.prefix))
                .with_context(|| format!("mounting the lazy filesystem on {}", data.display()))?;
            let config = dir.join("node.properties");
            fs::write(
                &config,
                properties(id, role, net.node(id).ip, &voters, &data, settings),
            )?;
            nodes.push(Node {
                id,
                role,
                log: dir.join("node.log"),
                config,
                child: None,
                state: ProcState::Down,
                disk: mount.control(),
                mount: Some(mount),
            });
        }
        Ok(Cluster {
            nodes,
            net,
            binary: binary.to_path_buf(),
        })
    }

    pub fn node(&self, id: i32) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("known node")
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .expect("known node")
    }

    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    pub fn broker_ids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.role.is_broker())
            .map(|n| n.id)
            .collect()
    }

    pub fn controller_ids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.role.is_controller())
            .map(|n| n.id)
            .collect()
    }

    /// `ip:port` of every broker, for clients.
    pub fn bootstrap(&self) -> String {
        self.broker_ids()
            .iter()
            .map(|id| format!("{}:{BROKER_PORT}", self.net.node(*id).ip))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn broker_addr(&self, id: i32) -> String {
        format!("{}:{BROKER_PORT}", self.net.node(id).ip)
    }

    pub fn controller_addr(&self, id: i32) -> String {
        format!("{}:{CONTROLLER_PORT}", self.net.node(id).ip)
    }

    /// Starts node `id` in its namespace (output appended to its log).
    pub fn start(&mut self, id: i32) -> Result<()> {
        let ns = self.net.ns_file(id)?;
        let binary = self.binary.clone();
        let node = self.node_mut(id);
        if node.child.is_some() {
            return Ok(());
        }
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut cmd = Command::new(&binary);
        cmd.arg("broker")
            .arg("--config")
            .arg(&node.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let fd = ns.as_raw_fd();
        // SAFETY: setns is async-signal-safe; `ns` outlives the spawn.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting node {id}"))?;
        drop(ns);
        node.child = Some(child);
        node.state = ProcState::Running;
        Ok(())
    }

    fn signal(&self, id: i32, sig: i32) -> bool {
        match &self.node(id).child {
            Some(c) => {
                // SAFETY: kill(2) on a child we own and have not reaped.
                unsafe { libc::kill(c.id() as i32, sig) == 0 }
            }
            None => false,
        }
    }

    /// kill -9, then reaps the process.
    pub fn kill(&mut self, id: i32) -> Result<()> {
        let node = self.node_mut(id);
        if let Some(mut c) = node.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        node.state = ProcState::Down;
        Ok(())
    }

    /// SIGTERM (a controlled shutdown), SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, id: i32, grace: Duration) -> Result<bool> {
        if self.node(id).state == ProcState::Paused {
            self.signal(id, libc::SIGCONT);
        }
        self.signal(id, libc::SIGTERM);
        let node = self.node_mut(id);
        let mut clean = true;
        if let Some(mut c) = node.child.take() {
            let deadline = Instant::now() + grace;
            loop {
                if c.try_wait()?.is_some() {
                    break;
                }
                if Instant::now() > deadline {
                    clean = false;
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        node.state = ProcState::Down;
        Ok(clean)
    }

    pub fn pause(&mut self, id: i32) -> bool {
        let ok = self.signal(id, libc::SIGSTOP);
        if ok {
            self.node_mut(id).state = ProcState::Paused;
        }
        ok
    }

    pub fn resume(&mut self, id: i32) -> bool {
        let ok = self.signal(id, libc::SIGCONT);
        if ok {
            self.node_mut(id).state = ProcState::Running;
        }
        ok
    }

    /// Whether node `id`'s process exited by itself (e.g. on a disk error); reaps it.
    pub fn exited(&mut self, id: i32) -> Option<std::process::ExitStatus> {
        let node = self.node_mut(id);
        let status = node
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            node.child = None;
            node.state = ProcState::Down;
        }
        status
    }

    /// The last lines of node `id`'s log, for error messages.
    pub fn log_tail(&self, id: i32, lines: usize) -> String {
        let text = fs::read_to_string(&self.node(id).log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Stops every process (SIGKILL), unmounts every disk, removes the network.
    pub fn teardown(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                // SAFETY: as in `signal`.
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
                let _ = c.kill();
                let _ = c.wait();
            }
            n.state = ProcState::Down;
        }
        for n in &mut self.nodes {
            if let Some(m) = n.mount.take() {
                let _ = m.unmount();
            }
        }
        self.net.teardown();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Unmounts lazy filesystems left under `root` by runs that were killed (their mount
/// source names a dead pid).
pub fn cleanup_leftover_mounts() {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for line in mounts.lines() {
        let mut f = line.split_whitespace();
        let (Some(src), Some(target)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(rest) = src.strip_prefix(super::net::PREFIX) else {
            continue;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = osprey_lazyfs::lazy_unmount(Path::new(target));
        }
    }
}
