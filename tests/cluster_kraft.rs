//! The KRaft controller quorum with real processes on 127.0.0.1, laid out by
//! `osprey cluster up`: SIGKILL the active controller, and a new one must be active within
//! 2 s; metadata changes and partition leader elections keep working; no metadata record is
//! lost; the killed controller returns and catches up with the leader's log. Run for three
//! dedicated controllers with three brokers, and for three combined nodes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use common::send;

/// DescribeQuorum's answer from the leader: leader id, epoch, each voter's log end offset.
type QuorumView = (i32, i32, Vec<(i32, i64)>);

/// A cluster started with `osprey cluster up`, brought down on drop.
struct KraftCluster {
    dir: tempfile::TempDir,
    /// (node id, controller port) of every voter.
    controllers: Vec<(i32, u16)>,
    /// (node id, broker port) of every broker.
    brokers: Vec<(i32, u16)>,
}

fn osprey(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args(args)
        .output()
        .expect("running osprey")
}

impl KraftCluster {
    fn up(controllers: usize, brokers: usize, combined: bool) -> KraftCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().display().to_string();
        // A base port from the pid spreads concurrent test runs, and the layout keeps the
        // two tests of one run apart; retry on a busy range.
        let layout = if combined { 50 } else { 0 };
        let mut base = 20_000 + (std::process::id() % 400) as u16 * 100 + layout;
        for _ in 0..10 {
            let b = base.to_string();
            let c = controllers.to_string();
            let n = brokers.to_string();
            let mut args = vec![
                "cluster",
                "up",
                "--brokers",
                &n,
                "--dir",
                &path,
                "--base-port",
                &b,
            ];
            if combined {
                args.push("--combined");
            } else {
                args.extend(["--controllers", &c]);
            }
            let out = osprey(&args);
            if out.status.success() {
                return Self::load(dir);
            }
            let err = String::from_utf8_lossy(&out.stderr).to_string();
            assert!(err.contains("in use"), "cluster up failed: {err}");
            base = base.wrapping_add(1_000).max(20_000);
        }
        panic!("no free port range for the cluster");
    }

    fn load(dir: tempfile::TempDir) -> KraftCluster {
        let text = std::fs::read_to_string(dir.path().join("cluster.json")).expect("cluster.json");
        let json: serde_json::Value = serde_json::from_str(&text).expect("cluster.json is JSON");
        let mut controllers = Vec::new();
        let mut brokers = Vec::new();
        for n in json["nodes"].as_array().expect("nodes") {
            let id = n["id"].as_i64().expect("id") as i32;
            if let Some(p) = n["controller_port"].as_u64() {
                controllers.push((id, p as u16));
            }
            if let Some(p) = n["broker_port"].as_u64() {
                brokers.push((id, p as u16));
            }
        }
        KraftCluster {
            dir,
            controllers,
            brokers,
        }
    }

    fn dir(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn kill(&self, id: i32) {
        let out = osprey(&[
            "cluster",
            "kill",
            "--node",
            &id.to_string(),
            "--dir",
            &self.dir(),
        ]);
        assert!(out.status.success(), "kill {id}: {out:?}");
    }

    fn start(&self, id: i32) {
        let out = osprey(&[
            "cluster",
            "start",
            "--node",
            &id.to_string(),
            "--dir",
            &self.dir(),
        ]);
        assert!(out.status.success(), "start {id}: {out:?}");
    }

    fn log_tail(&self, id: i32) -> String {
        let path: PathBuf = self.dir.path().join(format!("node-{id}.log"));
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.contains("DEBUG")).collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// DescribeQuorum on one controller: `(leader id, epoch, voters' end offsets)` when it
    /// is the leader, `None` otherwise (or when it is down).
    fn describe_quorum(&self, port: u16) -> Option<QuorumView> {
        let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let Ok(ResponseKind::DescribeQuorum(r)) = send(
            &format!("127.0.0.1:{port}"),
            0,
            RequestKind::DescribeQuorum(req),
        ) else {
            return None;
        };
        let p = r.topics.first()?.partitions.first()?;
        (p.error_code == 0).then(|| {
            (
                p.leader_id.0,
                p.leader_epoch,
                p.current_voters
                    .iter()
                    .map(|v| (v.replica_id.0, v.log_end_offset))
                    .collect(),
            )
        })
    }

    /// The active controller as the controllers other than `except` report it.
    fn active_controller(&self, except: Option<i32>) -> Option<QuorumView> {
        self.controllers
            .iter()
            .filter(|(id, _)| Some(*id) != except)
            .find_map(|(_, port)| self.describe_quorum(*port))
    }

    fn wait_for<T>(&self, timeout: Duration, what: &str, f: impl Fn() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(v) = f() {
                return v;
            }
            if start.elapsed() > timeout {
                let logs: Vec<String> = self
                    .controllers
                    .iter()
                    .map(|(id, _)| format!("--- node {id}\n{}", self.log_tail(*id)))
                    .collect();
                panic!("timed out waiting for {what}\n{}", logs.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn live_broker(&self, except: &[i32]) -> String {
        let (_, port) = self
            .brokers
            .iter()
            .find(|(id, _)| !except.contains(id))
            .expect("a live broker");
        format!("127.0.0.1:{port}")
    }

    /// CreateTopics through a broker (which forwards it to the active controller).
    fn create_topic(&self, broker: &str, name: &str, partitions: i32, rf: i16) -> i16 {
        let req = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.to_string())))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)])
            .with_timeout_ms(10_000);
        match send(broker, 5, RequestKind::CreateTopics(req)) {
            Ok(ResponseKind::CreateTopics(r)) => r.topics.first().map_or(-1, |t| t.error_code),
            other => panic!("CreateTopics failed: {other:?}"),
        }
    }

    /// Topic name → partition leaders, from a broker's Metadata.
    fn topics(&self, broker: &str) -> Vec<(String, Vec<i32>)> {
        let req = MetadataRequest::default().with_topics(None::<Vec<MetadataRequestTopic>>);
        let Ok(ResponseKind::Metadata(m)) = send(broker, 9, RequestKind::Metadata(req)) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<i32>)> = m
            .topics
            .iter()
            .map(|t| {
                let mut parts: Vec<_> = t.partitions.iter().collect();
                parts.sort_by_key(|p| p.partition_index);
                (
                    t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                    parts.iter().map(|p| p.leader_id.0).collect(),
                )
            })
            .collect();
        out.sort();
        out
    }
}

impl Drop for KraftCluster {
    fn drop(&mut self) {
        let _ = osprey(&["cluster", "down", "--dir", &self.dir()]);
    }
}

fn failover(controllers: usize, combined: bool) {
    let c = KraftCluster::up(controllers, 3, combined);
    let (leader, epoch, _) = c.wait_for(Duration::from_secs(10), "an active controller", || {
        c.active_controller(None)
    });
    // Metadata made before the failover.
    let broker = c.live_broker(&[leader]);
    c.wait_for(Duration::from_secs(10), "three registered brokers", || {
        let req = MetadataRequest::default().with_topics(None::<Vec<MetadataRequestTopic>>);
        match send(&broker, 9, RequestKind::Metadata(req)) {
            Ok(ResponseKind::Metadata(m)) if m.brokers.len() == 3 => Some(()),
            _ => None,
        }
    });
    for i in 0..3 {
        assert_eq!(c.create_topic(&broker, &format!("before-{i}"), 3, 3), 0);
    }
    let before = c.topics(&broker);
    assert_eq!(before.len(), 3, "{before:?}");

    // SIGKILL the active controller: a new one within 2 s.
    let killed_at = Instant::now();
    c.kill(leader);
    let (new_leader, new_epoch, _) =
        c.wait_for(Duration::from_secs(5), "a new active controller", || {
            c.active_controller(Some(leader))
                .filter(|(l, _, _)| *l != leader)
        });
    let elapsed = killed_at.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "new active controller {new_leader} after {elapsed:?}"
    );
    assert!(new_epoch > epoch);
    eprintln!("controller {leader} killed; {new_leader} active after {elapsed:?}");

    // Metadata changes keep working: a topic is created through a live broker.
    let broker = c.live_broker(&[leader]);
    let rf = if combined { 2 } else { 3 };
    assert_eq!(c.create_topic(&broker, "after", 2, rf), 0);

    // A partition leader election: kill a broker leading a partition of `before-0`; the
    // new controller moves leadership to another replica once the broker is fenced.
    let topics = c.topics(&broker);
    let (_, leaders) = topics
        .iter()
        .find(|(n, _)| n == "before-0")
        .expect("before-0 survives the failover");
    let victim = if combined {
        // The killed controller was a broker too: its partitions need new leaders.
        leader
    } else {
        leaders[0]
    };
    if !combined {
        c.kill(victim);
    }
    let broker = c.live_broker(&[leader, victim]);
    c.wait_for(
        Duration::from_secs(20),
        "partition leaders moved off the dead broker",
        || {
            let t = c.topics(&broker);
            let (_, leaders) = t.iter().find(|(n, _)| n == "before-0")?;
            leaders.iter().all(|&l| l >= 0 && l != victim).then_some(())
        },
    );

    // No metadata record lost: every topic is there with its partitions.
    let after = c.topics(&broker);
    for (name, leaders) in &before {
        let now = after.iter().find(|(n, _)| n == name);
        assert_eq!(
            now.map(|(_, l)| l.len()),
            Some(leaders.len()),
            "{name} lost: {after:?}"
        );
    }
    assert!(after.iter().any(|(n, l)| n == "after" && l.len() == 2));

    // The killed controller returns and catches up with the leader's log.
    c.start(leader);
    c.wait_for(
        Duration::from_secs(15),
        "the restarted controller to catch up",
        || {
            let (l, _, ends) = c.active_controller(None)?;
            let leader_end = ends.iter().find(|(id, _)| *id == l)?.1;
            let returned = ends.iter().find(|(id, _)| *id == leader)?.1;
            (returned == leader_end && leader_end > 0).then_some(())
        },
    );
    // And the quorum still takes metadata changes.
    assert_eq!(c.create_topic(&broker, "last", 1, 2), 0);
    let dir = Path::new(c.dir.path()).join(format!("node-{leader}-data/__cluster_metadata-0"));
    assert!(dir.join("quorum-state").exists());
}

#[test]
fn three_controllers_fail_over_within_two_seconds() {
    failover(3, false);
}

#[test]
fn three_combined_nodes_fail_over_within_two_seconds() {
    failover(3, true);
}
