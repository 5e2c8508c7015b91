//! The state of the partition model: every broker's replica, the controller, the network's
//! in-flight fetch responses, and the ghost variables the properties read.

use crate::types::*;
use serde::{Deserialize, Serialize};

/// "No broker" in fields that hold a broker id.
pub const NO_BROKER: BrokerId = u8::MAX;

/// What a fetch response carries back to the follower that sent the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FetchResult {
    /// The records from the fetch offset to the leader's log end offset (maybe none).
    Records { fetch_offset: Offset, records: Log },
    /// The follower's last fetched epoch diverges from the leader's log (KIP-595 fetch):
    /// the leader's largest epoch at or below it, and where that epoch ends on the leader.
    /// `None` when the leader knows no epoch that old (truncate to zero).
    Diverging { end: Option<(Epoch, Offset)> },
}

/// A fetch response in flight from a leader to a follower (each follower has at most one
/// outstanding fetch, as Kafka's replica fetcher does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchResponse {
    /// The broker that answered.
    pub leader: BrokerId,
    /// The current leader epoch the request carried (KIP-320).
    pub leader_epoch: Epoch,
    pub result: FetchResult,
    /// The leader's high watermark when it answered.
    pub high_watermark: Offset,
}

/// One broker's replica of the partition, and what the broker knows of the partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Replica {
    pub alive: bool,
    pub log: Log,
    /// The prefix of the log that is durable on disk.
    pub flushed: Offset,
    pub high_watermark: Offset,
    pub epoch_cache: EpochCache,
    /// The leader epoch this broker last learned from the controller's metadata.
    pub leader_epoch: Epoch,
    /// The leader this broker last learned (`NO_BROKER` when none, or after a restart until it
    /// learns again). The broker is the leader, in its own view, when this is its own id.
    pub leader: BrokerId,
    /// Leader only: the partition epoch of the partition state it last learned.
    pub partition_epoch: u8,
    /// Leader only: the committed ISR it last learned.
    pub isr: BrokerSet,
    /// Leader only: the ISR of an AlterPartition request in flight to the controller.
    pub pending_isr: Option<BrokerSet>,
    /// Leader only: for a pending expansion, the broker epoch of the added replica as the
    /// leader saw it fetching when it proposed (AlterPartition's NewIsrWithEpochs, KIP-903).
    pub pending_added_broker_epoch: u8,
    /// Leader only: each follower's log end offset, as its last valid fetch told the leader.
    pub follower_end_offset: [Offset; MAX_BROKERS],
    /// The broker epoch of this broker's current registration: it grows at each restart
    /// (KIP-903), so a leader can tell a fetch from an earlier incarnation.
    pub broker_epoch: u8,
    /// Leader only: the broker epoch each follower's last valid fetch carried.
    pub follower_broker_epoch: [u8; MAX_BROKERS],
    /// Follower only: the response to its outstanding fetch, if one is on its way.
    pub inflight_fetch: Option<FetchResponse>,
    /// Only under the single-epoch-truncation variant: the follower validated its log against
    /// this leader epoch once and no longer sends its last fetched epoch (pre-KIP-279).
    pub epoch_validated: bool,
}

impl Replica {
    pub fn new() -> Self {
        Replica {
            alive: true,
            log: Log::default(),
            flushed: 0,
            high_watermark: 0,
            epoch_cache: EpochCache::default(),
            leader_epoch: 0,
            leader: NO_BROKER,
            partition_epoch: 0,
            isr: BrokerSet::EMPTY,
            pending_isr: None,
            pending_added_broker_epoch: 0,
            follower_end_offset: [0; MAX_BROKERS],
            broker_epoch: 0,
            follower_broker_epoch: [0; MAX_BROKERS],
            inflight_fetch: None,
            epoch_validated: false,
        }
    }

    pub fn epoch_validated(&self) -> bool {
        self.epoch_validated
    }

    /// Kept false outside the variant that uses it, so equal states stay equal.
    pub fn set_epoch_validated(&mut self, v: bool) {
        self.epoch_validated = v;
    }

    pub fn log_end_offset(&self) -> Offset {
        self.log.end_offset()
    }

    /// Whether this broker believes it leads the partition.
    pub fn is_leader(&self, me: BrokerId) -> bool {
        self.alive && self.leader == me
    }

    /// The ISR the leader uses for its high watermark while an AlterPartition is pending:
    /// the maximal ISR, current ∪ proposed (KIP-497).
    pub fn maximal_isr(&self) -> BrokerSet {
        match self.pending_isr {
            Some(p) => self.isr.union(p),
            None => self.isr,
        }
    }

    /// Where the leader's current epoch starts (the entry it added on becoming leader).
    pub fn epoch_start_offset(&self) -> Offset {
        match self.epoch_cache.latest() {
            Some((e, start)) if e == self.leader_epoch => start,
            _ => self.log_end_offset(),
        }
    }
}

impl Default for Replica {
    fn default() -> Self {
        Replica::new()
    }
}

/// The controller's view of the partition (KRaft's PartitionRecord) and of the brokers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Controller {
    /// The partition leader, `NO_BROKER` while the partition is offline.
    pub leader: BrokerId,
    pub leader_epoch: Epoch,
    /// Bumped on every change of the partition state (leader, ISR or ELR).
    pub partition_epoch: u8,
    pub isr: BrokerSet,
    /// Eligible leader replicas (KIP-966).
    pub elr: BrokerSet,
    /// Brokers the controller has fenced (missed heartbeats, or restarted and not yet caught up).
    pub fenced: BrokerSet,
    /// Replicas whose log failed to open or recover (`LogFails`): their broker assigned them
    /// to `DirectoryId.LOST` (KIP-858). Never in the ISR or ELR, never elected.
    pub offline_logs: BrokerSet,
}

/// Where a record stands from the producer's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RecordStatus {
    NotSent,
    /// Appended by `leader` in `epoch` at `offset`, waiting in its produce purgatory.
    Pending {
        leader: BrokerId,
        epoch: Epoch,
        offset: Offset,
        acks_all: bool,
    },
    /// Acknowledged to the producer.
    Acked {
        offset: Offset,
        epoch: Epoch,
        acks_all: bool,
    },
    /// Rejected or failed (NOT_ENOUGH_REPLICAS, NOT_LEADER_OR_FOLLOWER, ...): no promise was made.
    Failed,
}

/// Variables that only the properties read: what was promised and what was observed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ghost {
    /// Per record id (index `id - 1`).
    pub records: [RecordStatus; MAX_RECORDS],
    /// Per offset: the entry that was ever below some leader's high watermark, and the
    /// leader epoch in which it first was.
    pub committed: [Option<(Entry, Epoch)>; MAX_RECORDS],
    /// Set when an entry already committed at an offset was later seen replaced below a high
    /// watermark by a different one.
    pub committed_conflict: bool,
    pub crashes: u8,
    /// Brokers whose last crash was unclean and that have not registered again since.
    pub unclean_shutdown: BrokerSet,
    /// A follower truncated a tail that diverged from its leader.
    pub truncated_diverged_tail: bool,
}

/// The bounds a state's canonical form depends on. The checker's symmetry reduction takes a
/// plain function of the state (no closure over the model), so these constants of a run are
/// carried in every state; they never change along a run and no step or property reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    /// Brokers in the model: only ids below this are permuted and hashed.
    pub brokers: u8,
    /// The crash bound: once reached, the flushed prefixes are never read again.
    pub max_crashes: u8,
    /// Whether stale fetch responses are dropped (every configuration but the
    /// unfenced-truncation variant), so that they can be erased.
    pub fenced_fetch: bool,
    /// Whether the leader epoch of a broker that follows no leader is unobservable (every
    /// configuration but the hw-truncation variant, where BecomeFollower truncates).
    pub offline_epoch_unobservable: bool,
    /// Whether what a frozen zombie leader knows only as a leader is unobservable
    /// (`canonical::frozen_zombie`): off under eager-isr-shrink, whose high watermark reads
    /// the proposal alone, and under unfenced-truncation, whose fetches ignore epochs.
    pub zombie_proposal_unobservable: bool,
    /// min.insync.replicas, and whether the high watermark stops below it (KIP-966; not
    /// under last-replica-standing): when a zombie's high watermark is frozen.
    pub min_isr: u8,
    pub hw_stops_below_min_isr: bool,
    /// Whether a follower must reach the start of the leader's epoch to join the ISR
    /// (KAFKA-7128; off under no-expand-guard): part of the bar below which a follower's
    /// known end is erased (`canonical::erase_unjoinable_follower_ends`).
    pub expand_guard: bool,
}

/// A state of the partition model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PartitionState {
    pub brokers: [Replica; MAX_BROKERS],
    pub controller: Controller,
    pub ghost: Ghost,
    pub scope: Scope,
}

impl PartitionState {
    pub fn replica(&self, b: BrokerId) -> &Replica {
        &self.brokers[b as usize]
    }
    pub fn replica_mut(&mut self, b: BrokerId) -> &mut Replica {
        &mut self.brokers[b as usize]
    }
    /// The next record the producer will send, if any are left.
    pub fn next_record(&self, records: u8) -> Option<RecordId> {
        (1..=records).find(|r| self.ghost.records[(*r - 1) as usize] == RecordStatus::NotSent)
    }
}
