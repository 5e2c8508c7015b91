//! Produce validation against a real broker process (issue 19): every malformed batch a
//! raw Produce can carry gets Kafka's error code and leaves the log unchanged, a real
//! consumer reads the valid records on both sides of each refused batch, and every
//! compression codec round-trips — from Osprey's own encoder byte for byte, and from
//! confluent-kafka and kcat.

mod common;

use std::process::Command;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{have_kcat, python, send, serial, Cluster};
use indexmap::IndexMap;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use osprey_broker::storage::builder::{compress, put_varint, put_varlong};
use osprey_broker::storage::{BatchBuilder, Compression};

const TOPIC: &str = "checked";

/// A valid one-record batch from kafka-protocol's own encoder (what a Rust client sends).
fn kp_batch(value: &str) -> BytesMut {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        sequence: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(value.to_string())),
        headers: IndexMap::new(),
    };
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        vec![&record],
        &RecordEncodeOptions {
            version: 2,
            compression: KpCompression::None,
        },
    )
    .expect("encode");
    buf
}

fn reseal(b: &mut [u8]) {
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
}

fn set_i32(b: &mut [u8], at: usize, v: i32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Replaces the records of `batch` with `records`, sets the codec bits, fixes the length
/// and the CRC: a batch whose header is right and whose payload is whatever the test wants.
fn with_payload(batch: &[u8], codec: i16, records: &[u8]) -> BytesMut {
    let mut b = BytesMut::from(&batch[..61]);
    b.extend_from_slice(records);
    let len = b.len() as i32 - 12;
    set_i32(&mut b, 8, len);
    let attrs = (i16::from_be_bytes([b[21], b[22]]) & !7) | codec;
    b[21..23].copy_from_slice(&attrs.to_be_bytes());
    reseal(&mut b);
    b
}

fn record_bytes(offset_delta: i32, value: &[u8]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.extend_from_slice(&[0]);
    put_varlong(&mut body, 0);
    put_varint(&mut body, offset_delta);
    put_varint(&mut body, -1);
    put_varint(&mut body, value.len() as i32);
    body.extend_from_slice(value);
    put_varint(&mut body, 0);
    let mut out = BytesMut::new();
    put_varint(&mut out, body.len() as i32);
    out.extend_from_slice(&body);
    out.to_vec()
}

fn produce(addr: &str, version: i16, batch: &[u8]) -> PartitionProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::copy_from_slice(batch)))])]);
    match send(addr, version, RequestKind::Produce(req)).expect("produce") {
        ResponseKind::Produce(r) => r.responses[0].partition_responses[0].clone(),
        other => panic!("unexpected {other:?}"),
    }
}

/// The raw record bytes the broker serves from `offset` (Fetch v11, by topic name).
fn fetch(addr: &str, offset: i64) -> Bytes {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(64 << 20)])]);
    match send(addr, 11, RequestKind::Fetch(req)).expect("fetch") {
        ResponseKind::Fetch(r) => {
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "fetch error");
            p.records.clone().unwrap_or_default()
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Every value a confluent-kafka consumer reads from partition 0, in offset order.
fn consume_all(cluster: &Cluster) -> Option<Vec<(i64, String)>> {
    let out = python(
        "consume.py",
        &[
            "--bootstrap".into(),
            cluster.bootstrap(),
            "--topic".into(),
            TOPIC.into(),
            "--partitions".into(),
            "1".into(),
        ],
        Duration::from_secs(120),
    )?;
    let v: Vec<(i32, i64, String)> = serde_json::from_str(&out).expect("json");
    Some(v.into_iter().map(|(_, o, s)| (o, s)).collect())
}

/// Each malformed batch is refused with Kafka's code, the offsets of the valid batches
/// around it stay contiguous (nothing was appended), and a real consumer reads them all.
#[test]
fn malformed_batches_are_refused_and_consumers_read_around_them() {
    let _guard = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.create_topic(TOPIC, 1, 1, &[("max.message.bytes", "200000")]);
    let addr = cluster.bootstrap();
    let base = kp_batch("x");
    let garbage = b"definitely not a compressed stream, just bytes with a valid CRC".to_vec();
    let one = record_bytes(0, b"only one");
    let three: Vec<u8> = [0, 1, 2]
        .iter()
        .flat_map(|&d| record_bytes(d, b"r"))
        .collect();
    let gapped: Vec<u8> = [0, 2, 3]
        .iter()
        .flat_map(|&d| record_bytes(d, b"r"))
        .collect();
    let bomb_records = {
        // One record whose value is 200 MiB of zeros: ~200 KB of gzip.
        let n = 200 << 20;
        let mut body = BytesMut::new();
        body.extend_from_slice(&[0]);
        put_varlong(&mut body, 0);
        put_varint(&mut body, 0);
        put_varint(&mut body, -1);
        put_varint(&mut body, n);
        let mut raw = BytesMut::new();
        put_varint(&mut raw, (body.len() + n as usize + 1) as i32);
        raw.extend_from_slice(&body);
        raw.resize(raw.len() + n as usize, 0);
        put_varint(&mut raw, 0);
        compress(Compression::Gzip, &raw)
    };
    assert!(
        bomb_records.len() < 250_000,
        "bomb is {} bytes",
        bomb_records.len()
    );

    let mut cases: Vec<(&str, BytesMut, i16)> = vec![
        ("garbage gzip", with_payload(&base, 1, &garbage), 2),
        ("garbage snappy", with_payload(&base, 2, &garbage), 2),
        ("garbage lz4", with_payload(&base, 3, &garbage), 2),
        ("garbage zstd", with_payload(&base, 4, &garbage), 2),
        ("gzip bomb", with_payload(&base, 1, &bomb_records), 10),
        ("unknown codec 6", with_payload(&base, 6, &one), 2),
    ];
    // recordsCount (and lastOffsetDelta) claim 2^31 - 1 records; one is present.
    let mut b = with_payload(&base, 0, &one);
    set_i32(&mut b, 23, i32::MAX - 1);
    set_i32(&mut b, 57, i32::MAX);
    reseal(&mut b);
    cases.push(("count beyond the records", b, 87));
    // Same, compressed.
    let mut b = with_payload(&base, 1, &compress(Compression::Gzip, &one));
    set_i32(&mut b, 23, 9);
    set_i32(&mut b, 57, 10);
    reseal(&mut b);
    cases.push(("gzip count beyond the records", b, 87));
    // Three records held, one declared.
    cases.push((
        "records beyond the count",
        with_payload(&base, 0, &three),
        87,
    ));
    // lastOffsetDelta 2 but recordsCount 1.
    let mut b = with_payload(&base, 0, &one);
    set_i32(&mut b, 23, 2);
    reseal(&mut b);
    cases.push(("lastOffsetDelta != count - 1", b, 87));
    let mut b = with_payload(&base, 0, &gapped);
    set_i32(&mut b, 23, 2);
    set_i32(&mut b, 57, 3);
    reseal(&mut b);
    cases.push(("offset deltas 0, 2, 3", b, 87));
    let mut b = base.clone();
    b[16] = 1;
    reseal(&mut b);
    cases.push(("magic 1", b, 87));
    let mut b = base.clone();
    let last = b.len() - 1;
    b[last] ^= 0x55;
    cases.push(("bad CRC", b, 2));
    let b = BatchBuilder::new(0)
        .control(true)
        .record(0, None, Some(b"marker"))
        .build();
    cases.push(("control batch from a client", b, 87));
    let b = BatchBuilder::new(0)
        .producer(9, 0, -1)
        .record(0, None, Some(b"v"))
        .build();
    cases.push(("producer id without a sequence", b, 87));
    let b = BatchBuilder::new(0)
        .record(0, None, Some(&[1u8; 250_000]))
        .build();
    cases.push(("larger than max.message.bytes", b, 10));
    let b = BatchBuilder::new(0)
        .attributes_extra(0x08)
        .record(0, None, Some(b"v"))
        .build();
    cases.push(("LogAppendTime set by the producer", b, 32));

    let mut expected = Vec::new();
    let mut next = 0i64;
    let ok = |label: &str, expected: &mut Vec<(i64, String)>, next: &mut i64| {
        let v = format!("valid-{}-{label}", expected.len());
        let r = produce(&addr, 9, &kp_batch(&v));
        assert_eq!(r.error_code, 0, "{label}: {r:?}");
        assert_eq!(
            r.base_offset, *next,
            "{label}: the refused batch appended nothing"
        );
        expected.push((*next, v));
        *next += 1;
    };
    ok("first", &mut expected, &mut next);
    for (label, batch, code) in &cases {
        let r = produce(&addr, 9, batch);
        assert_eq!(r.error_code, *code, "{label}: {r:?}");
        assert_eq!(r.base_offset, -1, "{label}");
        assert!(
            r.error_message.as_ref().is_some_and(|m| !m.is_empty()),
            "{label}: an error message"
        );
        if *label == "offset deltas 0, 2, 3" {
            assert_eq!(r.record_errors.len(), 1, "{r:?}");
            assert_eq!(r.record_errors[0].batch_index, 1);
        }
        ok(label, &mut expected, &mut next);
    }
    // Produce v7 (no record_errors on the wire) gets the same code.
    let (_, gapped_batch, _) = cases
        .iter()
        .find(|c| c.0 == "offset deltas 0, 2, 3")
        .unwrap();
    assert_eq!(produce(&addr, 7, gapped_batch).error_code, 87);
    // zstd needs Produce v7+.
    let z = BatchBuilder::new(0)
        .compression(Compression::Zstd)
        .record(0, None, Some(b"z"))
        .build();
    assert_eq!(produce(&addr, 6, &z).error_code, 76);
    // A header maxTimestamp that disagrees with the records is accepted and set right
    // (Kafka's setMaxTimestamp), with the CRC recomputed: what is stored and served says
    // what the records say.
    let mut forged = kp_batch("forged-max-timestamp");
    forged[35..43].copy_from_slice(&4_000_000_000_000i64.to_be_bytes());
    reseal(&mut forged);
    let r = produce(&addr, 9, &forged);
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.base_offset, next);
    let served = fetch(&addr, next);
    let max_timestamp = i64::from_be_bytes(served[35..43].try_into().unwrap());
    assert_eq!(
        max_timestamp, 1_700_000_000_000,
        "the records' largest timestamp"
    );
    let len = 12 + i32::from_be_bytes(served[8..12].try_into().unwrap()) as usize;
    let crc = u32::from_be_bytes(served[17..21].try_into().unwrap());
    assert_eq!(crc, crc32c::crc32c(&served[21..len]), "a valid CRC");
    expected.push((next, "forged-max-timestamp".into()));
    next += 1;
    ok("last", &mut expected, &mut next);

    let Some(read) = consume_all(&cluster) else {
        return;
    };
    assert_eq!(
        read, expected,
        "the consumer reads every valid record, in order"
    );
}

/// The codec of each stored batch in a fetch response.
fn stored_codecs(records: &[u8]) -> Vec<(i64, u8)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 61 <= records.len() {
        let base = i64::from_be_bytes(records[pos..pos + 8].try_into().unwrap());
        let len = i32::from_be_bytes(records[pos + 8..pos + 12].try_into().unwrap()) as usize;
        out.push((base, records[pos + 22] & 7));
        pos += len + 12;
    }
    out
}

/// Every codec round-trips: Osprey's encoder byte for byte through a raw Produce and
/// Fetch, then confluent-kafka and kcat producing with `compression.type` and a
/// confluent-kafka consumer reading every value back.
#[test]
fn every_compression_codec_round_trips_with_real_clients() {
    let _guard = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.create_topic(TOPIC, 1, 1, &[]);
    let addr = cluster.bootstrap();
    let mut values = Vec::new();
    let codecs = [
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    for (name, codec) in codecs {
        let mut b = BatchBuilder::new(1_700_000_000_000).compression(codec);
        for i in 0..50 {
            let v = format!("raw-{name}-{i}");
            b = b.record(1_700_000_000_000 + i, Some(b"k"), Some(v.as_bytes()));
            values.push(v);
        }
        let sent = b.build();
        let r = produce(&addr, 9, &sent);
        assert_eq!(r.error_code, 0, "{name}: {r:?}");
        let stored = fetch(&addr, r.base_offset);
        let got = &stored[..sent.len()];
        // Only baseOffset and partitionLeaderEpoch (outside the CRC) are the broker's.
        assert_eq!(&got[8..12], &sent[8..12], "{name}");
        assert_eq!(&got[16..], &sent[16..], "{name}: stored byte for byte");
        assert_eq!(
            i64::from_be_bytes(got[..8].try_into().unwrap()),
            r.base_offset
        );
    }
    let mut client_batches = 0;
    for (name, codec) in codecs {
        let Some(out) = python(
            "produce.py",
            &[
                "--bootstrap".into(),
                cluster.bootstrap(),
                "--topic".into(),
                TOPIC.into(),
                "--count".into(),
                "300".into(),
                "--prefix".into(),
                format!("ck-{name}-"),
                "--compression".into(),
                name.into(),
            ],
            Duration::from_secs(120),
        ) else {
            return;
        };
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["acked"].as_array().unwrap().len(), 300, "{name}: {out}");
        let first = v["acked"][0][1].as_i64().unwrap();
        let codecs_seen = stored_codecs(&fetch(&addr, first));
        assert_eq!(
            codecs_seen.first().map(|c| c.1),
            Some(codec.id()),
            "{name}: confluent-kafka's batch is stored compressed as sent"
        );
        client_batches += 1;
        values.extend((0..300).map(|i| format!("ck-{name}-{i}")));
        if have_kcat() {
            let input: String = (0..300).map(|i| format!("kcat-{name}-{i}\n")).collect();
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "timeout 60 kcat -P -b {} -t {TOPIC} -p 0 -z {name} -X acks=all",
                    cluster.bootstrap()
                ))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(input.as_bytes())?;
                    c.wait_with_output()
                })
                .expect("kcat");
            assert!(
                out.status.success(),
                "kcat -z {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            values.extend((0..300).map(|i| format!("kcat-{name}-{i}")));
        }
    }
    assert_eq!(client_batches, 4);
    let Some(read) = consume_all(&cluster) else {
        return;
    };
    let mut got: Vec<String> = read.into_iter().map(|(_, v)| v).collect();
    got.sort();
    values.sort();
    assert_eq!(got, values, "every value of every codec reads back once");
}

/// `message.timestamp.type=LogAppendTime` (a topic config): the leader stamps each batch
/// with the time it appends it, so a real consumer reads the broker's time, not the
/// producer's; a topic left at `CreateTime` keeps the producer's.
#[test]
fn a_log_append_time_topic_gives_consumers_the_brokers_timestamps() {
    let _guard = serial();
    let cluster = Cluster::start(1, &[]);
    cluster.create_topic(
        "stamped",
        1,
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    );
    cluster.create_topic("as-produced", 1, 1, &[]);
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let read = |topic: &str| -> Option<Vec<(i32, i64, String)>> {
        let out = python(
            "timestamps.py",
            &[
                "--bootstrap".into(),
                cluster.bootstrap(),
                "--topic".into(),
                topic.into(),
            ],
            Duration::from_secs(90),
        )?;
        Some(serde_json::from_str(&out).expect("json"))
    };
    let before = now();
    let Some(stamped) = read("stamped") else {
        return;
    };
    let after = now();
    assert_eq!(stamped.len(), 5, "{stamped:?}");
    for (i, (kind, ts, value)) in stamped.iter().enumerate() {
        assert_eq!(*kind, 2, "LogAppendTime: {stamped:?}");
        assert!(
            (before..=after).contains(ts),
            "{ts} not in {before}..={after}"
        );
        assert_eq!(value, &format!("v{i}"));
    }
    let as_produced = read("as-produced").expect("python was there a moment ago");
    let times: Vec<(i32, i64)> = as_produced.iter().map(|(k, t, _)| (*k, *t)).collect();
    assert_eq!(times, (0..5).map(|i| (1, 1000 + i)).collect::<Vec<_>>());
}
