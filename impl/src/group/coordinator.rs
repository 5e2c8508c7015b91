//! [`GroupCoordinator`]: the classic group protocol as a deterministic state machine.
//!
//! The driver (the node runtime) hands it decoded kafka-protocol requests with a
//! `request_id` of its choosing and the current time. Requests that Kafka answers at once
//! (Heartbeat, LeaveGroup, OffsetFetch, ListGroups, DescribeGroups, and every error) get
//! their response back directly. JoinGroup, SyncGroup and OffsetCommit may be *parked*
//! ([`Reply::Parked`]); their responses come out later as [`Effect::Respond`] from
//! [`GroupCoordinator::poll_effect`]. The driver maps request ids back to connections.
//!
//! Writes to `__consumer_offsets` come out as [`Effect::AppendOffsets`]; the driver
//! appends the records to that partition (acks=all) and calls
//! [`GroupCoordinator::complete_append`] with the same request id once the append is
//! committed (reached the high watermark) or failed. A commit is answered only then, so
//! an acknowledged offset survives the loss of the coordinator. The leader's SyncGroup
//! is likewise answered only once the generation's assignment is stored.
//!
//! Time: [`GroupCoordinator::tick`] expires sessions and ends join phases;
//! [`GroupCoordinator::next_deadline`] says when the next tick is due.
//!
//! Group states and transitions are mapped to this code in [`super::state`].

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::codec::{self, GroupValue, OffsetValue, Record};
use super::placement::partition_for;
use super::rebalance::{
    add_member_and_rebalance, answer_syncs, complete_join, join_error, join_response, new_member,
    new_member_id, prepare_rebalance, remove_member, restore_group, store_group, sync_response,
    try_complete_join,
};
use super::state::{Group, GroupState, GroupView, Parked};
use super::types::{fill_commit_codes, for_append_error, Outbox, PendingAppend};
use super::types::{ClientInfo, CoordinatorConfig, Effect, GroupResponse, Reply};
use crate::error_codes as errors;

/// Whether this broker serves a `__consumer_offsets` partition yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Leader, but the log is still being read: COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    /// Leader with the partition's groups and offsets in memory.
    Loaded,
}

/// The classic group coordinator of one broker. See the module docs.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(crate) config: CoordinatorConfig,
    partitions: BTreeMap<i32, Load>,
    /// The leader epoch of each led `__consumer_offsets` partition (Kafka's coordinator
    /// epoch): part of every member id handed out, so ids never repeat across failovers.
    coordinator_epochs: BTreeMap<i32, i32>,
    pub(crate) groups: BTreeMap<String, Group>,
    /// Committed offsets per group, keyed by (topic, partition).
    pub(crate) offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetValue>>,
    pub(crate) out: Outbox,
    /// Counter for generated member ids.
    next_member: u64,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl GroupCoordinator {
    /// A coordinator that leads no `__consumer_offsets` partition yet.
    pub fn new(config: CoordinatorConfig) -> Self {
        GroupCoordinator {
            config,
            partitions: BTreeMap::new(),
            coordinator_epochs: BTreeMap::new(),
            groups: BTreeMap::new(),
            offsets: BTreeMap::new(),
            out: Outbox::default(),
            next_member: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.config
    }

    /// The next effect to carry out, in order.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.out.effects.pop_front()
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.config.offsets_partitions)
    }

    /// A snapshot of `group_id`, if this coordinator has it.
    pub fn group(&self, group_id: &str) -> Option<GroupView> {
        self.groups.get(group_id).map(Group::view)
    }

    /// Snapshots of every group this coordinator has.
    pub fn groups(&self) -> Vec<GroupView> {
        self.groups.values().map(Group::view).collect()
    }

    /// NONE if this coordinator serves `group_id` now, else the error to answer.
    pub(crate) fn coordinator_error(&self, group_id: &str) -> i16 {
        if group_id.is_empty() {
            return errors::INVALID_GROUP_ID;
        }
        match self.partitions.get(&self.partition_of(group_id)) {
            None => errors::NOT_COORDINATOR,
            Some(Load::Loading) => errors::COORDINATOR_LOAD_IN_PROGRESS,
            Some(Load::Loaded) => errors::NONE,
        }
    }

    // ---------------------------------------------------------------- JoinGroup

    /// JoinGroup at `version`. See [`super::state`] for the transitions it drives: the
    /// request is checked ([`Self::join_settings`]), then a member joins for the first
    /// time ([`join_new_member`]), returns with the id KIP-394 handed it
    /// ([`join_pending_member`]), or joins again ([`rejoin_member`]).
    pub fn handle_join(
        &mut self,
        request_id: u64,
        version: i16,
        client: &ClientInfo,
        req: JoinGroupRequest,
        now_ms: u64,
    ) -> Reply<JoinGroupResponse> {
        let member_id = req.member_id.as_str().to_owned();
        let fail = |code| Reply::Now(join_error(version, code, &member_id));
        let group_id = req.group_id.as_str().to_owned();
        let join = match self.join_settings(&group_id, version, &req) {
            Ok(join) => join,
            Err(code) => return fail(code),
        };
        let parked = Parked {
            request_id,
            version,
        };
        let partition = self.partition_of(&group_id);
        let epoch = self
            .coordinator_epochs
            .get(&partition)
            .copied()
            .unwrap_or(0);
        let cfg = self.config;
        if !member_id.is_empty() && !self.groups.contains_key(&group_id) {
            return fail(errors::UNKNOWN_MEMBER_ID);
        }
        let group = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id.clone(), partition));
        let out = &mut self.out;
        if member_id.is_empty() {
            let next_member = &mut self.next_member;
            let new_id =
                |group: &Group| new_member_id(next_member, &client.client_id, epoch, group);
            return join_new_member(group, &cfg, out, new_id, client, &req, join, parked, now_ms);
        }
        if group.pending_members.contains_key(&member_id) {
            return join_pending_member(
                group, &cfg, out, member_id, client, &req, join, parked, now_ms,
            );
        }
        rejoin_member(
            group, &cfg, out, &member_id, client, &req, join, parked, now_ms,
        )
    }

    /// The checks of a JoinGroup before any group is touched, and what it asks for.
    fn join_settings(
        &self,
        group_id: &str,
        version: i16,
        req: &JoinGroupRequest,
    ) -> Result<JoinSettings, i16> {
        let code = self.coordinator_error(group_id);
        if code != errors::NONE {
            return Err(code);
        }
        if req.group_instance_id.is_some() {
            // Static membership (KIP-345) is not implemented; Kafka answers the same code
            // when its inter-broker protocol predates static membership.
            return Err(errors::UNSUPPORTED_VERSION);
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            return Err(errors::INVALID_SESSION_TIMEOUT);
        }
        let rebalance_timeout_ms = if version == 0 || req.rebalance_timeout_ms < 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        };
        Ok(JoinSettings {
            version,
            protocol_type: req.protocol_type.as_str().to_owned(),
            protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.as_str().to_owned(), p.metadata.clone()))
                .collect(),
            rebalance_timeout_ms,
        })
    }

    // ---------------------------------------------------------------- SyncGroup

    /// SyncGroup at `version`: followers wait for the leader; the leader's assignment is
    /// stored in `__consumer_offsets` before anyone gets it.
    pub fn handle_sync(
        &mut self,
        request_id: u64,
        version: i16,
        req: SyncGroupRequest,
        now_ms: u64,
    ) -> Reply<SyncGroupResponse> {
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        let fail = |code| Reply::Now(sync_response(version, code, None, Bytes::new()));
        let code = self.coordinator_error(group_id);
        if code != errors::NONE {
            return fail(code);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return fail(errors::UNKNOWN_MEMBER_ID);
        };
        if !group.members.contains_key(member_id) {
            return fail(errors::UNKNOWN_MEMBER_ID);
        }
        if req.generation_id != group.generation {
            return fail(errors::ILLEGAL_GENERATION);
        }
        let type_mismatch = req
            .protocol_type
            .as_ref()
            .is_some_and(|t| t.as_str() != group.protocol_type);
        let name_mismatch = req
            .protocol_name
            .as_ref()
            .is_some_and(|p| Some(p.as_str()) != group.protocol.as_deref());
        if type_mismatch || name_mismatch {
            return fail(errors::INCONSISTENT_GROUP_PROTOCOL);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(errors::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => fail(errors::REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let member = group.members.get_mut(member_id).expect("checked above");
                member.last_heartbeat_ms = now_ms;
                let assignment = member.assignment.clone();
                Reply::Now(sync_response(
                    version,
                    errors::NONE,
                    Some(group),
                    assignment,
                ))
            }
            GroupState::CompletingRebalance => {
                let member = group.members.get_mut(member_id).expect("checked above");
                member.last_heartbeat_ms = now_ms;
                let parked = Parked {
                    request_id,
                    version,
                };
                if let Some(old) = member.pending_sync.replace(parked) {
                    let response = sync_response(
                        old.version,
                        errors::REBALANCE_IN_PROGRESS,
                        None,
                        Bytes::new(),
                    );
                    self.out
                        .respond(old.request_id, GroupResponse::Sync(response));
                }
                let is_leader = group.leader.as_deref() == Some(member_id);
                if is_leader && group.sync_append.is_none() {
                    let mut given: BTreeMap<&str, Bytes> = BTreeMap::new();
                    for a in &req.assignments {
                        given.insert(a.member_id.as_str(), a.assignment.clone());
                    }
                    for m in group.members.values_mut() {
                        m.assignment = given.get(m.id.as_str()).cloned().unwrap_or_default();
                    }
                    group.sync_append = Some(request_id);
                    self.out.pending.insert(
                        request_id,
                        PendingAppend::GroupSync {
                            group: group.id.clone(),
                            generation: group.generation,
                        },
                    );
                    store_group(group, &mut self.out, Some(request_id));
                }
                Reply::Parked
            }
        }
    }

    // ---------------------------------------------------------------- Heartbeat

    /// Heartbeat: restarts the member's session timer and tells it whether to rejoin.
    pub fn handle_heartbeat(
        &mut self,
        _version: i16,
        req: HeartbeatRequest,
        now_ms: u64,
    ) -> HeartbeatResponse {
        let reply = |code| HeartbeatResponse::default().with_error_code(code);
        let group_id = req.group_id.as_str();
        let code = self.coordinator_error(group_id);
        if code != errors::NONE {
            return reply(code);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            return reply(errors::UNKNOWN_MEMBER_ID);
        };
        let Some(member) = group.members.get_mut(req.member_id.as_str()) else {
            return reply(errors::UNKNOWN_MEMBER_ID);
        };
        if req.generation_id != group.generation {
            // During PreparingRebalance the generation has not moved yet, so a member
            // of the old generation lands below and is told to rejoin.
            return reply(errors::ILLEGAL_GENERATION);
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => reply(errors::UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => {
                member.last_heartbeat_ms = now_ms;
                reply(errors::REBALANCE_IN_PROGRESS)
            }
            // Members heartbeat between their JoinGroup and SyncGroup responses too.
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.last_heartbeat_ms = now_ms;
                reply(errors::NONE)
            }
        }
    }

    // ---------------------------------------------------------------- LeaveGroup

    /// LeaveGroup: v0–2 name one member; v3+ a batch with a result per member.
    pub fn handle_leave(
        &mut self,
        version: i16,
        req: LeaveGroupRequest,
        now_ms: u64,
    ) -> LeaveGroupResponse {
        let group_id = req.group_id.as_str().to_owned();
        let code = self.coordinator_error(&group_id);
        if code != errors::NONE {
            return LeaveGroupResponse::default().with_error_code(code);
        }
        let leaving: Vec<(String, Option<StrBytes>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| (m.member_id.as_str().to_owned(), m.group_instance_id.clone()))
                .collect()
        } else {
            vec![(req.member_id.as_str().to_owned(), None)]
        };
        let cfg = self.config;
        let mut results = Vec::with_capacity(leaving.len());
        for (member_id, instance) in leaving {
            let code = match self.groups.get_mut(&group_id) {
                None => errors::UNKNOWN_MEMBER_ID,
                Some(group) => {
                    if group.pending_members.shift_remove(&member_id).is_some() {
                        try_complete_join(group, &mut self.out, now_ms);
                        errors::NONE
                    } else if group.members.contains_key(&member_id) {
                        remove_member(group, &cfg, &mut self.out, &member_id, now_ms);
                        errors::NONE
                    } else {
                        errors::UNKNOWN_MEMBER_ID
                    }
                }
            };
            results.push(
                MemberResponse::default()
                    .with_member_id(sb(&member_id))
                    .with_group_instance_id(instance)
                    .with_error_code(code),
            );
        }
        if version >= 3 {
            LeaveGroupResponse::default().with_members(results)
        } else {
            let code = results.first().map_or(errors::NONE, |r| r.error_code);
            LeaveGroupResponse::default().with_error_code(code)
        }
    }

    // ---------------------------------------------------------------- ListGroups / DescribeGroups

    /// ListGroups: every group on a loaded partition (v4: filtered by state name,
    /// case-insensitively). While a partition loads, its groups are missing and the
    /// error is COORDINATOR_LOAD_IN_PROGRESS, as in Kafka.
    pub fn handle_list_groups(&self, version: i16, req: ListGroupsRequest) -> ListGroupsResponse {
        let loading = self.partitions.values().any(|l| *l == Load::Loading);
        let filter: Vec<String> = req
            .states_filter
            .iter()
            .map(|s| s.as_str().to_ascii_lowercase())
            .collect();
        let groups = self
            .groups
            .values()
            .filter(|g| self.partitions.get(&g.partition) == Some(&Load::Loaded))
            .filter(|g| filter.is_empty() || filter.contains(&g.state.name().to_ascii_lowercase()))
            .map(|g| {
                let listed = ListedGroup::default()
                    .with_group_id(GroupId(sb(&g.id)))
                    .with_protocol_type(sb(&g.protocol_type));
                if version >= 4 {
                    listed.with_group_state(sb(g.state.name()))
                } else {
                    listed
                }
            })
            .collect();
        ListGroupsResponse::default()
            .with_error_code(if loading {
                errors::COORDINATOR_LOAD_IN_PROGRESS
            } else {
                errors::NONE
            })
            .with_groups(groups)
    }

    /// DescribeGroups: per group, its state, protocol and members. As in Kafka, member
    /// metadata and assignments are only shown when the group is Stable, and a group
    /// this coordinator should have but does not is reported as Dead with no error.
    pub fn handle_describe_groups(
        &self,
        _version: i16,
        req: DescribeGroupsRequest,
    ) -> DescribeGroupsResponse {
        let groups = req
            .groups
            .iter()
            .map(|gid| {
                let described = DescribedGroup::default().with_group_id(gid.clone());
                let code = self.coordinator_error(gid.as_str());
                if code != errors::NONE {
                    return described.with_error_code(code);
                }
                let Some(group) = self.groups.get(gid.as_str()) else {
                    return described.with_group_state(sb(GroupState::Dead.name()));
                };
                let stable = group.state == GroupState::Stable;
                let members = group
                    .members
                    .values()
                    .map(|m| {
                        let member = DescribedGroupMember::default()
                            .with_member_id(sb(&m.id))
                            .with_client_id(sb(&m.client_id))
                            .with_client_host(sb(&m.client_host));
                        match (&group.protocol, stable) {
                            (Some(p), true) => member
                                .with_member_metadata(m.metadata_for(p))
                                .with_member_assignment(m.assignment.clone()),
                            _ => member,
                        }
                    })
                    .collect();
                described
                    .with_group_state(sb(group.state.name()))
                    .with_protocol_type(sb(&group.protocol_type))
                    .with_protocol_data(sb(if stable {
                        group.protocol.as_deref().unwrap_or("")
                    } else {
                        ""
                    }))
                    .with_members(members)
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    // ---------------------------------------------------------------- time

    /// Advances time to `now_ms`: expires KIP-394 member ids and member sessions, ends
    /// join phases at their deadline, and removes members that did not send SyncGroup
    /// within the rebalance timeout.
    pub fn tick(&mut self, now_ms: u64) {
        let cfg = self.config;
        for group in self.groups.values_mut() {
            group.pending_members.retain(|_, expiry| *expiry > now_ms);
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| m.session_expired(now_ms))
                .map(|m| m.id.clone())
                .collect();
            for id in expired {
                remove_member(group, &cfg, &mut self.out, &id, now_ms);
            }
            if group.state == GroupState::PreparingRebalance
                && group.join_deadline_ms.is_some_and(|d| d <= now_ms)
            {
                complete_join(group, &mut self.out, now_ms);
            }
            if group.state == GroupState::CompletingRebalance
                && group.sync_append.is_none()
                && group.sync_deadline_ms.is_some_and(|d| d <= now_ms)
            {
                let silent: Vec<String> = group
                    .members
                    .values()
                    .filter(|m| m.pending_sync.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in silent {
                    remove_member(group, &cfg, &mut self.out, &id, now_ms);
                }
            }
            try_complete_join(group, &mut self.out, now_ms);
        }
        // Forget groups that never got past a KIP-394 id or a refused join: nothing of
        // them is stored, so nothing is lost. Groups with a stored generation or offsets
        // stay, as Empty (Kafka deletes those only with offsets retention, which Osprey
        // does not implement).
        let offsets = &self.offsets;
        self.groups.retain(|id, g| {
            !(g.state == GroupState::Empty
                && g.generation == 0
                && g.members.is_empty()
                && g.pending_members.is_empty()
                && !offsets.contains_key(id)
                && !self
                    .out
                    .pending
                    .values()
                    .any(|p| matches!(p, PendingAppend::Commit { group, .. } if group == id)))
        });
    }

    /// The earliest time at which [`tick`](Self::tick) has something to do, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |t: u64| next = Some(next.map_or(t, |n: u64| n.min(t)));
        for g in self.groups.values() {
            g.pending_members.values().for_each(|t| consider(*t));
            g.members
                .values()
                .filter(|m| m.pending_join.is_none() && m.pending_sync.is_none())
                .for_each(|m| consider(m.session_deadline_ms()));
            if g.state == GroupState::PreparingRebalance {
                g.join_deadline_ms.into_iter().for_each(&mut consider);
            }
            if g.state == GroupState::CompletingRebalance && g.sync_append.is_none() {
                g.sync_deadline_ms.into_iter().for_each(&mut consider);
            }
        }
        next
    }

    // ---------------------------------------------------------------- appends

    /// The append of request `request_id` finished with `error_code` (0 = committed to
    /// `__consumer_offsets`). Unknown ids (e.g. after `unload_partition`) are ignored.
    pub fn complete_append(&mut self, request_id: u64, error_code: i16, now_ms: u64) {
        let Some(pending) = self.out.pending.remove(&request_id) else {
            return;
        };
        match pending {
            PendingAppend::Commit {
                group,
                partition,
                offsets,
                response,
            } => self.finish_commit(
                request_id,
                (group, partition),
                offsets,
                response,
                error_code,
            ),
            PendingAppend::GroupSync { group, generation } => {
                let cfg = self.config;
                let Some(g) = self.groups.get_mut(&group) else {
                    return;
                };
                if g.state != GroupState::CompletingRebalance
                    || g.generation != generation
                    || g.sync_append != Some(request_id)
                {
                    // A rebalance overtook the store; its parked syncs were answered then.
                    return;
                }
                g.sync_append = None;
                if error_code == errors::NONE {
                    g.state = GroupState::Stable;
                    g.sync_deadline_ms = None;
                    answer_syncs(g, &mut self.out, errors::NONE);
                } else {
                    for m in g.members.values_mut() {
                        m.assignment = Bytes::new();
                    }
                    answer_syncs(g, &mut self.out, for_append_error(error_code));
                    prepare_rebalance(g, &cfg, &mut self.out, now_ms);
                    try_complete_join(g, &mut self.out, now_ms);
                }
            }
        }
    }

    // ---------------------------------------------------------------- partition leadership

    /// This broker became leader of `__consumer_offsets` partition `partition` and is
    /// reading its log: its groups answer COORDINATOR_LOAD_IN_PROGRESS until
    /// [`load_partition`](Self::load_partition).
    pub fn begin_loading(&mut self, partition: i32, coordinator_epoch: i32) {
        self.drop_partition(partition);
        self.partitions.insert(partition, Load::Loading);
        self.coordinator_epochs.insert(partition, coordinator_epoch);
    }

    /// `coordinator_epoch` is the partition's leader epoch in this broker's term as
    /// leader. It goes into member ids (`{client_id}-{coordinator_epoch}-{n}`), so a new
    /// coordinator never hands out the id of a member an old one removed (whose zombie
    /// client could otherwise heartbeat and commit as the new member).
    ///
    /// Rebuilds the groups and offsets of `partition` from its log (every record to the log
    /// end, in offset order) and starts serving them. Later records override
    /// earlier ones per key; empty values are tombstones; undecodable records are skipped
    /// with a warning. Loaded members keep their generation and assignment and their
    /// session timers start at `now_ms`, so consumers of a Stable group carry on
    /// heartbeating to the new coordinator without a rebalance.
    pub fn load_partition(
        &mut self,
        partition: i32,
        coordinator_epoch: i32,
        records: impl IntoIterator<Item = (Bytes, Bytes)>,
        now_ms: u64,
    ) {
        self.drop_partition(partition);
        let mut stored_groups: BTreeMap<String, GroupValue> = BTreeMap::new();
        let mut offsets: BTreeMap<String, BTreeMap<(String, i32), OffsetValue>> = BTreeMap::new();
        for (key, value) in records {
            match codec::decode_record(key, value) {
                Ok(Record::Offset {
                    group,
                    topic,
                    partition: p,
                    value,
                }) => {
                    let entry = offsets.entry(group).or_default();
                    match value {
                        Some(v) => {
                            entry.insert((topic, p), v);
                        }
                        None => {
                            entry.remove(&(topic, p));
                        }
                    }
                }
                Ok(Record::Group { group, value }) => match value {
                    Some(v) => {
                        stored_groups.insert(group, v);
                    }
                    None => {
                        stored_groups.remove(&group);
                    }
                },
                Err(err) => {
                    tracing::warn!(partition, %err, "skipping undecodable __consumer_offsets record");
                }
            }
        }
        for (id, stored) in stored_groups {
            let group = restore_group(id.clone(), partition, stored, now_ms);
            self.groups.insert(id, group);
        }
        for (id, offs) in offsets {
            if offs.is_empty() {
                continue;
            }
            self.groups
                .entry(id.clone())
                .or_insert_with(|| Group::new(id.clone(), partition));
            self.offsets.insert(id, offs);
        }
        self.partitions.insert(partition, Load::Loaded);
        self.coordinator_epochs.insert(partition, coordinator_epoch);
    }

    /// This broker no longer leads `partition`: its groups are dropped (Dead) and every
    /// request parked on them is answered NOT_COORDINATOR, so clients find the new one.
    pub fn unload_partition(&mut self, partition: i32) {
        self.drop_partition(partition);
    }

    fn drop_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
        self.coordinator_epochs.remove(&partition);
        let ids: Vec<String> = self
            .groups
            .values()
            .filter(|g| g.partition == partition)
            .map(|g| g.id.clone())
            .collect();
        for id in ids {
            if let Some(mut group) = self.groups.remove(&id) {
                group.state = GroupState::Dead;
                for m in group.members.values_mut() {
                    if let Some(p) = m.pending_join.take() {
                        let r = join_error(p.version, errors::NOT_COORDINATOR, &m.id);
                        self.out.respond(p.request_id, GroupResponse::Join(r));
                    }
                    if let Some(p) = m.pending_sync.take() {
                        let r =
                            sync_response(p.version, errors::NOT_COORDINATOR, None, Bytes::new());
                        self.out.respond(p.request_id, GroupResponse::Sync(r));
                    }
                }
            }
            self.offsets.remove(&id);
        }
        let commits: Vec<u64> = self
            .out
            .pending
            .iter()
            .filter(|(_, p)| match p {
                PendingAppend::Commit { partition: p, .. } => *p == partition,
                PendingAppend::GroupSync { group, .. } => !self.groups.contains_key(group),
            })
            .map(|(id, _)| *id)
            .collect();
        for id in commits {
            if let Some(PendingAppend::Commit { response, .. }) = self.out.pending.remove(&id) {
                let response = fill_commit_codes(response, errors::NOT_COORDINATOR);
                self.out.respond(id, GroupResponse::OffsetCommit(response));
            }
        }
    }
}

/// What a checked JoinGroup asks for.
struct JoinSettings {
    version: i16,
    protocol_type: String,
    protocols: Vec<(String, Bytes)>,
    rebalance_timeout_ms: i32,
}

/// A JoinGroup without a member id: with KIP-394 (v4+) the member gets its id first and
/// must join again with it; before, it joins at once and a rebalance starts.
#[allow(clippy::too_many_arguments)]
fn join_new_member(
    group: &mut Group,
    cfg: &CoordinatorConfig,
    out: &mut Outbox,
    new_id: impl FnOnce(&Group) -> String,
    client: &ClientInfo,
    req: &JoinGroupRequest,
    join: JoinSettings,
    parked: Parked,
    now_ms: u64,
) -> Reply<JoinGroupResponse> {
    if !group.supports(&join.protocol_type, &join.protocols, None) {
        return Reply::Now(join_error(
            join.version,
            errors::INCONSISTENT_GROUP_PROTOCOL,
            "",
        ));
    }
    let new_id = new_id(group);
    if join.version >= 4 {
        // KIP-394: hand out the id first, so a client that times out before the join
        // phase ends does not leave an unknown member behind.
        let expiry = now_ms.saturating_add(req.session_timeout_ms as u64);
        group.pending_members.insert(new_id.clone(), expiry);
        return Reply::Now(join_error(
            join.version,
            errors::MEMBER_ID_REQUIRED,
            &new_id,
        ));
    }
    let member = new_member(
        new_id,
        client,
        req,
        join.rebalance_timeout_ms,
        join.protocols,
        now_ms,
        parked,
    );
    add_member_and_rebalance(group, cfg, out, member, &join.protocol_type, now_ms);
    Reply::Parked
}

/// A JoinGroup with the member id KIP-394 handed out: the member joins and a rebalance
/// starts.
#[allow(clippy::too_many_arguments)]
fn join_pending_member(
    group: &mut Group,
    cfg: &CoordinatorConfig,
    out: &mut Outbox,
    member_id: String,
    client: &ClientInfo,
    req: &JoinGroupRequest,
    join: JoinSettings,
    parked: Parked,
    now_ms: u64,
) -> Reply<JoinGroupResponse> {
    if !group.supports(&join.protocol_type, &join.protocols, None) {
        let code = errors::INCONSISTENT_GROUP_PROTOCOL;
        return Reply::Now(join_error(join.version, code, &member_id));
    }
    group.pending_members.shift_remove(&member_id);
    let member = new_member(
        member_id,
        client,
        req,
        join.rebalance_timeout_ms,
        join.protocols,
        now_ms,
        parked,
    );
    add_member_and_rebalance(group, cfg, out, member, &join.protocol_type, now_ms);
    Reply::Parked
}

/// A JoinGroup from a member of the group: a duplicate after the join phase is answered
/// with the generation it is in (unless its protocols changed); otherwise its settings
/// are updated and the group rebalances (or goes on with the rebalance under way).
#[allow(clippy::too_many_arguments)]
fn rejoin_member(
    group: &mut Group,
    cfg: &CoordinatorConfig,
    out: &mut Outbox,
    member_id: &str,
    client: &ClientInfo,
    req: &JoinGroupRequest,
    join: JoinSettings,
    parked: Parked,
    now_ms: u64,
) -> Reply<JoinGroupResponse> {
    let fail = |code| Reply::Now(join_error(join.version, code, member_id));
    if !group.members.contains_key(member_id) {
        return fail(errors::UNKNOWN_MEMBER_ID);
    }
    if !group.supports(&join.protocol_type, &join.protocols, Some(member_id)) {
        return fail(errors::INCONSISTENT_GROUP_PROTOCOL);
    }
    let unchanged = group.members[member_id].protocols == join.protocols;
    let is_leader = group.leader.as_deref() == Some(member_id);
    match group.state {
        GroupState::PreparingRebalance => {}
        // A duplicate join after the join phase ended: answer with the generation the
        // member is already in, as Kafka does, unless its protocols changed.
        GroupState::CompletingRebalance if unchanged => {
            return Reply::Now(join_response(group, member_id));
        }
        GroupState::Stable if unchanged && !is_leader => {
            return Reply::Now(join_response(group, member_id));
        }
        GroupState::CompletingRebalance | GroupState::Stable => {}
        GroupState::Empty | GroupState::Dead => return fail(errors::UNKNOWN_MEMBER_ID),
    }
    let member = group.members.get_mut(member_id).expect("checked above");
    member.protocols = join.protocols;
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = join.rebalance_timeout_ms;
    member.client_id = client.client_id.clone();
    member.client_host = client.client_host.clone();
    member.last_heartbeat_ms = now_ms;
    if let Some(old) = member.pending_join.replace(parked) {
        let response = join_error(old.version, errors::REBALANCE_IN_PROGRESS, member_id);
        out.respond(old.request_id, GroupResponse::Join(response));
    }
    if group.state != GroupState::PreparingRebalance {
        prepare_rebalance(group, cfg, out, now_ms);
    }
    try_complete_join(group, out, now_ms);
    Reply::Parked
}
