//! The broker issue's acceptance scenarios, on real `osprey broker` processes on 127.0.0.1
//! (one controller, three brokers) with real clients: confluent-kafka (librdkafka) for the
//! idempotent producer and consumer, and Osprey's kafka-protocol client for raw Produce
//! requests whose error codes are checked exactly.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use common::{python, send, serial, Cluster};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::storage::{BatchBuilder, BatchView, Batches, LogConfig, PartitionLog};

type Records = Vec<(i32, i64, String)>;

fn parse_records(v: &serde_json::Value) -> Records {
    v.as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r[0].as_i64().unwrap() as i32,
                r[1].as_i64().unwrap(),
                r[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn consume_all(cluster: &Cluster, topic: &str, partitions: i32) -> Option<Records> {
    let out = python(
        "consume.py",
        &[
            "--bootstrap".into(),
            cluster.bootstrap(),
            "--topic".into(),
            topic.into(),
            "--partitions".into(),
            partitions.to_string(),
        ],
        Duration::from_secs(120),
    )?;
    Some(parse_records(
        &serde_json::from_str(&out).expect("consume.py json"),
    ))
}

fn produce(
    cluster: &Cluster,
    topic: &str,
    count: usize,
    extra: &[String],
) -> Option<(Records, Vec<String>)> {
    let mut args = vec![
        "--bootstrap".into(),
        cluster.bootstrap(),
        "--topic".into(),
        topic.into(),
        "--count".into(),
        count.to_string(),
    ];
    args.extend_from_slice(extra);
    let out = python("produce.py", &args, Duration::from_secs(240))?;
    let v: serde_json::Value = serde_json::from_str(&out).expect("produce.py json");
    let errors = v["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect();
    Some((parse_records(&v["acked"]), errors))
}

/// The (base offset, leader epoch, crc) of every batch of a stopped broker's replica.
fn batch_layout(
    cluster: &Cluster,
    broker: i32,
    topic: &str,
    partition: i32,
) -> Vec<(i64, i32, u32)> {
    let dir = cluster.nodes[&broker]
        .data
        .join(format!("{topic}-{partition}"));
    let log = PartitionLog::open(&dir, LogConfig::default()).expect("open replica log");
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 20).expect("read");
        if bytes.is_empty() {
            break;
        }
        for b in Batches::new(bytes) {
            let h = b.expect("valid batch").header();
            out.push((h.base_offset, h.partition_leader_epoch, h.crc));
            offset = h.next_offset();
        }
    }
    out
}

#[test]
fn leader_killed_mid_stream_loses_no_acknowledged_record() {
    let _guard = serial();
    let mut cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    cluster.create_topic("orders", 6, 3, &[]);
    let (victim, _) = cluster.partition_state("orders", 0).expect("partition 0");
    const N: usize = 100_000;
    let Some((acked, errors)) = produce(
        &cluster,
        "orders",
        N,
        &[
            "--idempotent".into(),
            "--kill-pid".into(),
            cluster.pid(victim).to_string(),
            "--kill-at".into(),
            (N / 3).to_string(),
        ],
    ) else {
        return;
    };
    cluster.reap(victim);
    assert!(errors.is_empty(), "producer errors: {errors:?}");
    assert_eq!(
        acked.len(),
        N,
        "every record is acknowledged despite the failover"
    );

    // A new leader from the ISR, in a new leader epoch.
    let (new_leader, isr) = cluster.partition_state("orders", 0).unwrap();
    assert_ne!(new_leader, victim);
    assert!(
        !isr.contains(&victim),
        "the dead broker left the ISR: {isr:?}"
    );

    // Every acknowledged record is readable exactly once, at its offset, in order.
    let consumed = consume_all(&cluster, "orders", 6).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (_, _, v) in &consumed {
        *seen.entry(v.clone()).or_default() += 1;
    }
    let at: HashSet<(i32, i64, String)> = consumed.iter().cloned().collect();
    for (p, o, v) in &acked {
        assert_eq!(
            seen.get(v),
            Some(&1),
            "record {v} read {:?} times",
            seen.get(v)
        );
        assert!(
            at.contains(&(*p, *o, v.clone())),
            "record {v} not at {p}/{o}"
        );
    }
    let mut per_partition: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for (p, _, v) in &consumed {
        per_partition
            .entry(*p)
            .or_default()
            .push(v.parse().unwrap());
    }
    for (p, vals) in per_partition {
        assert!(
            vals.windows(2).all(|w| w[0] < w[1]),
            "partition {p} out of order"
        );
    }

    // The killed broker restarts, truncates what diverged, catches up and rejoins the ISR.
    cluster.start_node(victim);
    cluster.wait_until(
        Duration::from_secs(30),
        "the restarted broker rejoins every ISR",
        |c| {
            (0..6).all(|p| {
                c.partition_state("orders", p)
                    .is_some_and(|(_, isr)| isr.len() == 3)
            })
        },
    );
    for id in cluster.broker_ids() {
        cluster.stop(id);
    }
    for p in 0..6 {
        let layouts: Vec<_> = cluster
            .broker_ids()
            .iter()
            .map(|&b| batch_layout(&cluster, b, "orders", p))
            .collect();
        assert!(
            layouts.windows(2).all(|w| w[0] == w[1]),
            "replicas of orders-{p} differ after catching up"
        );
    }
}

fn produce_raw(cluster: &Cluster, broker: i32, topic: &str, acks: i16) -> (i16, i64) {
    let batch = BatchBuilder::new(0)
        .record(0, Some(b"k"), Some(b"v"))
        .build();
    let req = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(batch.to_vec())))])]);
    let addr = format!("127.0.0.1:{}", cluster.nodes[&broker].port);
    match send(&addr, 7, RequestKind::Produce(req)).expect("produce") {
        ResponseKind::Produce(r) => {
            let p = &r.responses[0].partition_responses[0];
            (p.error_code, p.base_offset)
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn min_insync_replicas_refuses_acks_all_but_not_acks_1() {
    let _guard = serial();
    let mut cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    cluster.create_topic("payments", 1, 3, &[]);
    let (leader, _) = cluster.partition_state("payments", 0).unwrap();
    assert_eq!(produce_raw(&cluster, leader, "payments", -1).0, 0);
    let others: Vec<i32> = cluster
        .broker_ids()
        .into_iter()
        .filter(|&b| b != leader)
        .collect();
    for &b in &others {
        cluster.kill(b);
    }
    cluster.wait_until(Duration::from_secs(15), "ISR shrinks to the leader", |c| {
        c.partition_state("payments", 0)
            .is_some_and(|(l, isr)| l == leader && isr == vec![leader])
    });
    let (code, _) = produce_raw(&cluster, leader, "payments", -1);
    assert_eq!(code, 19, "acks=all gets NOT_ENOUGH_REPLICAS");
    let (code, offset) = produce_raw(&cluster, leader, "payments", 1);
    assert_eq!(code, 0, "acks=1 succeeds");
    assert_eq!(offset, 1);
}

/// Stops every replica, leader last; with unclean election off the partition is offline
/// until an ISR (or ELR) member returns, and then nothing acknowledged is missing.
#[test]
fn unclean_election_off_waits_for_an_isr_member() {
    let _guard = serial();
    let mut cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    cluster.create_topic("ledger", 1, 3, &[]);
    let Some((acked, errors)) = produce(&cluster, "ledger", 1000, &["--idempotent".into()]) else {
        return;
    };
    assert!(errors.is_empty(), "{errors:?}");
    let (leader, _) = cluster.partition_state("ledger", 0).unwrap();
    let mut order: Vec<i32> = cluster
        .broker_ids()
        .into_iter()
        .filter(|&b| b != leader)
        .collect();
    order.push(leader);
    // Controlled shutdowns: the last two stay eligible leaders (KIP-966 ELR).
    for &b in &order {
        cluster.stop(b);
    }
    let last = *order.last().unwrap();
    let out_of_sync = order[0];
    // Only the out-of-sync replica returns: the partition must stay offline.
    cluster.start_node(out_of_sync);
    std::thread::sleep(Duration::from_secs(3));
    let (l, _) = cluster.partition_state("ledger", 0).expect("metadata");
    assert_eq!(
        l, -1,
        "no leader while every ISR member is down and unclean election is off"
    );
    cluster.start_node(last);
    cluster.wait_until(Duration::from_secs(15), "an ISR member leads again", |c| {
        c.partition_state("ledger", 0)
            .is_some_and(|(l, _)| l == last)
    });
    let consumed: HashSet<String> = consume_all(&cluster, "ledger", 1)
        .unwrap()
        .into_iter()
        .map(|r| r.2)
        .collect();
    for (_, _, v) in &acked {
        assert!(consumed.contains(v), "acknowledged record {v} lost");
    }
}

/// With unclean election on, the partition comes back on an out-of-sync replica and the
/// records only the dead ISR had are lost: the test names them.
#[test]
fn unclean_election_on_shows_what_was_lost() {
    let _guard = serial();
    let mut cluster = Cluster::start(3, &[("min.insync.replicas", "1")]);
    cluster.create_topic(
        "events",
        1,
        3,
        &[("unclean.leader.election.enable", "true")],
    );
    let (leader, _) = cluster.partition_state("events", 0).unwrap();
    let followers: Vec<i32> = cluster
        .broker_ids()
        .into_iter()
        .filter(|&b| b != leader)
        .collect();
    let Some((first, _)) = produce(
        &cluster,
        "events",
        100,
        &["--prefix".into(), "a".into(), "--idempotent".into()],
    ) else {
        return;
    };
    assert_eq!(first.len(), 100);
    // Both followers die; the leader alone is the ISR and keeps acknowledging acks=all.
    for &b in &followers {
        cluster.kill(b);
    }
    cluster.wait_until(Duration::from_secs(15), "ISR = the leader", |c| {
        c.partition_state("events", 0)
            .is_some_and(|(l, isr)| l == leader && isr == vec![leader])
    });
    // Idempotent, so a retriable error (a leader briefly fenced on a loaded machine) is
    // retried rather than reported: what is acknowledged is what matters here.
    let (second, errors) = produce(
        &cluster,
        "events",
        50,
        &["--prefix".into(), "b".into(), "--idempotent".into()],
    )
    .unwrap();
    assert!(errors.is_empty(), "{errors:?}\n{}", cluster.log_tails());
    assert_eq!(second.len(), 50);
    // The leader dies; an out-of-sync follower comes back and is elected uncleanly.
    cluster.kill(leader);
    cluster.start_node(followers[0]);
    cluster.wait_until(Duration::from_secs(15), "unclean leader", |c| {
        c.partition_state("events", 0)
            .is_some_and(|(l, _)| l == followers[0])
    });
    let consumed: HashSet<String> = consume_all(&cluster, "events", 1)
        .unwrap()
        .into_iter()
        .map(|r| r.2)
        .collect();
    let lost: Vec<&String> = first
        .iter()
        .chain(second.iter())
        .map(|r| &r.2)
        .filter(|v| !consumed.contains(*v))
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("b{i}")).collect();
    eprintln!("acknowledged records lost by the unclean election: {lost:?}");
    assert_eq!(
        lost.len(),
        50,
        "exactly the records acknowledged by the lone ISR are lost"
    );
    assert!(lost.iter().zip(&expected).all(|(a, b)| *a == b));
}

/// A torn and a corrupt tail on the active segment: recovery cuts it and keeps the rest.
#[test]
fn restart_cuts_a_torn_or_corrupt_segment_tail() {
    let _guard = serial();
    let mut cluster = Cluster::start(1, &[("min.insync.replicas", "1")]);
    cluster.create_topic("journal", 1, 1, &[]);
    let Some((acked, _)) = produce(&cluster, "journal", 200, &["--acks".into(), "all".into()])
    else {
        return;
    };
    assert_eq!(acked.len(), 200);
    let broker = cluster.broker_ids()[0];
    cluster.stop(broker);
    let dir = cluster.nodes[&broker].data.join("journal-0");
    let segment = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .expect("segment file");
    let before = batch_layout(&cluster, broker, "journal", 0);
    let mut bytes = std::fs::read(&segment).unwrap();
    // A torn write: half of a batch appended; and a corrupt byte inside the last batch.
    let last_batch_len = bytes.len() - {
        let mut pos = 0usize;
        let mut last = 0usize;
        for b in Batches::new(Bytes::from(bytes.clone())) {
            last = pos;
            pos += b.unwrap().as_slice().len();
        }
        last
    };
    let n = bytes.len();
    bytes[n - 3] ^= 0xff;
    let torn: Vec<u8> = bytes[..40].to_vec();
    bytes.extend_from_slice(&torn);
    std::fs::write(&segment, &bytes).unwrap();
    cluster.start_node(broker);
    cluster.wait_until(Duration::from_secs(15), "the partition leads again", |c| {
        c.partition_state("journal", 0)
            .is_some_and(|(l, _)| l == broker)
    });
    cluster.stop(broker);
    let after = batch_layout(&cluster, broker, "journal", 0);
    assert_eq!(
        after.len(),
        before.len() - 1,
        "only the corrupt last batch is cut"
    );
    assert_eq!(after[..], before[..before.len() - 1]);
    let size = std::fs::metadata(&segment).unwrap().len() as usize;
    assert_eq!(
        size,
        n - last_batch_len,
        "the torn tail and the corrupt batch are gone"
    );
}
