//! Every classic-group transition and error, driven through the coordinator's API.

#[path = "group_harness.rs"]
mod harness;

use bytes::Bytes;
use harness::*;
use kafka_protocol::messages::*;
use osprey_broker::error_codes::*;
use osprey_broker::group::*;

/// Two members (a then b) joined through KIP-394 and synced: a Stable generation 1.
/// Returns (driver, a, b).
fn stable_pair() -> (Driver, String, String) {
    let mut d = Driver::new(100);
    let (a, ja) = d.join_new("client-a", RANGE);
    let (b, jb) = d.join_new("client-b", &[("roundrobin", b"rr-b"), ("range", b"sub-b")]);
    d.tick(100);
    let ra = d.take_join(ja);
    let rb = d.take_join(jb);
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    let (sb, _) = d.sync(5, &b, 1, &[]);
    let (sa, _) = d.sync(5, &a, 1, &[(&a, b"for-a"), (&b, b"for-b")]);
    assert_eq!(d.take_sync(sa).assignment, Bytes::from_static(b"for-a"));
    assert_eq!(d.take_sync(sb).assignment, Bytes::from_static(b"for-b"));
    assert_eq!(d.state().state, GroupState::Stable);
    (d, a, b)
}

#[test]
fn two_members_join_leader_gets_members_and_sync_distributes() {
    let mut d = Driver::new(100);
    let (a, ja) = d.join_new("client-a", RANGE);
    assert_eq!(
        a, "client-a-0-1",
        "ids are {{client_id}}-{{coordinator epoch}}-{{counter}}"
    );
    assert_eq!(d.state().state, GroupState::PreparingRebalance);
    d.tick(50);
    let (b, jb) = d.join_new("client-b", &[("roundrobin", b"rr-b"), ("range", b"sub-b")]);
    // The initial delay holds the join phase open although everyone has joined: b's join
    // at 50 extended it to 150 (capped by the rebalance timeout).
    d.tick(149);
    assert!(d.responses.is_empty());
    assert_eq!(d.c.next_deadline(), Some(150));
    d.tick(150);
    let ra = d.take_join(ja);
    let rb = d.take_join(jb);
    assert_eq!(ra.error_code, NONE);
    assert_eq!(ra.generation_id, 1);
    assert_eq!(ra.leader.as_str(), a);
    assert_eq!(rb.leader.as_str(), a);
    // The first protocol, in the first member's order, that every member supports.
    assert_eq!(ra.protocol_name.as_ref().unwrap().as_str(), "range");
    // The leader gets every member with its metadata for the chosen protocol.
    let members: Vec<(&str, &[u8])> = ra
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), &m.metadata[..]))
        .collect();
    assert_eq!(
        members,
        vec![(a.as_str(), &b"sub-a"[..]), (b.as_str(), &b"sub-b"[..])]
    );
    assert!(rb.members.is_empty(), "followers get no member list");
    assert_eq!(d.state().state, GroupState::CompletingRebalance);

    // Sync: the follower waits for the leader; the leader's assignment is stored first.
    d.auto_commit = false;
    let (sb, reply) = d.sync(5, &b, 1, &[]);
    assert_eq!(reply, Reply::Parked);
    let (sa, reply) = d.sync(5, &a, 1, &[(&a, b"for-a"), (&b, b"for-b")]);
    assert_eq!(reply, Reply::Parked);
    assert_eq!(d.inflight.len(), 1, "the group metadata append");
    assert_eq!(d.inflight[0].0, Some(sa));
    assert!(d.responses.is_empty(), "nobody answered before the store");
    d.complete_appends(0);
    d.pump();
    let ra = d.take_sync(sa);
    let rb = d.take_sync(sb);
    assert_eq!((ra.error_code, rb.error_code), (NONE, NONE));
    assert_eq!(ra.assignment, Bytes::from_static(b"for-a"));
    assert_eq!(rb.assignment, Bytes::from_static(b"for-b"));
    assert_eq!(ra.protocol_name.as_ref().unwrap().as_str(), "range");
    assert_eq!(d.state().state, GroupState::Stable);
    // A sync in Stable answers at once.
    let (_, reply) = d.sync(3, &b, 1, &[]);
    assert_eq!(
        reply.now().unwrap().assignment,
        Bytes::from_static(b"for-b")
    );
}

#[test]
fn heartbeat_during_rebalance_says_rejoin_and_generation_advances() {
    let (mut d, a, b) = stable_pair();
    assert_eq!(d.heartbeat(&a, 1), NONE);
    let (c, jc) = d.join_new("client-c", RANGE);
    assert_eq!(d.state().state, GroupState::PreparingRebalance);
    assert_eq!(d.heartbeat(&a, 1), REBALANCE_IN_PROGRESS);
    assert_eq!(d.heartbeat(&b, 1), REBALANCE_IN_PROGRESS);
    let (_, reply) = d.sync(5, &a, 1, &[]);
    assert_eq!(reply.now().unwrap().error_code, REBALANCE_IN_PROGRESS);
    let (ja, _) = d.join(5, "client-a", &a, RANGE);
    let (jb, _) = d.join(5, "client-b", &b, RANGE);
    // Everyone rejoined and this is not the first rebalance: no delay.
    let ra = d.take_join(ja);
    assert_eq!(ra.generation_id, 2);
    assert_eq!(ra.members.len(), 3);
    assert_eq!(ra.leader.as_str(), a, "the leader stays the leader");
    assert_eq!(d.take_join(jc).generation_id, 2);
    assert_eq!(d.take_join(jb).generation_id, 2);
    assert_eq!(d.heartbeat(&c, 1), ILLEGAL_GENERATION);
    assert_eq!(
        d.heartbeat(&c, 2),
        NONE,
        "heartbeats are fine in CompletingRebalance"
    );
    let (_, reply) = d.sync(5, &a, 1, &[]);
    assert_eq!(reply.now().unwrap().error_code, ILLEGAL_GENERATION);
}

#[test]
fn session_expiry_triggers_rebalance() {
    let (mut d, a, b) = stable_pair();
    let start = d.now;
    d.tick(start + 6_000);
    assert_eq!(d.heartbeat(&a, 1), NONE);
    d.tick(start + SESSION_MS as u64 - 1);
    assert_eq!(d.state().members.len(), 2);
    d.tick(start + SESSION_MS as u64);
    // b stayed silent for a whole session; a heartbeated at 6000.
    let view = d.state();
    assert_eq!(view.members.len(), 1);
    assert_eq!(view.state, GroupState::PreparingRebalance);
    assert_eq!(d.heartbeat(&a, 1), REBALANCE_IN_PROGRESS);
    assert_eq!(d.heartbeat(&b, 1), UNKNOWN_MEMBER_ID);
    let (ja, _) = d.join(5, "client-a", &a, RANGE);
    let ra = d.take_join(ja);
    assert_eq!((ra.generation_id, ra.members.len()), (2, 1));
}

#[test]
fn members_that_do_not_rejoin_are_dropped_at_the_rebalance_timeout() {
    let (mut d, a, b) = stable_pair();
    let (ja, _) = d.join(5, "client-a", &a, &[("range", b"changed")]);
    assert_eq!(d.state().state, GroupState::PreparingRebalance);
    // b keeps heartbeating but never rejoins.
    let deadline = d.now + REBALANCE_MS as u64;
    for t in (d.now..deadline).step_by(5_000).skip(1) {
        d.tick(t);
        assert_eq!(d.heartbeat(&b, 1), REBALANCE_IN_PROGRESS);
    }
    d.tick(deadline);
    let ra = d.take_join(ja);
    assert_eq!((ra.generation_id, ra.members.len()), (2, 1));
    assert_eq!(&ra.members[0].metadata[..], b"changed");
    assert_eq!(d.heartbeat(&b, 2), UNKNOWN_MEMBER_ID);
}

#[test]
fn members_that_never_sync_are_removed_and_the_group_rebalances() {
    let mut d = Driver::new(0);
    let (a, ja) = d.join_new("client-a", RANGE);
    let ra = d.take_join(ja);
    assert_eq!(ra.generation_id, 1);
    // The leader never sends SyncGroup.
    d.tick(d.now + REBALANCE_MS as u64);
    let view = d.state();
    assert!(view.members.is_empty());
    assert_eq!((view.state, view.generation), (GroupState::Empty, 2));
    assert_eq!(d.heartbeat(&a, 1), UNKNOWN_MEMBER_ID);
}

#[test]
fn leave_group_rebalances_and_the_last_leave_empties_the_group() {
    let (mut d, a, b) = stable_pair();
    assert_eq!(d.leave("nobody"), (NONE, UNKNOWN_MEMBER_ID));
    assert_eq!(d.leave(&b), (NONE, NONE));
    assert_eq!(d.state().state, GroupState::PreparingRebalance);
    let (ja, _) = d.join(5, "client-a", &a, RANGE);
    let ra = d.take_join(ja);
    assert_eq!((ra.generation_id, ra.members.len()), (2, 1));
    let log_before = d.log.values().map(Vec::len).sum::<usize>();
    // v0–2 LeaveGroup names one member and answers at the top level.
    let r = d.c.handle_leave(
        1,
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_member_id(s(&a)),
        d.now,
    );
    d.pump();
    assert_eq!(r.error_code, NONE);
    let view = d.state();
    assert_eq!((view.state, view.generation), (GroupState::Empty, 3));
    assert_eq!(view.leader, None);
    // The Empty generation is stored so a failover keeps the generation.
    assert_eq!(d.log.values().map(Vec::len).sum::<usize>(), log_before + 1);
    let r = d.c.handle_leave(
        0,
        LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_member_id(s(&a)),
        d.now,
    );
    assert_eq!(r.error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn leaving_while_others_wait_completes_the_join() {
    let (mut d, a, b) = stable_pair();
    let (ja, _) = d.join(5, "client-a", &a, RANGE);
    assert!(d.responses.is_empty(), "waiting for b");
    d.leave(&b);
    assert_eq!(d.take_join(ja).generation_id, 2);
}

#[test]
fn old_join_versions_join_without_member_id_required() {
    for version in [0, 3] {
        let mut d = Driver::new(0);
        let (id, reply) = d.join(version, "old", "", RANGE);
        assert_eq!(reply, Reply::Parked);
        // Delay 0 and everyone joined: the join completes at once.
        let r = d.take_join(id);
        assert_eq!(r.error_code, NONE);
        assert!(r.member_id.as_str().starts_with("old-"));
    }
}

#[test]
fn join_errors() {
    let mut d = Driver::new(0);
    let (a, _) = d.join_new("client-a", RANGE);
    // Unknown member id.
    let (_, r) = d.join(5, "x", "made-up", RANGE);
    assert_eq!(r.now().unwrap().error_code, UNKNOWN_MEMBER_ID);
    // Another protocol type, or no protocol in common.
    let (_, r) = d.join_req(5, "x", join_request("", "connect", RANGE));
    assert_eq!(r.now().unwrap().error_code, INCONSISTENT_GROUP_PROTOCOL);
    let (_, r) = d.join(5, "x", "", &[("sticky", b"")]);
    assert_eq!(r.now().unwrap().error_code, INCONSISTENT_GROUP_PROTOCOL);
    // A lone member may change its own protocols: that rebalances.
    let (id, r) = d.join(5, "x", &a, &[("sticky", b"")]);
    assert_eq!(r, Reply::Parked);
    let r = d.take_join(id);
    assert_eq!(
        (r.generation_id, r.protocol_name.unwrap().as_str()),
        (2, "sticky")
    );
    // Static membership is refused clearly.
    let (_, r) = d.join_req(
        5,
        "x",
        join_request("", "consumer", RANGE).with_group_instance_id(Some(s("i-1"))),
    );
    assert_eq!(r.now().unwrap().error_code, UNSUPPORTED_VERSION);
    // Session timeout outside [6000, 1800000].
    let (_, r) = d.join_req(
        5,
        "x",
        join_request("", "consumer", RANGE).with_session_timeout_ms(100),
    );
    assert_eq!(r.now().unwrap().error_code, INVALID_SESSION_TIMEOUT);
    // Empty group id.
    let (_, r) = d.join_req(
        5,
        "x",
        join_request("", "consumer", RANGE).with_group_id(GroupId(s(""))),
    );
    assert_eq!(r.now().unwrap().error_code, INVALID_GROUP_ID);
}

#[test]
fn not_coordinator_and_loading() {
    let mut d = Driver::new(0);
    let p = d.c.partition_of(GROUP);
    d.c.unload_partition(p);
    let (_, r) = d.join(5, "x", "", RANGE);
    assert_eq!(r.now().unwrap().error_code, NOT_COORDINATOR);
    assert_eq!(d.heartbeat("m", 1), NOT_COORDINATOR);
    let (_, r) = d.sync(5, "m", 1, &[]);
    assert_eq!(r.now().unwrap().error_code, NOT_COORDINATOR);
    assert_eq!(d.leave("m").0, NOT_COORDINATOR);
    assert_eq!(d.fetch(GROUP, None).0, NOT_COORDINATOR);
    let (_, r) = d.commit(GROUP, "", -1, &[("t", 0, 1)]);
    assert_eq!(
        r.now().unwrap().topics[0].partitions[0].error_code,
        NOT_COORDINATOR
    );
    d.c.begin_loading(p, 1);
    let (_, r) = d.join(5, "x", "", RANGE);
    assert_eq!(r.now().unwrap().error_code, COORDINATOR_LOAD_IN_PROGRESS);
    assert_eq!(d.fetch(GROUP, None).0, COORDINATOR_LOAD_IN_PROGRESS);
    let listed = d.c.handle_list_groups(4, ListGroupsRequest::default());
    assert_eq!(listed.error_code, COORDINATOR_LOAD_IN_PROGRESS);
    d.c.load_partition(p, 1, Vec::new(), d.now);
    let (_, r) = d.join(5, "x", "", RANGE);
    assert_eq!(r.now().unwrap().error_code, MEMBER_ID_REQUIRED);
}

#[test]
fn sync_errors() {
    let (mut d, a, _b) = stable_pair();
    let (_, r) = d.sync(5, "nobody", 1, &[]);
    assert_eq!(r.now().unwrap().error_code, UNKNOWN_MEMBER_ID);
    let (_, r) = d.sync(5, &a, 7, &[]);
    assert_eq!(r.now().unwrap().error_code, ILLEGAL_GENERATION);
    let id = d.request_id();
    let req = SyncGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_generation_id(1)
        .with_member_id(s(&a))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("roundrobin")));
    let r = d.c.handle_sync(id, 5, req, d.now);
    assert_eq!(r.now().unwrap().error_code, INCONSISTENT_GROUP_PROTOCOL);
    let (_, r) = {
        let id = d.request_id();
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s("other-group")))
            .with_generation_id(1)
            .with_member_id(s(&a));
        (id, d.c.handle_sync(id, 5, req, d.now))
    };
    assert_eq!(r.now().unwrap().error_code, UNKNOWN_MEMBER_ID);
}

#[test]
fn a_failed_assignment_store_fails_the_syncs_and_rebalances() {
    let mut d = Driver::new(0);
    let (a, ja) = d.join_new("client-a", RANGE);
    d.take_join(ja);
    d.auto_commit = false;
    let (sa, _) = d.sync(5, &a, 1, &[(&a, b"x")]);
    d.complete_appends(6); // NOT_LEADER_OR_FOLLOWER
    d.pump();
    assert_eq!(d.take_sync(sa).error_code, NOT_COORDINATOR);
    assert_eq!(d.state().state, GroupState::PreparingRebalance);
    assert_eq!(d.heartbeat(&a, 1), REBALANCE_IN_PROGRESS);
}

#[test]
fn commit_fetch_round_trip() {
    let (mut d, a, _b) = stable_pair();
    d.auto_commit = false;
    let (id, r) = d.commit(GROUP, &a, 1, &[("t", 0, 10), ("t", 1, 20), ("u", 0, 5)]);
    assert_eq!(r, Reply::Parked);
    // Not visible before the append is committed.
    assert_eq!(
        d.fetch(GROUP, Some(("t", &[0]))).1,
        vec![("t".into(), 0, -1)]
    );
    d.complete_appends(0);
    d.pump();
    let r = d.take_commit(id);
    let codes: Vec<i16> = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(codes, vec![NONE, NONE, NONE]);
    assert_eq!(
        d.fetch(GROUP, Some(("t", &[0, 1, 2]))).1,
        vec![
            ("t".into(), 0, 10),
            ("t".into(), 1, 20),
            ("t".into(), 2, -1)
        ]
    );
    // Null topics: everything committed.
    assert_eq!(
        d.fetch(GROUP, None).1,
        vec![("t".into(), 0, 10), ("t".into(), 1, 20), ("u".into(), 0, 5)]
    );
    // Unknown group: -1, no error.
    assert_eq!(
        d.fetch("unknown", Some(("t", &[0]))),
        (NONE, vec![("t".into(), 0, -1)])
    );
}

#[test]
fn offset_fetch_shapes_by_version() {
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    let mut d = Driver::new(0);
    let (id, _) = d.commit(GROUP, "", -1, &[("t", 0, 42)]);
    d.take_commit(id);
    let v8 = d.c.handle_offset_fetch(
        8,
        OffsetFetchRequest::default().with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(GROUP)))
                .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                    .with_name(TopicName(s("t")))
                    .with_partition_indexes(vec![0, 1])])),
            OffsetFetchRequestGroup::default().with_group_id(GroupId(s(""))),
        ]),
    );
    assert_eq!(v8.groups.len(), 2);
    let g = &v8.groups[0];
    assert_eq!(g.error_code, NONE);
    let p = &g.topics[0].partitions;
    assert_eq!(
        (p[0].committed_offset, p[0].committed_leader_epoch),
        (42, 3)
    );
    assert_eq!(p[0].metadata.as_ref().unwrap().as_str(), "meta");
    assert_eq!(p[1].committed_offset, -1);
    assert_eq!(v8.groups[1].error_code, INVALID_GROUP_ID);
    // v1 has no top-level error code: errors are per partition.
    let req = OffsetFetchRequest::default()
        .with_group_id(GroupId(s("")))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(s("t")))
            .with_partition_indexes(vec![0])]));
    let v1 = d.c.handle_offset_fetch(1, req.clone());
    assert_eq!(v1.topics[0].partitions[0].error_code, INVALID_GROUP_ID);
    assert_eq!(d.c.handle_offset_fetch(3, req).error_code, INVALID_GROUP_ID);
}

#[test]
fn commit_validation() {
    let (mut d, a, _b) = stable_pair();
    let code = |r: Reply<OffsetCommitResponse>| r.now().unwrap().topics[0].partitions[0].error_code;
    let (_, r) = d.commit(GROUP, &a, 9, &[("t", 0, 1)]);
    assert_eq!(code(r), ILLEGAL_GENERATION);
    let (_, r) = d.commit(GROUP, "nobody", 1, &[("t", 0, 1)]);
    assert_eq!(code(r), UNKNOWN_MEMBER_ID);
    // A simple commit is only for groups without members.
    let (_, r) = d.commit(GROUP, "", -1, &[("t", 0, 1)]);
    assert_eq!(code(r), UNKNOWN_MEMBER_ID);
    // A group-managed commit to a group this coordinator does not know is stale.
    let (_, r) = d.commit("other", "m", 3, &[("t", 0, 1)]);
    assert_eq!(code(r), ILLEGAL_GENERATION);
    // PreparingRebalance still takes commits of the current generation.
    let (ja, _) = d.join(5, "client-a", &a, &[("range", b"new")]);
    let (id, r) = d.commit(GROUP, &a, 1, &[("t", 0, 1)]);
    assert_eq!(r, Reply::Parked);
    assert_eq!(d.take_commit(id).topics[0].partitions[0].error_code, NONE);
    // CompletingRebalance does not.
    let (jb, _) = d.join(5, "client-b", &_b, RANGE);
    assert_eq!(d.take_join(ja).generation_id, 2);
    d.take_join(jb);
    let (_, r) = d.commit(GROUP, &a, 2, &[("t", 0, 1)]);
    assert_eq!(code(r), REBALANCE_IN_PROGRESS);
}

#[test]
fn commit_failures_are_mapped_and_not_visible() {
    let mut d = Driver::new(0);
    d.auto_commit = false;
    let (id, _) = d.commit(GROUP, "", -1, &[("t", 0, 7)]);
    d.complete_appends(19); // NOT_ENOUGH_REPLICAS
    d.pump();
    let r = d.take_commit(id);
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        COORDINATOR_NOT_AVAILABLE
    );
    assert_eq!(
        d.fetch(GROUP, Some(("t", &[0]))).1,
        vec![("t".into(), 0, -1)]
    );
    // Metadata over offset.metadata.max.bytes is refused per partition; others proceed.
    let id = d.request_id();
    let big = "x".repeat(5000);
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_topics(vec![
            kafka_protocol::messages::offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s("t")))
                .with_partitions(vec![
                    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(1)
                        .with_committed_metadata(Some(s(&big))),
                    kafka_protocol::messages::offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(1)
                        .with_committed_offset(2),
                ]),
        ]);
    assert_eq!(d.c.handle_offset_commit(id, 8, req, d.now), Reply::Parked);
    d.pump();
    d.complete_appends(0);
    d.pump();
    let r = d.take_commit(id);
    let codes: Vec<i16> = r.topics[0]
        .partitions
        .iter()
        .map(|p| p.error_code)
        .collect();
    assert_eq!(codes, vec![OFFSET_METADATA_TOO_LARGE, NONE]);
    assert_eq!(d.fetch(GROUP, None).1, vec![("t".into(), 1, 2)]);
}

#[test]
fn failover_reloads_offsets_and_groups_from_the_log() {
    let (mut d, a, b) = stable_pair();
    let (id, _) = d.commit(GROUP, &a, 1, &[("t", 0, 10), ("t", 1, 11)]);
    d.take_commit(id);
    let (id, _) = d.commit(GROUP, &b, 1, &[("t", 0, 15)]);
    d.take_commit(id);
    let (id, _) = d.commit("simple", "", -1, &[("u", 3, 99)]);
    d.take_commit(id);
    let before = d.state();

    // A new coordinator on another broker leads the partitions and reads the log.
    let mut n = Driver::new(0);
    for p in 0..4 {
        n.c.unload_partition(p);
        n.c.begin_loading(p, 1);
        let records = d.log.get(&p).cloned().unwrap_or_default();
        n.c.load_partition(p, 1, records, 1_000_000);
    }
    n.now = 1_000_000;
    assert_eq!(
        n.fetch(GROUP, None).1,
        vec![("t".into(), 0, 15), ("t".into(), 1, 11)]
    );
    assert_eq!(n.fetch("simple", None).1, vec![("u".into(), 3, 99)]);
    let after = n.state();
    assert_eq!(after.state, GroupState::Stable);
    assert_eq!(
        (after.generation, &after.leader),
        (before.generation, &before.leader)
    );
    let assignments: Vec<_> = after
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.assignment.clone()))
        .collect();
    let expected: Vec<_> = before
        .members
        .iter()
        .map(|m| (m.member_id.clone(), m.assignment.clone()))
        .collect();
    assert_eq!(assignments, expected);
    // Members carry on without a rebalance.
    assert_eq!(n.heartbeat(&a, 1), NONE);
    assert_eq!(n.heartbeat(&b, 1), NONE);
    let (_, r) = n.sync(5, &b, 1, &[]);
    assert_eq!(r.now().unwrap().assignment, Bytes::from_static(b"for-b"));
    // A new member gets an id no loaded member has.
    let (c, _) = n.join_new("client-a", RANGE);
    assert!(c != a && c != b);
    // ListGroups sees both groups.
    let listed = n.c.handle_list_groups(4, ListGroupsRequest::default());
    let mut names: Vec<&str> = listed.groups.iter().map(|g| g.group_id.as_str()).collect();
    names.sort();
    assert_eq!(names, vec![GROUP, "simple"]);
}

#[test]
fn unload_answers_parked_requests_with_not_coordinator() {
    let (mut d, a, b) = stable_pair();
    let (ja, _) = d.join(5, "client-a", &a, &[("range", b"new")]);
    d.auto_commit = false;
    let (cid, _) = d.commit(GROUP, &b, 1, &[("t", 0, 1)]);
    d.c.unload_partition(d.c.partition_of(GROUP));
    d.pump();
    assert_eq!(d.take_join(ja).error_code, NOT_COORDINATOR);
    assert_eq!(
        d.take_commit(cid).topics[0].partitions[0].error_code,
        NOT_COORDINATOR
    );
    // The late append completion is ignored.
    d.complete_appends(0);
    d.pump();
    assert!(d.responses.is_empty());
    assert!(d.c.group(GROUP).is_none());
}

#[test]
fn describe_and_list_groups() {
    let (mut d, a, _b) = stable_pair();
    let r = d.c.handle_describe_groups(
        5,
        DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP)), GroupId(s("nope"))]),
    );
    let g = &r.groups[0];
    assert_eq!((g.error_code, g.group_state.as_str()), (NONE, "Stable"));
    assert_eq!(
        (g.protocol_type.as_str(), g.protocol_data.as_str()),
        ("consumer", "range")
    );
    assert_eq!(g.members.len(), 2);
    assert_eq!(g.members[0].member_id.as_str(), a);
    assert_eq!(g.members[0].client_id.as_str(), "client-a");
    assert_eq!(&g.members[0].member_assignment[..], b"for-a");
    assert_eq!(&g.members[0].member_metadata[..], b"sub-a");
    assert_eq!(r.groups[1].group_state.as_str(), "Dead");
    // Filter by state (v4), case-insensitively.
    let stable = d.c.handle_list_groups(
        4,
        ListGroupsRequest::default().with_states_filter(vec![s("stable")]),
    );
    assert_eq!(stable.groups.len(), 1);
    assert_eq!(stable.groups[0].group_state.as_str(), "Stable");
    let empty = d.c.handle_list_groups(
        4,
        ListGroupsRequest::default().with_states_filter(vec![s("Empty")]),
    );
    assert!(empty.groups.is_empty());
    let _ = d.join(5, "client-a", &a, &[("range", b"new")]);
    let r = d.c.handle_describe_groups(
        5,
        DescribeGroupsRequest::default().with_groups(vec![GroupId(s(GROUP))]),
    );
    assert_eq!(r.groups[0].group_state.as_str(), "PreparingRebalance");
    assert!(
        r.groups[0].members[0].member_assignment.is_empty(),
        "only Stable shows assignments"
    );
}

#[test]
fn groups_that_never_formed_are_forgotten() {
    let mut d = Driver::new(0);
    let (_, r) = d.join(5, "x", "stale-id", RANGE);
    assert_eq!(r.now().unwrap().error_code, UNKNOWN_MEMBER_ID);
    assert!(
        d.c.group(GROUP).is_none(),
        "a stale member id creates no group"
    );
    let (_, r) = d.join(5, "x", "", RANGE);
    assert_eq!(r.now().unwrap().error_code, MEMBER_ID_REQUIRED);
    assert!(d.c.group(GROUP).is_some());
    assert_eq!(d.c.next_deadline(), Some(SESSION_MS as u64));
    d.tick(SESSION_MS as u64);
    assert!(d.c.group(GROUP).is_none(), "the unused KIP-394 id expired");
    // A group with a stored generation stays, Empty.
    let (_, id) = d.join_new("x", RANGE);
    d.take_join(id);
    d.tick(d.now + REBALANCE_MS as u64);
    let view = d.state();
    assert_eq!((view.state, view.generation), (GroupState::Empty, 2));
    d.tick(d.now + 1_000_000);
    assert!(d.c.group(GROUP).is_some());
}
