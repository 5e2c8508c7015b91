//! Damaged replicas and mixed segment sizes, on real `osprey broker` processes on 127.0.0.1
//! (one controller, three brokers) with a real client (confluent-kafka).
//!
//! A follower is stopped cleanly, its files are damaged, and it is started again. A log that
//! cannot be opened (a corrupt batch header at a sealed segment's end, a malformed
//! leader-epoch checkpoint, a deleted middle segment) makes the replica offline: Metadata and
//! `osprey topics describe` show it, it leaves the ISR, and when the two healthy brokers are
//! stopped it is not elected (the partition waits for them). They come back, every
//! acknowledged record is read by a consumer, and after the files are repaired or removed
//! the replica re-replicates and rejoins the ISR. A truncated offset index is derived data:
//! it is rebuilt, and the replica stays a healthy member throughout. Each scenario ends with
//! every acknowledged record read, once, from the replica's own files.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{python, send, serial, Cluster};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::RecordBatchDecoder;
use osprey_broker::storage::{BatchBuilder, BatchView, Batches, LogConfig, PartitionLog};

const TOPIC: &str = "ledger";
const RECORDS: usize = 4000;

/// Acknowledged values (each record's value is unique).
fn produce(cluster: &Cluster, topic: &str, count: usize) -> Option<Vec<String>> {
    let out = python(
        "produce.py",
        &[
            "--bootstrap".into(),
            cluster.bootstrap(),
            "--topic".into(),
            topic.into(),
            "--count".into(),
            count.to_string(),
            "--idempotent".into(),
            // Batches well below the 16 KiB segments, which a leader could not store.
            "--batch-size".into(),
            "4000".into(),
        ],
        Duration::from_secs(240),
    )?;
    let v: serde_json::Value = serde_json::from_str(&out).expect("produce.py json");
    let acked: Vec<String> = v["acked"]
        .as_array()
        .expect("acked")
        .iter()
        .map(|r| r[2].as_str().expect("value").to_string())
        .collect();
    let errors = v["errors"].as_array().expect("errors");
    assert!(
        errors.is_empty(),
        "{} produce errors, first {}",
        errors.len(),
        errors[0]
    );
    Some(acked)
}

/// Every value of partition 0, read from its start to its high watermark.
fn consume(cluster: &Cluster, topic: &str) -> Vec<String> {
    let out = python(
        "consume.py",
        &[
            "--bootstrap".into(),
            cluster.bootstrap(),
            "--topic".into(),
            topic.into(),
            "--partitions".into(),
            "1".into(),
        ],
        Duration::from_secs(120),
    )
    .expect("the producer ran, so the consumer can");
    let v: serde_json::Value = serde_json::from_str(&out).expect("consume.py json");
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| r[2].as_str().expect("value").to_string())
        .collect()
}

/// Every acknowledged value is read exactly once.
fn assert_all_read_once(read: &[String], acked: &[String]) {
    let distinct: BTreeSet<&String> = read.iter().collect();
    assert_eq!(distinct.len(), read.len(), "a record was read twice");
    let missing: Vec<&String> = acked.iter().filter(|v| !distinct.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records were not read, first {:?}",
        missing.len(),
        acked.len(),
        missing.first()
    );
}

/// The partition as a broker's Metadata shows it: (leader, isr, offline replicas).
fn partition(cluster: &Cluster, on: Option<i32>) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let m = match on {
        Some(id) => cluster.metadata_from(id, Some(&[TOPIC]))?,
        None => cluster.metadata(Some(&[TOPIC]))?,
    };
    let p = m.topics.into_iter().next()?.partitions.into_iter().next()?;
    Some((
        p.leader_id.0,
        p.isr_nodes.iter().map(|b| b.0).collect(),
        p.offline_replicas.iter().map(|b| b.0).collect(),
    ))
}

/// `osprey topics describe` of the topic, through broker `via`.
fn describe(cluster: &Cluster, via: i32) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args([
            "topics",
            "--bootstrap-server",
            &format!("127.0.0.1:{}", cluster.nodes[&via].port),
            "describe",
            "--topic",
            TOPIC,
        ])
        .output()
        .expect("osprey topics describe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn partition_dir(cluster: &Cluster, broker: i32) -> PathBuf {
    cluster.nodes[&broker].data.join(format!("{TOPIC}-0"))
}

/// The segment files of a partition directory, by base offset.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// The byte position of the last batch of a segment file.
fn last_batch_position(segment: &Path) -> usize {
    let bytes = std::fs::read(segment).expect("segment");
    let (mut pos, mut last) = (0usize, 0usize);
    for b in Batches::new(Bytes::from(bytes)) {
        last = pos;
        pos += b.expect("valid batch").as_slice().len();
    }
    last
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    /// The last batch header of the first (sealed) segment gets a garbage batchLength.
    CorruptSegment,
    /// Every offset index loses its last bytes.
    TruncatedIndex,
    /// The leader-epoch checkpoint no longer parses.
    CorruptCheckpoint,
    /// The second segment (`.log` and `.index`) is deleted.
    DeletedMiddleSegment,
}

fn damage(dir: &Path, what: Damage) {
    let segs = segments(dir);
    assert!(segs.len() >= 3, "want several segments, have {segs:?}");
    match what {
        Damage::CorruptSegment => {
            let pos = last_batch_position(&segs[0]);
            let mut bytes = std::fs::read(&segs[0]).expect("read");
            bytes[pos + 8..pos + 12].copy_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
            std::fs::write(&segs[0], bytes).expect("write");
        }
        Damage::TruncatedIndex => {
            for s in &segs {
                let index = s.with_extension("index");
                let len = std::fs::metadata(&index).expect("index").len();
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&index)
                    .expect("open index");
                f.set_len(len.saturating_sub(5)).expect("truncate");
            }
        }
        Damage::CorruptCheckpoint => {
            std::fs::write(
                dir.join("leader-epoch-checkpoint"),
                "0\n2\n0 0\nnot an entry\n",
            )
            .expect("write checkpoint");
        }
        Damage::DeletedMiddleSegment => {
            std::fs::remove_file(&segs[1]).expect("rm log");
            std::fs::remove_file(segs[1].with_extension("index")).expect("rm index");
        }
    }
}

/// Repairs what [`damage`] did: a bad checkpoint is deleted (it is rebuilt from the
/// segments); anything else is repaired by removing the replica's directory (it
/// re-replicates from the leader).
fn repair(dir: &Path, what: Damage) {
    match what {
        Damage::CorruptCheckpoint => {
            std::fs::remove_file(dir.join("leader-epoch-checkpoint")).expect("rm checkpoint")
        }
        _ => std::fs::remove_dir_all(dir).expect("rm partition dir"),
    }
}

fn scenario(what: Damage) {
    let _guard = serial();
    let mut cluster = Cluster::start(
        3,
        &[("min.insync.replicas", "2"), ("log.segment.bytes", "16384")],
    );
    cluster.create_topic(TOPIC, 1, 3, &[]);
    let Some(acked) = produce(&cluster, TOPIC, RECORDS) else {
        return;
    };
    assert_eq!(acked.len(), RECORDS);
    cluster.wait_until(Duration::from_secs(30), "a full ISR", |c| {
        partition(c, None).is_some_and(|(_, isr, _)| isr.len() == 3)
    });
    let (leader, _, _) = partition(&cluster, None).expect("partition");
    let brokers = cluster.broker_ids();
    let victim = *brokers.iter().find(|&&b| b != leader).expect("a follower");
    let healthy: Vec<i32> = brokers.iter().copied().filter(|&b| b != victim).collect();

    cluster.stop(victim);
    let dir = partition_dir(&cluster, victim);
    damage(&dir, what);
    cluster.start_node(victim);

    if what == Damage::TruncatedIndex {
        // Derived data: rebuilt from the segments. The replica is whole and rejoins.
        cluster.wait_until(Duration::from_secs(30), "the replica rejoins", |c| {
            partition(c, Some(victim))
                .is_some_and(|(_, isr, offline)| isr.contains(&victim) && offline.is_empty())
        });
    } else {
        cluster.wait_until(Duration::from_secs(30), "the replica is offline", |c| {
            partition(c, Some(victim))
                .is_some_and(|(_, isr, offline)| offline == vec![victim] && !isr.contains(&victim))
        });
        let shown = describe(&cluster, victim);
        assert!(
            shown.contains(&format!("\tOffline: {victim}\n")),
            "describe shows the offline replica:\n{shown}"
        );
        let log = std::fs::read_to_string(&cluster.nodes[&victim].log).unwrap_or_default();
        assert_eq!(
            log.matches("the partition's log cannot be opened").count(),
            1,
            "the failure is logged once"
        );

        // The healthy brokers stop, leader last: the damaged replica must not lead.
        for &b in healthy.iter().filter(|&&b| b != leader) {
            cluster.stop(b);
        }
        cluster.stop(leader);
        cluster.wait_until(Duration::from_secs(20), "the partition is offline", |c| {
            partition(c, Some(victim)).is_some_and(|(l, _, _)| l == -1)
        });
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let (l, _, _) = partition(&cluster, Some(victim)).expect("metadata");
            assert_ne!(l, victim, "the damaged replica was elected");
            std::thread::sleep(Duration::from_millis(200));
        }
        for &b in &healthy {
            cluster.start_node(b);
        }
        cluster.wait_until(Duration::from_secs(30), "a healthy leader", |c| {
            partition(c, None).is_some_and(|(l, isr, _)| healthy.contains(&l) && isr.len() == 2)
        });
        assert_all_read_once(&consume(&cluster, TOPIC), &acked);

        // Repaired (or removed), the replica re-replicates and rejoins.
        cluster.stop(victim);
        repair(&dir, what);
        cluster.start_node(victim);
        cluster.wait_until(
            Duration::from_secs(60),
            "the repaired replica rejoins",
            |c| {
                partition(c, Some(victim))
                    .is_some_and(|(_, isr, offline)| isr.contains(&victim) && offline.is_empty())
            },
        );
    }

    // The replica holds every acknowledged record again, once each: read from its files
    // (the whole cluster stopped cleanly).
    for b in cluster.broker_ids() {
        cluster.stop(b);
    }
    assert_all_read_once(&values_in(&dir), &acked);
}

/// Every record value in a stopped replica's log, in offset order.
fn values_in(dir: &Path) -> Vec<String> {
    let log = PartitionLog::open(dir, LogConfig::default()).expect("open replica log");
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let mut bytes = log.read(offset, 1 << 20).expect("read");
        assert!(!bytes.is_empty());
        let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("record batches");
        for r in sets.into_iter().flat_map(|s| s.records) {
            if r.offset >= offset {
                offset = r.offset + 1;
                let v = r.value.expect("a value");
                out.push(String::from_utf8(v.to_vec()).expect("utf-8"));
            }
        }
    }
    out
}

#[test]
fn a_corrupt_segment_takes_the_replica_offline_until_it_is_removed() {
    scenario(Damage::CorruptSegment);
}

#[test]
fn a_truncated_index_is_rebuilt_and_the_replica_stays_whole() {
    scenario(Damage::TruncatedIndex);
}

#[test]
fn a_corrupt_checkpoint_takes_the_replica_offline_until_it_is_repaired() {
    scenario(Damage::CorruptCheckpoint);
}

#[test]
fn a_deleted_middle_segment_takes_the_replica_offline_until_it_is_removed() {
    scenario(Damage::DeletedMiddleSegment);
}

/// A raw acks=all Produce of one batch holding one record of `value_len` bytes; returns the
/// error code.
fn produce_big(cluster: &Cluster, broker: i32, topic: &str, value_len: usize) -> i16 {
    let value = vec![b'x'; value_len];
    let batch = BatchBuilder::new(0)
        .record(0, Some(b"k"), Some(&value))
        .build();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch.to_vec())))])]);
    let addr = format!("127.0.0.1:{}", cluster.nodes[&broker].port);
    match send(&addr, 7, RequestKind::Produce(req)).expect("produce") {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].error_code,
        other => panic!("unexpected {other:?}"),
    }
}

/// (base offset, size) of every batch of a stopped broker's replica.
fn batches_of(dir: &Path) -> Vec<(i64, u64)> {
    let log = PartitionLog::open(dir, LogConfig::default()).expect("open replica log");
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 22).expect("read");
        assert!(!bytes.is_empty());
        for b in Batches::new(bytes) {
            let h = b.expect("valid batch").header();
            out.push((h.base_offset, h.size()));
            offset = h.next_offset();
        }
    }
    out
}

/// One follower rolls at 64 KiB while the others keep the default: a 300 KB batch the
/// leader accepted gets a segment of its own on that follower, which stays in the ISR, so
/// acks=all completes. The topic's `segment.bytes` rolls every replica; `segment.ms`, which
/// Osprey would not apply, is refused by name.
#[test]
fn mixed_segment_sizes_never_stall_replication_and_topic_segment_bytes_rolls() {
    let _guard = serial();
    let mut cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    cluster.create_topic(TOPIC, 1, 3, &[]);
    let (leader, _) = cluster.partition_state(TOPIC, 0).expect("partition");
    let small = *cluster
        .broker_ids()
        .iter()
        .find(|&&b| b != leader)
        .expect("a follower");
    cluster.stop(small);
    let config = cluster.nodes[&small].config.clone();
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str("log.segment.bytes=65536\n");
    std::fs::write(&config, text).expect("config");
    cluster.start_node(small);
    cluster.wait_until(Duration::from_secs(30), "a full ISR", |c| {
        c.partition_state(TOPIC, 0)
            .is_some_and(|(_, isr)| isr.len() == 3)
    });
    for value_len in [100, 300_000, 200, 250_000, 300] {
        assert_eq!(produce_big(&cluster, leader, TOPIC, value_len), 0);
    }
    cluster.wait_until(
        Duration::from_secs(30),
        "the small follower stays in sync",
        |c| {
            c.partition_state(TOPIC, 0)
                .is_some_and(|(_, isr)| isr.contains(&small))
        },
    );
    cluster.stop(small);
    cluster.stop(leader);
    let on_small = batches_of(&partition_dir(&cluster, small));
    let on_leader = batches_of(&partition_dir(&cluster, leader));
    assert_eq!(on_small, on_leader);
    // Each oversized batch alone in its segment on the small follower.
    let segs = segments(&partition_dir(&cluster, small));
    assert_eq!(segs.len(), 5, "{segs:?}");
    cluster.start_node(small);
    cluster.start_node(leader);
    cluster.wait_until(
        Duration::from_secs(30),
        "every broker back in the ISR",
        |c| {
            c.partition_state(TOPIC, 0)
                .is_some_and(|(_, isr)| isr.len() == 3)
        },
    );

    // Topic-level segment.bytes takes effect on every replica.
    cluster.create_topic("rolled", 1, 3, &[("segment.bytes", "4096")]);
    let (rolled_leader, _) = cluster.partition_state("rolled", 0).expect("partition");
    for _ in 0..40 {
        assert_eq!(produce_big(&cluster, rolled_leader, "rolled", 500), 0);
    }
    cluster.wait_until(Duration::from_secs(30), "a full ISR", |c| {
        c.partition_state("rolled", 0)
            .is_some_and(|(_, isr)| isr.len() == 3)
    });
    for b in cluster.broker_ids() {
        let dir = cluster.nodes[&b].data.join("rolled-0");
        let n = segments(&dir).len();
        assert!(
            n >= 5,
            "broker {b} rolled at the topic's segment.bytes: {n} segments"
        );
    }

    // segment.ms is refused with a clear error.
    let out = Command::new(env!("CARGO_BIN_EXE_osprey"))
        .args([
            "topics",
            "--bootstrap-server",
            &format!("127.0.0.1:{}", cluster.nodes[&leader].port),
            "create",
            "--topic",
            "timed",
            "--partitions",
            "1",
            "--replication-factor",
            "1",
            "--config",
            "segment.ms=1000",
        ])
        .output()
        .expect("osprey topics create");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("segment.ms"), "{err}");
}
