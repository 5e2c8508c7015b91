//! A driver for the group coordinator in tests: numbers requests, keeps the simulated
//! `__consumer_offsets` log, completes appends, and collects parked responses.
//! Included by the `group_*` test files with `#[path]`; it has no tests of its own.
#![allow(dead_code)]

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::group::*;

pub fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_owned())
}

pub const GROUP: &str = "g";
pub const SESSION_MS: i32 = 10_000;
pub const REBALANCE_MS: i32 = 30_000;

/// An append the driver has not completed: (request id, partition, records).
pub type Append = (Option<u64>, i32, Vec<(Bytes, Bytes)>);

pub struct Driver {
    pub c: GroupCoordinator,
    pub now: u64,
    next_request: u64,
    /// Everything appended (and committed) per `__consumer_offsets` partition.
    pub log: BTreeMap<i32, Vec<(Bytes, Bytes)>>,
    /// Appends not yet completed: (request id, partition, records).
    pub inflight: Vec<Append>,
    /// Parked responses that came out, by request id.
    pub responses: BTreeMap<u64, GroupResponse>,
    /// When true, appends are completed successfully as soon as they come out.
    pub auto_commit: bool,
}

/// A coordinator leading every `__consumer_offsets` partition.
pub fn config(initial_delay_ms: u64) -> CoordinatorConfig {
    CoordinatorConfig {
        offsets_partitions: 4,
        initial_rebalance_delay_ms: initial_delay_ms,
        ..CoordinatorConfig::default()
    }
}

impl Driver {
    pub fn new(initial_delay_ms: u64) -> Driver {
        let cfg = config(initial_delay_ms);
        let mut c = GroupCoordinator::new(cfg);
        for p in 0..cfg.offsets_partitions {
            c.load_partition(p, 0, Vec::new(), 0);
        }
        Driver {
            c,
            now: 0,
            next_request: 0,
            log: BTreeMap::new(),
            inflight: Vec::new(),
            responses: BTreeMap::new(),
            auto_commit: true,
        }
    }

    pub fn request_id(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// Drains effects: records responses, and appends (completing them if `auto_commit`).
    pub fn pump(&mut self) {
        loop {
            while let Some(effect) = self.c.poll_effect() {
                match effect {
                    Effect::Respond {
                        request_id,
                        response,
                    } => {
                        let old = self.responses.insert(request_id, response);
                        assert!(old.is_none(), "request {request_id} answered twice");
                    }
                    Effect::AppendOffsets {
                        request_id,
                        partition,
                        records,
                    } => self.inflight.push((request_id, partition, records)),
                }
            }
            if !self.auto_commit || self.inflight.is_empty() {
                return;
            }
            self.complete_appends(0);
        }
    }

    /// Completes every in-flight append with `code` (0 = committed: records go to the log).
    pub fn complete_appends(&mut self, code: i16) {
        for (id, partition, records) in std::mem::take(&mut self.inflight) {
            if code == 0 {
                self.log.entry(partition).or_default().extend(records);
            }
            if let Some(id) = id {
                self.c.complete_append(id, code, self.now);
            }
        }
    }

    pub fn tick(&mut self, to: u64) {
        self.now = to;
        self.c.tick(to);
        self.pump();
    }

    pub fn take(&mut self, id: u64) -> Option<GroupResponse> {
        self.responses.remove(&id)
    }

    pub fn take_join(&mut self, id: u64) -> JoinGroupResponse {
        match self.take(id) {
            Some(GroupResponse::Join(r)) => r,
            other => panic!("expected a join response for {id}, got {other:?}"),
        }
    }

    pub fn take_sync(&mut self, id: u64) -> SyncGroupResponse {
        match self.take(id) {
            Some(GroupResponse::Sync(r)) => r,
            other => panic!("expected a sync response for {id}, got {other:?}"),
        }
    }

    pub fn take_commit(&mut self, id: u64) -> OffsetCommitResponse {
        match self.take(id) {
            Some(GroupResponse::OffsetCommit(r)) => r,
            other => panic!("expected a commit response for {id}, got {other:?}"),
        }
    }

    /// Sends a JoinGroup; returns (request id, reply).
    pub fn join(
        &mut self,
        version: i16,
        client: &str,
        member_id: &str,
        protocols: &[(&str, &[u8])],
    ) -> (u64, Reply<JoinGroupResponse>) {
        self.join_req(
            version,
            client,
            join_request(member_id, "consumer", protocols),
        )
    }

    pub fn join_req(
        &mut self,
        version: i16,
        client: &str,
        req: JoinGroupRequest,
    ) -> (u64, Reply<JoinGroupResponse>) {
        let id = self.request_id();
        let info = ClientInfo {
            client_id: client.to_owned(),
            client_host: "/127.0.0.1".to_owned(),
        };
        let reply = self.c.handle_join(id, version, &info, req, self.now);
        self.pump();
        (id, reply)
    }

    /// KIP-394 join (v5): MEMBER_ID_REQUIRED first, then the join with the given id.
    /// Returns (member id, request id of the parked join).
    pub fn join_new(&mut self, client: &str, protocols: &[(&str, &[u8])]) -> (String, u64) {
        let (_, reply) = self.join(5, client, "", protocols);
        let r = reply.now().expect("first join answers at once");
        assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
        let member = r.member_id.as_str().to_owned();
        assert!(!member.is_empty());
        let (id, reply) = self.join(5, client, &member, protocols);
        assert_eq!(reply, Reply::Parked);
        (member, id)
    }

    pub fn sync(
        &mut self,
        version: i16,
        member: &str,
        generation: i32,
        assignments: &[(&str, &[u8])],
    ) -> (u64, Reply<SyncGroupResponse>) {
        let id = self.request_id();
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(generation)
            .with_member_id(s(member))
            .with_assignments(
                assignments
                    .iter()
                    .map(|(m, a)| {
                        SyncGroupRequestAssignment::default()
                            .with_member_id(s(m))
                            .with_assignment(Bytes::copy_from_slice(a))
                    })
                    .collect(),
            );
        let reply = self.c.handle_sync(id, version, req, self.now);
        self.pump();
        (id, reply)
    }

    pub fn heartbeat(&mut self, member: &str, generation: i32) -> i16 {
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_generation_id(generation)
            .with_member_id(s(member));
        let r = self.c.handle_heartbeat(4, req, self.now);
        self.pump();
        r.error_code
    }

    /// LeaveGroup v3+ (batch) for one member; returns (top-level, member) codes.
    pub fn leave(&mut self, member: &str) -> (i16, i16) {
        let req = LeaveGroupRequest::default()
            .with_group_id(GroupId(s(GROUP)))
            .with_members(vec![MemberIdentity::default().with_member_id(s(member))]);
        let r = self.c.handle_leave(4, req, self.now);
        self.pump();
        (r.error_code, r.members.first().map_or(-1, |m| m.error_code))
    }

    /// OffsetCommit v8 of `offsets` = [(topic, partition, offset)].
    pub fn commit(
        &mut self,
        group: &str,
        member: &str,
        generation: i32,
        offsets: &[(&str, i32, i64)],
    ) -> (u64, Reply<OffsetCommitResponse>) {
        let id = self.request_id();
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (t, p, o) in offsets {
            let part = OffsetCommitRequestPartition::default()
                .with_partition_index(*p)
                .with_committed_offset(*o)
                .with_committed_leader_epoch(3)
                .with_committed_metadata(Some(s("meta")));
            match topics.iter_mut().find(|x| x.name.as_str() == *t) {
                Some(x) => x.partitions.push(part),
                None => topics.push(
                    OffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(vec![part]),
                ),
            }
        }
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(generation)
            .with_member_id(s(member))
            .with_topics(topics);
        let reply = self.c.handle_offset_commit(id, 8, req, self.now);
        self.pump();
        (id, reply)
    }

    /// OffsetFetch v7 of `partitions` of `topic` (None = all): (top error, [(topic, p, offset)]).
    pub fn fetch(
        &self,
        group: &str,
        topic: Option<(&str, &[i32])>,
    ) -> (i16, Vec<(String, i32, i64)>) {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(topic.map(|(t, ps)| {
                vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(s(t)))
                    .with_partition_indexes(ps.to_vec())]
            }));
        let r = self.c.handle_offset_fetch(7, req);
        let found = r
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.name.as_str().to_owned(),
                        p.partition_index,
                        p.committed_offset,
                    )
                })
            })
            .collect();
        (r.error_code, found)
    }

    pub fn state(&self) -> GroupView {
        self.c.group(GROUP).expect("group exists")
    }
}

pub fn join_request(
    member_id: &str,
    protocol_type: &str,
    protocols: &[(&str, &[u8])],
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(GROUP)))
        .with_session_timeout_ms(SESSION_MS)
        .with_rebalance_timeout_ms(REBALANCE_MS)
        .with_member_id(s(member_id))
        .with_protocol_type(s(protocol_type))
        .with_protocols(
            protocols
                .iter()
                .map(|(n, m)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(n))
                        .with_metadata(Bytes::copy_from_slice(m))
                })
                .collect(),
        )
}

pub const RANGE: &[(&str, &[u8])] = &[("range", b"sub-a"), ("roundrobin", b"rr-a")];
