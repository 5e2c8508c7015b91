//! The state of the KRaft quorum model: per voter its durable quorum state (epoch, vote,
//! leader), its log and what of it is flushed, its volatile high watermark and leader or
//! candidate bookkeeping, and the one Fetch response in flight to it; plus ghost history that
//! only the properties read.

use serde::{Deserialize, Serialize};

pub type VoterId = u8;
pub type Epoch = u8;
pub type Offset = u8;
/// A metadata record id; 0 is the LeaderChange control record a new leader appends.
pub type RecordId = u8;

pub const MAX_VOTERS: usize = 5;
/// Log capacity: client records plus one LeaderChange record per epoch.
pub const MAX_LOG: usize = 8;
pub const NO_VOTER: VoterId = u8::MAX;
/// The record id of the LeaderChange control record (KIP-595).
pub const LEADER_CHANGE: RecordId = 0;
/// Ghost history slots: epochs 0 to the largest `max_epoch` accepted.
pub const EPOCH_SLOTS: usize = super::config::MAX_EPOCH_BOUND as usize + 1;

/// One log entry: a record and the epoch of the leader that appended it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Entry {
    pub record: RecordId,
    pub epoch: Epoch,
}

/// A log, or a run of entries in a Fetch response; offset = position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Log {
    entries: [Entry; MAX_LOG],
    len: u8,
}

impl Log {
    pub fn end_offset(&self) -> Offset {
        self.len
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len as usize]
    }

    pub fn get(&self, o: Offset) -> Option<Entry> {
        self.entries().get(o as usize).copied()
    }

    /// The epoch of the last entry, 0 for an empty log (Vote's last epoch, Fetch's last
    /// fetched epoch).
    pub fn last_epoch(&self) -> Epoch {
        self.entries().last().map_or(0, |e| e.epoch)
    }

    pub fn is_full(&self) -> bool {
        self.len as usize == MAX_LOG
    }

    pub fn append(&mut self, e: Entry) {
        debug_assert!(!self.is_full());
        self.entries[self.len as usize] = e;
        self.len += 1;
    }

    /// Cuts the log to `end` entries; the cut slots are cleared so that equal logs are equal
    /// states.
    pub fn truncate(&mut self, end: Offset) {
        for e in &mut self.entries[end.min(self.len) as usize..self.len as usize] {
            *e = Entry::default();
        }
        self.len = self.len.min(end);
    }

    /// The entries from `start` on.
    pub fn suffix(&self, start: Offset) -> Log {
        let mut out = Log::default();
        for e in &self.entries()[start.min(self.len) as usize..] {
            out.append(*e);
        }
        out
    }

    /// KIP-595's end offset for an epoch: the largest epoch in the log at most `epoch`, and
    /// the offset just past its last entry; (0, 0) when there is none. Epochs only grow along
    /// a log, so that offset is the count of entries of epoch at most `epoch`.
    pub fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, Offset) {
        let end = self.entries().iter().filter(|e| e.epoch <= epoch).count() as Offset;
        match end {
            0 => (0, 0),
            _ => (self.entries[end as usize - 1].epoch, end),
        }
    }
}

/// A voter's state as KIP-595 names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// In an epoch with no known leader and no vote cast.
    Unattached,
    /// Voted for another voter in its epoch, no leader known.
    Voted,
    /// KIP-996: timed out and asks for pre-votes for the next epoch, without leaving its
    /// own (its epoch, vote and leader stay; nothing durable changes).
    Prospective,
    /// Started an election in its epoch and voted for itself.
    Candidate,
    Leader,
    /// Knows the leader of its epoch and fetches from it.
    Follower,
    /// Was the leader of its epoch and gave it up (EndQuorumEpoch), or restarted as its leader.
    Resigned,
}

/// What the leader answered a Fetch with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FetchResult {
    /// The entries from the fetch offset to the leader's log end offset.
    Records(Log),
    /// The fetch offset and last fetched epoch are not in the leader's log: the largest epoch
    /// the leader has at most the last fetched epoch, and its end offset.
    DivergingEpoch { epoch: Epoch, end_offset: Offset },
}

/// A Fetch response in flight from `leader` to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FetchResponse {
    pub leader: VoterId,
    pub epoch: Epoch,
    pub high_watermark: Offset,
    pub result: FetchResult,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Voter {
    pub alive: bool,
    pub role: Role,
    /// Durable (quorum-state file): the current epoch.
    pub epoch: Epoch,
    /// Durable: the voter this one voted for in `epoch`, or `NO_VOTER`.
    pub voted_for: VoterId,
    /// Durable: the leader of `epoch` this voter knows, or `NO_VOTER`.
    pub leader: VoterId,
    pub log: Log,
    /// The log prefix that survives a crash.
    pub flushed: Offset,
    pub high_watermark: Offset,
    /// Candidate (prospective): the voters that granted it their vote (pre-vote), as a bit
    /// set.
    pub votes: u8,
    /// Leader only: each follower's end offset as its last valid Fetch told (0 until then).
    pub end_offsets: [Offset; MAX_VOTERS],
    /// The response to this voter's Fetch, while in flight.
    pub fetch_response: Option<FetchResponse>,
}

impl Voter {
    pub fn new() -> Self {
        Voter {
            alive: true,
            role: Role::Unattached,
            epoch: 0,
            voted_for: NO_VOTER,
            leader: NO_VOTER,
            log: Log::default(),
            flushed: 0,
            high_watermark: 0,
            votes: 0,
            end_offsets: [0; MAX_VOTERS],
            fetch_response: None,
        }
    }

    pub fn is_leader(&self) -> bool {
        self.alive && self.role == Role::Leader
    }
}

impl Default for Voter {
    fn default() -> Self {
        Voter::new()
    }
}

/// History the properties need and the protocol never reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ghost {
    /// Per offset: the entry that was below a leader's high watermark there, with the epoch
    /// of the leader that first committed it.
    pub committed: [Option<(Entry, Epoch)>; MAX_LOG],
    /// Two different entries were committed at one offset.
    pub committed_conflict: bool,
    /// Per epoch: the voter that became its leader, or `NO_VOTER`.
    pub leader_of_epoch: [VoterId; EPOCH_SLOTS],
    /// Two voters became leader of one epoch.
    pub two_leaders_in_epoch: bool,
    /// Client records appended so far (the next one is `appended + 1`).
    pub appended: u8,
    pub crashes: u8,
    /// A Vote or BeginQuorumEpoch changed the leader, or one of the followers that give it a
    /// majority, while that majority was live: a stable leader was disrupted.
    pub stable_leader_disrupted: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KraftState {
    /// The number of voters; slots past it are unused.
    pub quorum_size: u8,
    pub voters: [Voter; MAX_VOTERS],
    pub ghost: Ghost,
}
