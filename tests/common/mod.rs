//! A cluster of real `osprey broker` processes on 127.0.0.1 for integration tests: one
//! controller (node 1) and N brokers (nodes 2..), each with its own log dir in a temp dir,
//! started from Kafka-style config files, stopped on drop. Every wait is bounded.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::client::Connection;

pub const CONTROLLER_ID: i32 = 1;

/// A cluster is several processes, heavy for a 2-core machine: the tests of one binary
/// take this lock so that one cluster runs at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Node {
    pub id: i32,
    pub port: u16,
    pub config: PathBuf,
    pub log: PathBuf,
    pub data: PathBuf,
    child: Option<Child>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub nodes: BTreeMap<i32, Node>,
}

/// Ports for test nodes come from below Linux's ephemeral range (32768–60999): a node that
/// is killed and started again on its port would otherwise race every outgoing connection
/// on the machine for it — including its peers' reconnects to that very port, which the
/// kernel can complete as a self-connection on loopback — and find it taken.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = u32::from(PORTS.end - PORTS.start);
    let start = std::process::id() % span;
    for _ in 0..span {
        let offset = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
        let port = PORTS.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}");
}

impl Cluster {
    /// Starts a controller and `brokers` brokers; `settings` are added to every config.
    pub fn start(brokers: usize, settings: &[(&str, &str)]) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let controller_port = free_port();
        let mut nodes = BTreeMap::new();
        for id in 1..=(brokers as i32 + 1) {
            let port = if id == CONTROLLER_ID {
                controller_port
            } else {
                free_port()
            };
            let (roles, listener) = if id == CONTROLLER_ID {
                ("controller", format!("CONTROLLER://127.0.0.1:{port}"))
            } else {
                ("broker", format!("PLAINTEXT://127.0.0.1:{port}"))
            };
            let data = dir.path().join(format!("data-{id}"));
            let mut text = format!(
                "node.id={id}\nprocess.roles={roles}\nlisteners={listener}\n\
                 controller.quorum.voters={CONTROLLER_ID}@127.0.0.1:{controller_port}\n\
                 log.dirs={}\nbroker.heartbeat.interval.ms=300\nbroker.session.timeout.ms=2000\n\
                 replica.lag.time.max.ms=3000\nreplica.fetch.wait.max.ms=200\n",
                data.display()
            );
            for (k, v) in settings {
                text.push_str(&format!("{k}={v}\n"));
            }
            let config = dir.path().join(format!("node-{id}.properties"));
            std::fs::write(&config, text).expect("write config");
            let log = dir.path().join(format!("node-{id}.log"));
            nodes.insert(
                id,
                Node {
                    id,
                    port,
                    config,
                    log,
                    data,
                    child: None,
                },
            );
        }
        let mut cluster = Cluster { dir, nodes };
        let ids: Vec<i32> = cluster.nodes.keys().copied().collect();
        for id in ids {
            cluster.start_node(id);
        }
        cluster.wait_for_brokers(brokers, Duration::from_secs(20));
        cluster
    }

    pub fn broker_ids(&self) -> Vec<i32> {
        self.nodes
            .keys()
            .copied()
            .filter(|&i| i != CONTROLLER_ID)
            .collect()
    }

    pub fn bootstrap(&self) -> String {
        self.broker_ids()
            .iter()
            .map(|id| format!("127.0.0.1:{}", self.nodes[id].port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start_node(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).expect("known node");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_osprey"))
            .arg("broker")
            .arg("--config")
            .arg(&node.config)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn osprey broker");
        node.child = Some(child);
        let port = node.port;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "node {id} did not listen:\n{}",
                self.log_tail(id)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self, id: i32) -> u32 {
        self.nodes[&id].child.as_ref().expect("running").id()
    }

    /// SIGKILL: no flush, no controlled shutdown.
    pub fn kill(&mut self, id: i32) {
        if let Some(mut child) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait: a clean, controlled shutdown.
    pub fn stop(&mut self, id: i32) {
        if let Some(mut child) = self.nodes.get_mut(&id).and_then(|n| n.child.take()) {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// A process that exited by itself is reaped and marked stopped (a SIGKILL by a client
    /// script, for example).
    pub fn reap(&mut self, id: i32) {
        if let Some(node) = self.nodes.get_mut(&id) {
            if let Some(child) = node.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    node.child = None;
                }
            }
        }
    }

    pub fn log_tail(&self, id: i32) -> String {
        let text = std::fs::read_to_string(&self.nodes[&id].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The last lines of every node's log, for a failing test's message.
    pub fn log_tails(&self) -> String {
        self.nodes
            .keys()
            .map(|id| format!("--- node {id}\n{}", self.log_tail(*id)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Metadata for `topics` (all when `None`) from any live broker.
    pub fn metadata(&self, topics: Option<&[&str]>) -> Option<MetadataResponse> {
        self.live_broker_ids()
            .into_iter()
            .find_map(|id| self.metadata_from(id, topics))
    }

    /// The brokers whose process is running.
    pub fn live_broker_ids(&self) -> Vec<i32> {
        self.broker_ids()
            .into_iter()
            .filter(|id| self.nodes[id].child.is_some())
            .collect()
    }

    /// Metadata for `topics` (all when `None`) as broker `id` sees it. Each broker applies
    /// the metadata log on its own schedule, so two brokers may briefly disagree.
    pub fn metadata_from(&self, id: i32, topics: Option<&[&str]>) -> Option<MetadataResponse> {
        let req = MetadataRequest::default()
            .with_allow_auto_topic_creation(false)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.to_string()))))
                    })
                    .collect()
            }));
        let addr = format!("127.0.0.1:{}", self.nodes[&id].port);
        match send(&addr, 12, RequestKind::Metadata(req)) {
            Ok(ResponseKind::Metadata(m)) => Some(m),
            _ => None,
        }
    }

    pub fn wait_for_brokers(&self, n: usize, timeout: Duration) {
        self.wait_until(timeout, "brokers registered", |c| {
            c.metadata(None).is_some_and(|m| m.brokers.len() >= n)
        });
    }

    /// Polls `cond` every 100 ms until it holds; panics with the logs after `timeout`.
    pub fn wait_until(&self, timeout: Duration, what: &str, cond: impl Fn(&Cluster) -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond(self) {
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.log_tails());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// (leader, isr) of a partition as a broker's metadata shows it.
    pub fn partition_state(&self, topic: &str, partition: i32) -> Option<(i32, Vec<i32>)> {
        partition_state_in(self.metadata(Some(&[topic]))?, partition)
    }

    /// (leader, isr) of a partition as broker `id`'s metadata shows it.
    pub fn partition_state_on(
        &self,
        id: i32,
        topic: &str,
        partition: i32,
    ) -> Option<(i32, Vec<i32>)> {
        partition_state_in(self.metadata_from(id, Some(&[topic]))?, partition)
    }

    pub fn create_topic(&self, topic: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) {
        let mut args: Vec<String> = vec![
            "topics".into(),
            "--bootstrap-server".into(),
            self.bootstrap()
                .split(',')
                .next()
                .unwrap_or_default()
                .to_string(),
            "create".into(),
            "--topic".into(),
            topic.into(),
            "--partitions".into(),
            partitions.to_string(),
            "--replication-factor".into(),
            rf.to_string(),
        ];
        for (k, v) in configs {
            args.push("--config".into());
            args.push(format!("{k}={v}"));
        }
        let out = Command::new(env!("CARGO_BIN_EXE_osprey"))
            .args(&args)
            .output()
            .expect("osprey topics");
        assert!(
            out.status.success(),
            "create topic failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every live broker, the leaders among them, must have applied the new topic:
        // a produce sent to a leader that has not yet applied it would be answered
        // UNKNOWN_TOPIC_OR_PARTITION (clients retry that; these tests send one request).
        self.wait_until(
            Duration::from_secs(10),
            "topic leaders on every broker",
            |c| {
                c.live_broker_ids().into_iter().all(|b| {
                    (0..partitions).all(|p| {
                        c.partition_state_on(b, topic, p)
                            .is_some_and(|(l, _)| l >= 0)
                    })
                })
            },
        );
    }
}

fn partition_state_in(m: MetadataResponse, partition: i32) -> Option<(i32, Vec<i32>)> {
    let t = m.topics.into_iter().next()?;
    let p = t
        .partitions
        .into_iter()
        .find(|p| p.partition_index == partition)?;
    Some((p.leader_id.0, p.isr_nodes.iter().map(|b| b.0).collect()))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            self.kill(id);
        }
    }
}

/// One request over a fresh connection (blocking, for tests).
pub fn send(addr: &str, version: i16, req: RequestKind) -> anyhow::Result<ResponseKind> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut c = Connection::connect(addr, "osprey-test", Duration::from_secs(2)).await?;
        c.send(version, req, Duration::from_secs(20)).await
    })
}

/// Runs a Python client script from tests/clients with a time limit; `None` (with a loud
/// message) when the Python client library is missing outside CI.
pub fn python(script: &str, args: &[String], timeout: Duration) -> Option<String> {
    let module = if script.starts_with("kp_") {
        "kafka"
    } else {
        "confluent_kafka"
    };
    let have = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "python module {module} is missing on CI (the test command installs it)"
        );
        eprintln!("SKIPPED: python module {module} is not installed (run scripts/test.sh)");
        return None;
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let out = Command::new("timeout")
        .arg(timeout.as_secs().to_string())
        .arg("python3")
        .arg(&path)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether kcat is installed; on CI (where the test command installs it) its absence fails.
pub fn have_kcat() -> bool {
    let ok = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("CI").is_none(), "kcat is missing on CI");
        eprintln!("SKIPPED: kcat is not installed (run scripts/test.sh)");
    }
    ok
}
