//! Every response the coordinator builds encodes, at every version the broker serves for
//! its API, and decodes back to the same fields with kafka-protocol.

#[path = "group_harness.rs"]
mod harness;

use bytes::BytesMut;
use harness::*;
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use osprey_broker::error_codes::*;
use osprey_broker::group::*;
use osprey_broker::wire::versions::served;

fn versions(key: ApiKey) -> std::ops::RangeInclusive<i16> {
    let api = served(key).expect("served");
    api.min..=api.max
}

fn round_trip<T: Encodable + Decodable + std::fmt::Debug>(msg: &T, version: i16) -> T {
    let mut buf = BytesMut::new();
    msg.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{msg:?} does not encode at v{version}: {e}"));
    T::decode(&mut buf.freeze(), version).expect("decodes")
}

#[test]
fn join_and_sync_responses_encode_at_every_served_version() {
    for v in versions(ApiKey::JoinGroup) {
        let mut d = Driver::new(0);
        let (id, r) = d.join(v, "c", "", RANGE);
        let r = match r {
            Reply::Now(r) => {
                assert!(v >= 4);
                assert_eq!(round_trip(&r, v).error_code, MEMBER_ID_REQUIRED);
                let member = r.member_id.as_str().to_owned();
                let (id, r) = d.join(v, "c", &member, RANGE);
                assert_eq!(r, Reply::Parked);
                d.take_join(id)
            }
            Reply::Parked => d.take_join(id),
        };
        let back = round_trip(&r, v);
        assert_eq!((back.error_code, back.generation_id), (NONE, 1));
        assert_eq!(back.members.len(), 1);
        assert_eq!(back.protocol_name.as_ref().unwrap().as_str(), "range");
        // Errors too (protocol name must not be null before v7).
        let (_, e) = d.join(v, "c", "unknown", RANGE);
        assert_eq!(
            round_trip(&e.now().unwrap(), v).error_code,
            UNKNOWN_MEMBER_ID
        );

        let member = back.member_id.as_str().to_owned();
        for sv in versions(ApiKey::SyncGroup) {
            let (sid, reply) = d.sync(sv, &member, 1, &[(&member, b"x")]);
            let r = match reply {
                Reply::Now(r) => r,
                Reply::Parked => d.take_sync(sid),
            };
            let back = round_trip(&r, sv);
            assert_eq!((back.error_code, &back.assignment[..]), (NONE, &b"x"[..]));
            let (_, e) = d.sync(sv, "nobody", 1, &[]);
            assert_eq!(
                round_trip(&e.now().unwrap(), sv).error_code,
                UNKNOWN_MEMBER_ID
            );
        }
    }
}

#[test]
fn heartbeat_leave_list_describe_encode_at_every_served_version() {
    let mut d = Driver::new(0);
    let (m, id) = d.join_new("c", RANGE);
    d.take_join(id);
    for v in versions(ApiKey::Heartbeat) {
        let r = d.c.handle_heartbeat(
            v,
            HeartbeatRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_generation_id(1)
                .with_member_id(s(&m)),
            d.now,
        );
        assert_eq!(round_trip(&r, v).error_code, NONE);
    }
    for v in versions(ApiKey::ListGroups) {
        let r = d.c.handle_list_groups(v, ListGroupsRequest::default());
        let back = round_trip(&r, v);
        assert_eq!(back.groups.len(), 1);
        assert_eq!(back.groups[0].protocol_type.as_str(), "consumer");
    }
    for v in versions(ApiKey::DescribeGroups) {
        let r = d.c.handle_describe_groups(
            v,
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP)), GroupId(s(""))]),
        );
        let back = round_trip(&r, v);
        assert_eq!(back.groups[0].group_state.as_str(), "CompletingRebalance");
        assert_eq!(back.groups[1].error_code, INVALID_GROUP_ID);
    }
    for v in versions(ApiKey::LeaveGroup) {
        let req = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_members(vec![
                    kafka_protocol::messages::leave_group_request::MemberIdentity::default()
                        .with_member_id(s("nobody")),
                ])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_member_id(s("nobody"))
        };
        let back = round_trip(&d.c.handle_leave(v, req, d.now), v);
        if v >= 3 {
            assert_eq!(back.members[0].error_code, UNKNOWN_MEMBER_ID);
        } else {
            assert_eq!(back.error_code, UNKNOWN_MEMBER_ID);
        }
    }
}

#[test]
fn offset_responses_encode_at_every_served_version() {
    let mut d = Driver::new(0);
    for v in versions(ApiKey::OffsetCommit) {
        let id = d.request_id();
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_topics(vec![
                kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(vec![
                        kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(i64::from(v)),
                    ]),
            ]);
        assert_eq!(d.c.handle_offset_commit(id, v, req, d.now), Reply::Parked);
        d.pump();
        let back = round_trip(&d.take_commit(id), v);
        assert_eq!(back.topics[0].partitions[0].error_code, NONE);
    }
    for v in versions(ApiKey::OffsetFetch) {
        let r = if v >= 8 {
            d.c.handle_offset_fetch(
                v,
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_topics(None)]),
            )
        } else {
            d.c.handle_offset_fetch(
                v,
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(GROUP)))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partition_indexes(vec![0, 1])])),
            )
        };
        let back = round_trip(&r, v);
        let last = i64::from(*versions(ApiKey::OffsetCommit).end());
        if v >= 8 {
            assert_eq!(
                back.groups[0].topics[0].partitions[0].committed_offset,
                last
            );
        } else {
            let parts = &back.topics[0].partitions;
            assert_eq!(
                (parts[0].committed_offset, parts[1].committed_offset),
                (last, -1)
            );
        }
    }
}
