//! Groups, members and Kafka's classic group states.
//!
//! ```text
//!                 a member joins (after group.initial.rebalance.delay.ms)
//!   Empty ───────────────────────────────────────────► PreparingRebalance
//!     ▲                                                  │  ▲         ▲
//!     │ the join phase ends with no member               │  │         │ a member joins, changes its
//!     └──────────────────────────────────────────────────┘  │         │ protocols, leaves, expires,
//!                                                            │         │ or the store fails
//!                        the join phase ends (all rejoined   │         │
//!                        or the rebalance timeout)           ▼         │
//!                                                  CompletingRebalance ┤
//!                                                            │         │
//!                        the leader's SyncGroup is stored    ▼         │
//!                                                         Stable ──────┘
//!
//!   any state ── unload_partition (no longer leads the __consumer_offsets partition) ──► Dead
//! ```
//!
//! Where each transition lives in [`super::coordinator`] and [`super::rebalance`]:
//! * Empty → PreparingRebalance: `prepare_rebalance`, called from `add_member_and_rebalance` (the
//!   initial rebalance delay, `group.initial.rebalance.delay.ms`, applies only here).
//! * PreparingRebalance → CompletingRebalance / Empty: `complete_join`, called when every
//!   member has rejoined (`try_complete_join`) or from `tick` at the rebalance deadline.
//! * CompletingRebalance → Stable: `complete_append` for the group-metadata record the
//!   leader's SyncGroup wrote.
//! * Stable / CompletingRebalance → PreparingRebalance: `prepare_rebalance`, from a
//!   (re)join that changes the group, a LeaveGroup, a session expiry in `tick`, a
//!   member that never sent SyncGroup within the rebalance timeout, or a failed store of
//!   the assignment.
//! * any → Dead: `unload_partition`; the group object is dropped (Kafka's Dead groups
//!   are unreachable too), and DescribeGroups reports unknown groups as Dead.

use bytes::Bytes;
use indexmap::IndexMap;

/// Kafka's classic group states, with the names DescribeGroups and ListGroups report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members. The group may still have committed offsets.
    Empty,
    /// A rebalance started: waiting for members to (re)join.
    PreparingRebalance,
    /// The join phase ended: waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// Every member has the current generation and the leader's assignment is stored.
    Stable,
    /// The group is gone (its partition was unloaded, or it never existed here).
    Dead,
}

impl GroupState {
    /// The state name Kafka uses on the wire.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A parked request: the driver's id for it and the API version to answer at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parked {
    pub request_id: u64,
    pub version: i16,
}

/// One member of a group.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub id: String,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The assignment from the current generation's leader (empty until SyncGroup).
    pub assignment: Bytes,
    /// The generation this member was last given in a JoinGroup response (or loaded with).
    pub generation: i32,
    /// When the session timer last restarted.
    pub last_heartbeat_ms: u64,
    /// A JoinGroup waiting for the join phase to end.
    pub pending_join: Option<Parked>,
    /// A SyncGroup waiting for the leader's assignment to be stored.
    pub pending_sync: Option<Parked>,
}

impl Member {
    /// The metadata this member sent for `protocol`.
    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, meta)| meta.clone())
            .unwrap_or_default()
    }

    /// Whether the session has expired at `now_ms`. A member with a parked JoinGroup or
    /// SyncGroup is waiting on the coordinator, not silent, so it never expires (Kafka's
    /// "awaiting join/sync keeps the member alive").
    pub fn session_expired(&self, now_ms: u64) -> bool {
        self.pending_join.is_none()
            && self.pending_sync.is_none()
            && now_ms >= self.session_deadline_ms()
    }

    /// When the session expires if no heartbeat arrives.
    pub fn session_deadline_ms(&self) -> u64 {
        self.last_heartbeat_ms
            .saturating_add(self.session_timeout_ms.max(0) as u64)
    }
}

/// One group.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub id: String,
    /// The `__consumer_offsets` partition holding this group.
    pub partition: i32,
    pub state: GroupState,
    pub generation: i32,
    /// Empty until the first member joins; offset-only ("simple") groups keep it empty.
    pub protocol_type: String,
    /// The protocol (assignor) selected for the current generation.
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// Members in join order (the leader's member list follows it).
    pub members: IndexMap<String, Member>,
    /// KIP-394 member ids handed out with MEMBER_ID_REQUIRED, not yet used to join,
    /// with the time each expires (the requester's session timeout).
    pub pending_members: IndexMap<String, u64>,
    /// PreparingRebalance: when the join phase ends at the latest.
    pub join_deadline_ms: Option<u64>,
    /// PreparingRebalance from Empty: the cap on extending the initial rebalance delay.
    /// `Some` means the join phase waits for its deadline even when everyone has joined.
    pub initial_delay_cap_ms: Option<u64>,
    /// CompletingRebalance: when members that have not sent SyncGroup are removed.
    pub sync_deadline_ms: Option<u64>,
    /// CompletingRebalance: the leader's SyncGroup whose group-metadata record is being
    /// appended (its request id).
    pub sync_append: Option<u64>,
}

impl Group {
    pub fn new(id: String, partition: i32) -> Self {
        Group {
            id,
            partition,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: String::new(),
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            pending_members: IndexMap::new(),
            join_deadline_ms: None,
            initial_delay_cap_ms: None,
            sync_deadline_ms: None,
            sync_append: None,
        }
    }

    /// Whether a member with `protocol_type` and `protocols` may join: an Empty group
    /// takes any non-empty protocol type and protocol list; otherwise the type must match
    /// and at least one protocol must be supported by every current member. `except`
    /// leaves one member out of the check (a member replacing its own protocols).
    pub fn supports(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
        except: Option<&str>,
    ) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|m| Some(m.id.as_str()) != except)
            .collect();
        if others.is_empty() {
            return true;
        }
        self.protocol_type == protocol_type
            && protocols.iter().any(|(name, _)| {
                others
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// The protocol for a new generation: the first protocol, in the preference order of
    /// the first member, that every member supports.
    pub fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .cloned()
    }

    /// The largest rebalance timeout among the members (the join phase's length).
    pub fn max_rebalance_timeout_ms(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0)
    }

    /// Whether every member has a parked JoinGroup and no KIP-394 id is outstanding.
    pub fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.pending_join.is_some())
    }

    /// A read-only summary for callers and tests.
    pub fn view(&self) -> GroupView {
        GroupView {
            group_id: self.id.clone(),
            state: self.state,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members: self
                .members
                .values()
                .map(|m| MemberView {
                    member_id: m.id.clone(),
                    generation: m.generation,
                    assignment: m.assignment.clone(),
                    awaiting_join: m.pending_join.is_some(),
                    awaiting_sync: m.pending_sync.is_some(),
                })
                .collect(),
        }
    }
}

/// A snapshot of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    /// The group id.
    pub group_id: String,
    /// Its state.
    pub state: GroupState,
    /// Its generation.
    pub generation: i32,
    /// Its protocol type.
    pub protocol_type: String,
    /// The selected protocol.
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// The members in join order.
    pub members: Vec<MemberView>,
}

/// A snapshot of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    /// Its member id.
    pub member_id: String,
    /// The generation it was last given.
    pub generation: i32,
    /// Its current assignment.
    pub assignment: Bytes,
    /// Whether a JoinGroup of it is parked.
    pub awaiting_join: bool,
    /// Whether a SyncGroup of it is parked.
    pub awaiting_sync: bool,
}
