//! Writes the seed corpus of every fuzz target into `corpus/<target>/seed-*`: well-formed
//! inputs built with the broker's own writers (and kafka-protocol's request encoder), so the
//! fuzzer starts from what real peers send and mutates from there.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds`

use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::controller::records::{
    Endpoint, LeaderRecoveryState, MetadataRecord, DIRECTORY_LOST,
};
use osprey_broker::node::metadata_snapshot::encode;
use osprey_broker::storage::{BatchBuilder, Compression, LogConfig, PartitionLog};
use osprey_broker::wire::{encode_request, SERVED_APIS};
use osprey_fuzz::{metadata_snapshot, partition_log};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut written = 0;
    let mut put = |target: &str, name: String, bytes: &[u8]| {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("corpus dir");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("write seed");
        written += 1;
    };
    for (name, frame) in requests() {
        put("request", name, &frame);
    }
    for (name, input) in record_batches() {
        put("record_batch", name, &input);
    }
    for (name, input) in partition_logs() {
        put("partition_log", name, &input);
    }
    put("metadata_snapshot", "cluster".into(), &snapshot());
    println!("wrote {written} seeds under {}", root.display());
}

/// Every served API at every served version, with an empty body, plus a few with content.
fn requests() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for api in SERVED_APIS {
        for version in api.min..=api.max {
            if let Some(body) = empty_body(api.key) {
                out.push((
                    format!("{:?}-v{version}", api.key),
                    frame(api.key, version, &body),
                ));
            }
        }
    }
    let batch = BatchBuilder::new(1_700_000_000_000)
        .record(1_700_000_000_000, Some(b"k"), Some(b"v"))
        .build();
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(1000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch.freeze())),
            ])]);
    out.push((
        "Produce-v9-records".into(),
        frame(ApiKey::Produce, 9, &RequestKind::Produce(produce)),
    ));
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(7)
                .with_partition_max_bytes(1 << 20)])]);
    out.push((
        "Fetch-v11-partition".into(),
        frame(ApiKey::Fetch, 11, &RequestKind::Fetch(fetch)),
    ));
    let metadata = MetadataRequest::default()
        .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default(
        )
        .with_name(Some(TopicName(StrBytes::from_static_str("t"))))]));
    out.push((
        "Metadata-v12-topic".into(),
        frame(ApiKey::Metadata, 12, &RequestKind::Metadata(metadata)),
    ));
    out
}

fn frame(key: ApiKey, version: i16, body: &RequestKind) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")));
    let mut out = BytesMut::new();
    encode_request(&mut out, &header, body).expect("encode");
    out[4..].to_vec() // without the size prefix, as decode_request sees it
}

fn empty_body(key: ApiKey) -> Option<RequestKind> {
    use RequestKind as R;
    Some(match key {
        ApiKey::Produce => R::Produce(Default::default()),
        ApiKey::Fetch => R::Fetch(Default::default()),
        ApiKey::ListOffsets => R::ListOffsets(Default::default()),
        ApiKey::Metadata => R::Metadata(Default::default()),
        ApiKey::OffsetCommit => R::OffsetCommit(Default::default()),
        ApiKey::OffsetFetch => R::OffsetFetch(Default::default()),
        ApiKey::FindCoordinator => R::FindCoordinator(Default::default()),
        ApiKey::JoinGroup => R::JoinGroup(Default::default()),
        ApiKey::Heartbeat => R::Heartbeat(Default::default()),
        ApiKey::LeaveGroup => R::LeaveGroup(Default::default()),
        ApiKey::SyncGroup => R::SyncGroup(Default::default()),
        ApiKey::DescribeGroups => R::DescribeGroups(Default::default()),
        ApiKey::ListGroups => R::ListGroups(Default::default()),
        ApiKey::ApiVersions => R::ApiVersions(Default::default()),
        ApiKey::CreateTopics => R::CreateTopics(Default::default()),
        ApiKey::DeleteTopics => R::DeleteTopics(Default::default()),
        ApiKey::InitProducerId => R::InitProducerId(Default::default()),
        ApiKey::OffsetForLeaderEpoch => R::OffsetForLeaderEpoch(Default::default()),
        ApiKey::DescribeConfigs => R::DescribeConfigs(Default::default()),
        ApiKey::IncrementalAlterConfigs => R::IncrementalAlterConfigs(Default::default()),
        ApiKey::CreatePartitions => R::CreatePartitions(Default::default()),
        ApiKey::DescribeCluster => R::DescribeCluster(Default::default()),
        ApiKey::AlterPartition => R::AlterPartition(Default::default()),
        ApiKey::BrokerRegistration => R::BrokerRegistration(Default::default()),
        ApiKey::BrokerHeartbeat => R::BrokerHeartbeat(Default::default()),
        ApiKey::AllocateProducerIds => R::AllocateProducerIds(Default::default()),
        ApiKey::Vote => R::Vote(Default::default()),
        ApiKey::BeginQuorumEpoch => R::BeginQuorumEpoch(Default::default()),
        ApiKey::EndQuorumEpoch => R::EndQuorumEpoch(Default::default()),
        ApiKey::DescribeQuorum => R::DescribeQuorum(Default::default()),
        ApiKey::FetchSnapshot => R::FetchSnapshot(Default::default()),
        _ => return None,
    })
}

/// One input per codec and a few shapes: several records, two batches, an idempotent
/// producer's batch. The first four bytes choose the limits (see `config_and_payload`).
fn record_batches() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let codecs = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
    for codec in codecs {
        let mut b = BatchBuilder::new(1_700_000_000_000).compression(codec);
        for i in 0..5u8 {
            b = b.record(
                1_700_000_000_000 + i64::from(i),
                Some(&[i]),
                Some(&[b'v'; 40]),
            );
        }
        let mut input = vec![3, 0, 0, 0];
        input.extend_from_slice(&b.build());
        out.push((format!("{codec:?}"), input));
    }
    let mut two = vec![2, 0, 2, 2];
    for i in 0..2 {
        two.extend_from_slice(
            &BatchBuilder::new(1_700_000_000_000)
                .producer(4, 0, i * 3)
                .record(1_700_000_000_000, None, Some(b"a"))
                .record(1_700_000_000_001, None, Some(b"b"))
                .record(1_700_000_000_002, None, Some(b"c"))
                .build(),
        );
    }
    out.push(("idempotent-two-batches".into(), two));
    out
}

/// Real partition directories written by `PartitionLog`: several small segments over two
/// leader epochs with their indexes and checkpoints; and the same with its tail torn.
fn partition_logs() -> Vec<(String, Vec<u8>)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = LogConfig {
        segment_bytes: 400,
        index_interval_bytes: 64,
        ..partition_log::config()
    };
    let mut log = PartitionLog::open(dir.path(), config).expect("open");
    for i in 0..12i64 {
        let epoch = if i < 6 { 0 } else { 1 };
        let batch = BatchBuilder::new(0)
            .base_offset(log.log_end_offset())
            .leader_epoch(epoch)
            .record(i, Some(b"key"), Some(&[b'x'; 50]))
            .record(i, None, Some(&[b'y'; 20]))
            .build();
        log.append_as_follower(Bytes::from(batch)).expect("append");
    }
    log.set_high_watermark(17);
    log.checkpoint_high_watermark().expect("hw");
    log.close().expect("close");
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir.path())
        .expect("list")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).expect("read"),
            )
        })
        .collect();
    files.sort();
    let mut bases = Vec::new();
    let mut packed: Vec<(u8, Vec<u8>)> = Vec::new();
    let logs: Vec<_> = files.iter().filter(|(n, _)| n.ends_with(".log")).collect();
    for (i, (name, bytes)) in logs.iter().take(partition_log::SEGMENTS).enumerate() {
        let base: u64 = name.trim_end_matches(".log").parse().expect("base");
        bases.extend_from_slice(&(base << 1).to_le_bytes());
        packed.push((i as u8, bytes.clone()));
        let index = format!("{:020}.index", base);
        if let Some((_, ix)) = files.iter().find(|(n, _)| *n == index) {
            packed.push((4 + i as u8, ix.clone()));
        }
    }
    for (kind, name) in [
        (8u8, "leader-epoch-checkpoint"),
        (9, "high-watermark-checkpoint"),
    ] {
        if let Some((_, c)) = files.iter().find(|(n, _)| n == name) {
            packed.push((kind, c.clone()));
        }
    }
    packed.push((10, bases));
    let as_refs = |p: &[(u8, Vec<u8>)]| -> Vec<u8> {
        let refs: Vec<(u8, &[u8])> = p.iter().map(|(k, b)| (*k, b.as_slice())).collect();
        partition_log::pack(&refs)
    };
    let whole = as_refs(&packed);
    // The last segment torn in the middle of a batch, as a crash leaves it.
    let mut torn = packed.clone();
    if let Some(last) = torn.iter_mut().rev().find(|(k, _)| *k < 4) {
        let keep = last.1.len() * 2 / 3;
        last.1.truncate(keep);
    }
    vec![
        ("segments".into(), whole),
        ("torn-tail".into(), as_refs(&torn)),
    ]
}

/// A snapshot of a small cluster: three brokers, a topic with two partitions, a config.
fn snapshot() -> Vec<u8> {
    let id = metadata_snapshot::ID;
    let topic_id = [7u8; 16];
    let mut records = Vec::new();
    for b in 1..=3 {
        records.push(MetadataRecord::RegisterBroker {
            broker_id: b,
            broker_epoch: 10 + i64::from(b),
            incarnation_id: format!("incarnation-{b}"),
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: format!("broker-{b}"),
                port: 9092,
                security_protocol: 0,
            }],
            rack: (b == 2).then(|| "rack-b".into()),
            fenced: false,
        });
    }
    records.push(MetadataRecord::Topic {
        name: "orders".into(),
        topic_id,
    });
    for p in 0..2 {
        records.push(MetadataRecord::Partition {
            topic_id,
            partition: p,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            elr: vec![],
            leader: 1 + p,
            leader_epoch: 0,
            partition_epoch: 0,
            leader_recovery_state: LeaderRecoveryState::Recovered,
            directories: vec![[5; 16], [6; 16], [7; 16]],
        });
    }
    records.push(MetadataRecord::PartitionChange {
        topic_id,
        partition: 0,
        isr: Some(vec![1, 2]),
        elr: Some(vec![3]),
        leader: None,
        leader_recovery_state: None,
        directories: Some(vec![[5; 16], [6; 16], DIRECTORY_LOST]),
    });
    records.push(MetadataRecord::Config {
        resource_type: osprey_broker::controller::records::ConfigResourceType::Topic,
        resource_name: "orders".into(),
        name: "min.insync.replicas".into(),
        value: Some("2".into()),
    });
    encode(id, &records).expect("encode snapshot").to_vec()
}
