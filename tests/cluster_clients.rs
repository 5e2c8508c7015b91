//! Real Kafka clients against a three-broker Osprey cluster, unchanged: Debian's kcat
//! (librdkafka 2.0.2), confluent-kafka (librdkafka 2.x) and kafka-python, plus
//! `osprey topics describe` in kafka-topics.sh's layout.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use common::{have_kcat, python, serial, Cluster};

fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .arg("60")
        .arg("kcat")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kcat");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn osprey_topics(cluster: &Cluster, args: &[&str]) -> String {
    let bootstrap = cluster.bootstrap();
    let first = bootstrap.split(',').next().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args(["topics", "--bootstrap-server", first])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kcat_lists_metadata_and_round_trips_keys_and_headers() {
    let _guard = serial();
    if !have_kcat() {
        return;
    }
    let cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    cluster.create_topic("kc", 3, 3, &[]);
    let bootstrap = cluster.bootstrap();
    let listing = kcat(&["-L", "-b", &bootstrap], None);
    assert!(listing.contains(" 3 brokers:"), "{listing}");
    for id in cluster.broker_ids() {
        assert!(
            listing.contains(&format!("broker {id} at 127.0.0.1:")),
            "{listing}"
        );
    }
    assert!(
        listing.contains("topic \"kc\" with 3 partitions:"),
        "{listing}"
    );
    assert!(listing.contains("isrs: "), "{listing}");
    let input: String = (0..10_000).map(|i| format!("key{i}:value{i}\n")).collect();
    kcat(
        &[
            "-P",
            "-b",
            &bootstrap,
            "-t",
            "kc",
            "-K",
            ":",
            "-H",
            "origin=kcat",
            "-H",
            "n=1",
            "-X",
            "acks=all",
        ],
        Some(&input),
    );
    let out = kcat(
        &[
            "-C",
            "-b",
            &bootstrap,
            "-t",
            "kc",
            "-e",
            "-q",
            "-f",
            "%k|%s|%h\n",
        ],
        None,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 10_000, "every message comes back once");
    let mut seen = HashSet::new();
    for l in lines {
        let parts: Vec<&str> = l.split('|').collect();
        assert_eq!(parts.len(), 3, "{l}");
        assert_eq!(
            parts[0].trim_start_matches("key"),
            parts[1].trim_start_matches("value")
        );
        assert_eq!(parts[2], "origin=kcat,n=1", "headers intact");
        assert!(seen.insert(parts[0].to_string()));
    }
}

#[test]
fn confluent_group_reads_each_record_once_and_resumes_from_commits() {
    let _guard = serial();
    let cluster = Cluster::start(
        3,
        &[
            ("min.insync.replicas", "2"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    cluster.create_topic("clicks", 6, 3, &[]);
    let produce = |prefix: &str, n: usize| {
        python(
            "produce.py",
            &[
                "--bootstrap".into(),
                cluster.bootstrap(),
                "--topic".into(),
                "clicks".into(),
                "--count".into(),
                n.to_string(),
                "--idempotent".into(),
                "--prefix".into(),
                prefix.into(),
            ],
            Duration::from_secs(240),
        )
        .map(|out| {
            serde_json::from_str::<serde_json::Value>(&out).unwrap()["acked"]
                .as_array()
                .unwrap()
                .len()
        })
    };
    let Some(acked) = produce("a", 100_000) else {
        return;
    };
    assert_eq!(
        acked, 100_000,
        "idempotent acks=all producer: every record acknowledged"
    );
    let consume = |expect: usize| -> HashMap<String, Vec<String>> {
        let out = python(
            "group_consume.py",
            &[
                "--bootstrap".into(),
                cluster.bootstrap(),
                "--topic".into(),
                "clicks".into(),
                "--group".into(),
                "readers".into(),
                "--expect".into(),
                expect.to_string(),
            ],
            Duration::from_secs(180),
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["values"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, vals)| {
                (
                    k.clone(),
                    vals.as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect()
    };
    let first = consume(100_000);
    let all: Vec<&String> = first.values().flatten().collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        100_000,
        "each record read exactly once between the two"
    );
    assert_eq!(unique.len(), 100_000);
    assert!(
        first.values().all(|v| !v.is_empty()),
        "both consumers got partitions"
    );
    // Both restart: they resume from the committed offsets and see only the new records.
    assert_eq!(produce("b", 1_000), Some(1_000));
    let second = consume(1_000);
    let again: Vec<&String> = second.values().flatten().collect();
    assert_eq!(
        again.len(),
        1_000,
        "only records after the commits: {}",
        again.len()
    );
    assert!(again.iter().all(|v| v.starts_with('b')));
}

#[test]
fn kafka_python_admin_and_round_trip() {
    let _guard = serial();
    let cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    let Some(out) = python(
        "kp_round_trip.py",
        &[
            "--bootstrap".into(),
            cluster.bootstrap(),
            "--topic".into(),
            "kp".into(),
        ],
        Duration::from_secs(120),
    ) else {
        return;
    };
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["partitions"], serde_json::json!([0, 1, 2]));
    assert!(v["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r.as_array().unwrap().len() == 3));
    assert!(v["isr"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r.as_array().unwrap().len() == 3));
    assert_eq!(v["listed"], true);
    assert_eq!(v["received"], 1000);
    assert_eq!(v["pairs_ok"], true);
}

#[test]
fn topics_describe_follows_a_broker_death() {
    let _guard = serial();
    let mut cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    cluster.create_topic("orders", 3, 3, &[("min.insync.replicas", "2")]);
    let all = osprey_topics(&cluster, &["describe", "--topic", "orders"]);
    let lines: Vec<&str> = all.lines().collect();
    assert!(lines[0].starts_with("Topic: orders\tTopicId: "), "{all}");
    assert!(
        lines[0]
            .ends_with("PartitionCount: 3\tReplicationFactor: 3\tConfigs: min.insync.replicas=2"),
        "{all}"
    );
    for (p, line) in lines[1..].iter().enumerate() {
        let prefix = format!("\tTopic: orders\tPartition: {p}\tLeader: ");
        assert!(line.starts_with(&prefix), "{line}");
    }
    assert_eq!(
        osprey_topics(&cluster, &["describe", "--under-replicated-partitions"]),
        ""
    );
    let (leader, _) = cluster.partition_state("orders", 0).unwrap();
    cluster.kill(leader);
    cluster.wait_until(Duration::from_secs(15), "a new leader", |c| {
        c.partition_state("orders", 0)
            .is_some_and(|(l, isr)| l != leader && l >= 0 && isr.len() == 2)
    });
    let under = osprey_topics(&cluster, &["describe", "--under-replicated-partitions"]);
    assert_eq!(under.lines().count(), 3, "{under}");
    for line in under.lines() {
        assert!(!line.contains(&format!("Leader: {leader}\t")), "{line}");
        let isr = line.split("Isr: ").nth(1).unwrap();
        assert!(!isr.split(',').any(|b| b == leader.to_string()), "{line}");
    }
}

/// Producer and group consumers keep going while a broker is SIGKILLed and restarted.
#[test]
fn clients_fail_over_by_themselves() {
    let _guard = serial();
    let mut cluster = Cluster::start(
        3,
        &[
            ("min.insync.replicas", "2"),
            ("group.initial.rebalance.delay.ms", "0"),
        ],
    );
    cluster.create_topic("stream", 6, 3, &[]);
    let (victim, _) = cluster.partition_state("stream", 0).unwrap();
    let Some(out) = python(
        "produce.py",
        &[
            "--bootstrap".into(),
            cluster.bootstrap(),
            "--topic".into(),
            "stream".into(),
            "--count".into(),
            "50000".into(),
            "--idempotent".into(),
            "--kill-pid".into(),
            cluster.pid(victim).to_string(),
            "--kill-at".into(),
            "20000".into(),
        ],
        Duration::from_secs(240),
    ) else {
        return;
    };
    cluster.reap(victim);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["acked"].as_array().unwrap().len(), 50_000);
    cluster.start_node(victim);
    let out = python(
        "group_consume.py",
        &[
            "--bootstrap".into(),
            cluster.bootstrap(),
            "--topic".into(),
            "stream".into(),
            "--group".into(),
            "failover".into(),
            "--expect".into(),
            "50000".into(),
        ],
        Duration::from_secs(180),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let values: Vec<String> = v["values"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|a| {
            a.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
        })
        .collect();
    let unique: HashSet<&String> = values.iter().collect();
    assert_eq!(
        values.len(),
        50_000,
        "no acknowledged message lost or duplicated"
    );
    assert_eq!(unique.len(), 50_000);
}
