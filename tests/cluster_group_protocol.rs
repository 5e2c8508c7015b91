//! The group coordinator over raw Kafka protocol on real `osprey broker` processes: what
//! a client may rely on that no single request shows.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::wire::{decode_response, encode_request};

use common::{send, Cluster};

const GROUP: &str = "pipelined";
const TOPIC: &str = "events";

fn group_id() -> GroupId {
    GroupId(StrBytes::from_static_str(GROUP))
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// The address of the group's coordinator, once one answers for it.
fn coordinator(cluster: &Cluster) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let req = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_static_str(GROUP))
            .with_key_type(0);
        let first = cluster.bootstrap().split(',').next().unwrap().to_string();
        if let Ok(ResponseKind::FindCoordinator(r)) =
            send(&first, 3, RequestKind::FindCoordinator(req))
        {
            if r.error_code == 0 {
                let addr = format!("{}:{}", r.host.as_str(), r.port);
                // Loaded: an OffsetFetch of the group succeeds.
                if let Ok(ResponseKind::OffsetFetch(f)) = send(&addr, 7, fetch_request()) {
                    if f.error_code == 0 {
                        return addr;
                    }
                }
            }
        }
        assert!(Instant::now() < deadline, "no coordinator for {GROUP}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fetch_request() -> RequestKind {
    RequestKind::OffsetFetch(
        OffsetFetchRequest::default()
            .with_group_id(group_id())
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(topic_name())
                .with_partition_indexes(vec![0])])),
    )
}

/// A commit of `offset` for partition 0, as a group without members ("simple" consumer)
/// sends it.
fn commit(correlation_id: i32, offset: i64) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::OffsetCommit as i16)
        .with_request_api_version(7)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("pipeliner")));
    let body = OffsetCommitRequest::default()
        .with_group_id(group_id())
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(topic_name())
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)])]);
    let mut out = BytesMut::new();
    encode_request(&mut out, &header, &RequestKind::OffsetCommit(body)).unwrap();
    out
}

/// A client that pipelines its commits (librdkafka does, for commits made with
/// `asynchronous=True` and the synchronous one after them) must find the last one
/// committed: Kafka processes a connection's requests in the order they were sent.
#[test]
fn pipelined_offset_commits_take_effect_in_request_order() {
    let cluster = Cluster::start(3, &[("min.insync.replicas", "2")]);
    let addr = coordinator(&cluster);
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let n = 20;
    let mut burst = BytesMut::new();
    for i in 1..=n {
        burst.extend_from_slice(&commit(i, i64::from(i) * 100));
    }
    stream.write_all(&burst).unwrap();
    for i in 1..=n {
        let mut size = [0u8; 4];
        stream.read_exact(&mut size).unwrap();
        let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
        stream.read_exact(&mut frame).unwrap();
        let (header, body) = decode_response(frame.into(), ApiKey::OffsetCommit, 7).unwrap();
        assert_eq!(header.correlation_id, i, "responses in request order");
        let ResponseKind::OffsetCommit(body) = body else {
            panic!("{body:?}")
        };
        assert_eq!(body.topics[0].partitions[0].error_code, 0, "commit {i}");
    }
    let Ok(ResponseKind::OffsetFetch(fetched)) = send(&addr, 7, fetch_request()) else {
        panic!("OffsetFetch failed");
    };
    assert_eq!(fetched.error_code, 0);
    assert_eq!(
        fetched.topics[0].partitions[0].committed_offset,
        i64::from(n) * 100,
        "the last commit sent is the committed offset"
    );
}
