//! The group transitions behind [`GroupCoordinator`](super::GroupCoordinator) (see
//! [`super::state`] for the state diagram) and the shapes of the responses they send.
//! Each function takes the group, the outbox for responses and appends, and the time.

use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::codec::{self, GroupValue, RecordKey, StoredMember};
use super::state::{Group, GroupState, Member, Parked};
use super::types::{ClientInfo, CoordinatorConfig, Effect, GroupResponse, Outbox};
use crate::error_codes as errors;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

// -------------------------------------------------------------------- group transitions

/// A member id no one in `group` has: `{client_id}-{coordinator_epoch}-{n}` with `n`
/// from a per-coordinator counter. Deterministic (Kafka appends a UUID instead) and
/// unique across coordinators, since each leadership term of the `__consumer_offsets`
/// partition has its own epoch.
pub(crate) fn new_member_id(
    counter: &mut u64,
    client_id: &str,
    coordinator_epoch: i32,
    group: &Group,
) -> String {
    loop {
        *counter += 1;
        let id = format!("{client_id}-{coordinator_epoch}-{counter}");
        if !group.members.contains_key(&id) && !group.pending_members.contains_key(&id) {
            return id;
        }
    }
}

pub(crate) fn new_member(
    id: String,
    client: &ClientInfo,
    req: &JoinGroupRequest,
    rebalance_timeout_ms: i32,
    protocols: Vec<(String, Bytes)>,
    now_ms: u64,
    parked: Parked,
) -> Member {
    Member {
        id,
        client_id: client.client_id.clone(),
        client_host: client.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms,
        protocols,
        assignment: Bytes::new(),
        generation: -1,
        last_heartbeat_ms: now_ms,
        pending_join: Some(parked),
        pending_sync: None,
    }
}

/// A new member joins: Empty/Stable/CompletingRebalance → PreparingRebalance, or, already
/// preparing, the initial delay is extended for it.
pub(crate) fn add_member_and_rebalance(
    group: &mut Group,
    cfg: &CoordinatorConfig,
    out: &mut Outbox,
    member: Member,
    protocol_type: &str,
    now_ms: u64,
) {
    if group.members.is_empty() {
        group.protocol_type = protocol_type.to_owned();
    }
    group.members.insert(member.id.clone(), member);
    match group.state {
        GroupState::PreparingRebalance => {
            if let Some(cap) = group.initial_delay_cap_ms {
                let extended = now_ms
                    .saturating_add(cfg.initial_rebalance_delay_ms)
                    .min(cap);
                group.join_deadline_ms = Some(extended.max(group.join_deadline_ms.unwrap_or(0)));
            } else {
                // The join phase lasts the largest rebalance timeout among members.
                let deadline = now_ms.saturating_add(group.max_rebalance_timeout_ms());
                group.join_deadline_ms =
                    Some(group.join_deadline_ms.map_or(deadline, |d| d.max(deadline)));
            }
        }
        _ => prepare_rebalance(group, cfg, out, now_ms),
    }
    try_complete_join(group, out, now_ms);
}

/// Any state → PreparingRebalance. From CompletingRebalance the assignment under way is
/// abandoned: parked SyncGroups get REBALANCE_IN_PROGRESS. From Empty the join phase
/// waits `group.initial.rebalance.delay.ms` (capped by the rebalance timeout) so that
/// consumers starting together land in one generation.
pub(crate) fn prepare_rebalance(
    group: &mut Group,
    cfg: &CoordinatorConfig,
    out: &mut Outbox,
    now_ms: u64,
) {
    if group.state == GroupState::CompletingRebalance {
        for m in group.members.values_mut() {
            m.assignment = Bytes::new();
        }
        answer_syncs(group, out, errors::REBALANCE_IN_PROGRESS);
    }
    group.sync_append = None;
    group.sync_deadline_ms = None;
    let timeout = group.max_rebalance_timeout_ms();
    if group.state == GroupState::Empty && cfg.initial_rebalance_delay_ms > 0 {
        let cap = now_ms.saturating_add(timeout.max(cfg.initial_rebalance_delay_ms));
        group.initial_delay_cap_ms = Some(cap);
        group.join_deadline_ms = Some(now_ms.saturating_add(cfg.initial_rebalance_delay_ms));
    } else {
        group.initial_delay_cap_ms = None;
        group.join_deadline_ms = Some(now_ms.saturating_add(timeout));
    }
    group.state = GroupState::PreparingRebalance;
}

/// Ends the join phase early when every member has rejoined (never during the initial
/// delay, which exists to wait for members that have not joined yet).
pub(crate) fn try_complete_join(group: &mut Group, out: &mut Outbox, now_ms: u64) {
    if group.state == GroupState::PreparingRebalance
        && group.initial_delay_cap_ms.is_none()
        && group.all_members_joined()
    {
        complete_join(group, out, now_ms);
    }
}

/// PreparingRebalance → CompletingRebalance (or Empty): members that did not rejoin are
/// removed, the generation advances, a protocol and leader are chosen, and every parked
/// JoinGroup is answered — the leader's with the member list and metadata.
pub(crate) fn complete_join(group: &mut Group, out: &mut Outbox, now_ms: u64) {
    let gone: Vec<String> = group
        .members
        .values()
        .filter(|m| m.pending_join.is_none())
        .map(|m| m.id.clone())
        .collect();
    for id in gone {
        if let Some(m) = group.members.shift_remove(&id) {
            if let Some(p) = m.pending_sync {
                let r = sync_response(p.version, errors::UNKNOWN_MEMBER_ID, None, Bytes::new());
                out.respond(p.request_id, GroupResponse::Sync(r));
            }
        }
    }
    group.join_deadline_ms = None;
    group.initial_delay_cap_ms = None;
    group.generation += 1;
    if group.members.is_empty() {
        group.state = GroupState::Empty;
        group.protocol = None;
        group.leader = None;
        store_group(group, out, None);
        return;
    }
    group.protocol = group.select_protocol();
    if !group
        .leader
        .as_ref()
        .is_some_and(|l| group.members.contains_key(l))
    {
        group.leader = group.members.keys().next().cloned();
    }
    group.state = GroupState::CompletingRebalance;
    group.sync_deadline_ms = Some(now_ms.saturating_add(group.max_rebalance_timeout_ms()));
    let generation = group.generation;
    let ids: Vec<String> = group.members.keys().cloned().collect();
    for id in ids {
        let m = group.members.get_mut(&id).expect("listed above");
        m.generation = generation;
        m.last_heartbeat_ms = now_ms;
        m.assignment = Bytes::new();
        if let Some(p) = m.pending_join.take() {
            let r = join_response(group, &id);
            out.respond(p.request_id, GroupResponse::Join(r));
        }
    }
}

/// Removes a member (LeaveGroup, session expiry, no SyncGroup in time). A Stable or
/// CompletingRebalance group rebalances; a PreparingRebalance group may now be complete.
pub(crate) fn remove_member(
    group: &mut Group,
    cfg: &CoordinatorConfig,
    out: &mut Outbox,
    member_id: &str,
    now_ms: u64,
) {
    let Some(m) = group.members.shift_remove(member_id) else {
        return;
    };
    if let Some(p) = m.pending_join {
        let r = join_error(p.version, errors::UNKNOWN_MEMBER_ID, member_id);
        out.respond(p.request_id, GroupResponse::Join(r));
    }
    if let Some(p) = m.pending_sync {
        let r = sync_response(p.version, errors::UNKNOWN_MEMBER_ID, None, Bytes::new());
        out.respond(p.request_id, GroupResponse::Sync(r));
    }
    if group.leader.as_deref() == Some(member_id) {
        group.leader = group.members.keys().next().cloned();
    }
    match group.state {
        GroupState::Stable | GroupState::CompletingRebalance => {
            prepare_rebalance(group, cfg, out, now_ms)
        }
        GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
    }
    try_complete_join(group, out, now_ms);
}

/// Answers every parked SyncGroup: with its assignment on NONE, else with `code`.
pub(crate) fn answer_syncs(group: &mut Group, out: &mut Outbox, code: i16) {
    let snapshot = group.clone();
    for m in group.members.values_mut() {
        if let Some(p) = m.pending_sync.take() {
            let assignment = if code == errors::NONE {
                m.assignment.clone()
            } else {
                Bytes::new()
            };
            let r = sync_response(p.version, code, Some(&snapshot), assignment);
            out.respond(p.request_id, GroupResponse::Sync(r));
        }
    }
}

/// Emits the group-metadata record of `group` as it is now.
pub(crate) fn store_group(group: &Group, out: &mut Outbox, request_id: Option<u64>) {
    let value = GroupValue {
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol: group.protocol.clone(),
        leader: group.leader.clone(),
        members: group
            .members
            .values()
            .map(|m| StoredMember {
                member_id: m.id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                subscription: group
                    .protocol
                    .as_deref()
                    .map(|p| m.metadata_for(p))
                    .unwrap_or_default(),
                assignment: m.assignment.clone(),
            })
            .collect(),
    };
    out.effects.push_back(Effect::AppendOffsets {
        request_id,
        partition: group.partition,
        records: vec![(
            codec::encode_key(&RecordKey::Group {
                group: group.id.clone(),
            }),
            codec::encode_group_value(&value),
        )],
    });
}

/// A group as loaded from its latest metadata record: Stable with its members, or Empty.
pub(crate) fn restore_group(id: String, partition: i32, stored: GroupValue, now_ms: u64) -> Group {
    let mut group = Group::new(id, partition);
    group.generation = stored.generation;
    group.protocol_type = stored.protocol_type;
    if stored.members.is_empty() {
        return group;
    }
    let protocol = stored.protocol.unwrap_or_default();
    for m in stored.members {
        group.members.insert(
            m.member_id.clone(),
            Member {
                id: m.member_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocols: vec![(protocol.clone(), m.subscription)],
                assignment: m.assignment,
                generation: stored.generation,
                last_heartbeat_ms: now_ms,
                pending_join: None,
                pending_sync: None,
            },
        );
    }
    group.protocol = Some(protocol);
    group.leader = stored
        .leader
        .filter(|l| group.members.contains_key(l))
        .or_else(|| group.members.keys().next().cloned());
    group.state = GroupState::Stable;
    group
}

// -------------------------------------------------------------------- response shapes

/// A JoinGroup error (or MEMBER_ID_REQUIRED) response. Before v7 the protocol name is
/// a non-nullable string, so it is sent empty rather than null.
pub(crate) fn join_error(version: i16, code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_member_id(sb(member_id))
        .with_protocol_name(if version >= 7 {
            None
        } else {
            Some(StrBytes::new())
        })
}

/// The successful JoinGroup response for `member_id` in the current generation; only
/// the leader gets the member list with each member's metadata for the chosen protocol.
pub(crate) fn join_response(group: &Group, member_id: &str) -> JoinGroupResponse {
    let protocol = group.protocol.clone().unwrap_or_default();
    let leader = group.leader.clone().unwrap_or_default();
    let members = if leader == member_id {
        group
            .members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(sb(&m.id))
                    .with_metadata(m.metadata_for(&protocol))
            })
            .collect()
    } else {
        Vec::new()
    };
    JoinGroupResponse::default()
        .with_error_code(errors::NONE)
        .with_generation_id(group.generation)
        .with_protocol_type(Some(sb(&group.protocol_type)))
        .with_protocol_name(Some(sb(&protocol)))
        .with_leader(sb(&leader))
        .with_member_id(sb(member_id))
        .with_members(members)
}

/// A SyncGroup response; v5 echoes the group's protocol type and name on success.
pub(crate) fn sync_response(
    version: i16,
    code: i16,
    group: Option<&Group>,
    assignment: Bytes,
) -> SyncGroupResponse {
    let mut r = SyncGroupResponse::default()
        .with_error_code(code)
        .with_assignment(assignment);
    if let (Some(g), true, true) = (group, version >= 5, code == errors::NONE) {
        r = r
            .with_protocol_type(Some(sb(&g.protocol_type)))
            .with_protocol_name(g.protocol.as_deref().map(sb));
    }
    r
}
