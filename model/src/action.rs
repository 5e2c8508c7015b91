//! The steps of the partition model. Each is one atomic step of Kafka's protocol, named as
//! in `specs/replication.md` and as in the broker code that implements it.

use crate::types::{BrokerId, Offset};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "PascalCase")]
pub enum Action {
    /// A producer sends the next record to `leader` (a broker that believes it leads).
    Produce { leader: BrokerId, acks_all: bool },
    /// A follower's Fetch request (fetch offset, last fetched epoch, current leader epoch) is
    /// handled by the broker it believes leads; the response goes in flight.
    Fetch { follower: BrokerId },
    /// A follower handles the response to its fetch: appends, or truncates a diverged tail.
    HandleFetchResponse { follower: BrokerId },
    /// The leader proposes removing a lagging follower from the ISR (AlterPartition sent).
    ProposeIsrShrink {
        leader: BrokerId,
        follower: BrokerId,
    },
    /// The leader proposes adding a caught-up follower to the ISR (AlterPartition sent).
    ProposeIsrExpand {
        leader: BrokerId,
        follower: BrokerId,
    },
    /// The controller handles the leader's AlterPartition, checking leader and partition epochs.
    AlterPartition { leader: BrokerId },
    /// A broker learns from the controller's metadata that it leads the partition (or that
    /// the partition state it leads changed).
    BecomeLeader { broker: BrokerId },
    /// A broker learns from the controller's metadata that another broker (or none) leads.
    BecomeFollower { broker: BrokerId },
    /// A broker crashes. A clean shutdown keeps the whole log; an unclean one keeps `kept`
    /// entries (at least what was flushed).
    Crash {
        broker: BrokerId,
        clean: bool,
        kept: Offset,
    },
    /// A crashed broker restarts, recovers its log and registers again (fenced until caught up).
    Restart { broker: BrokerId },
    /// The controller fences a broker (missed heartbeats), removing it from the ISR; if it led,
    /// `new_leader` is elected in the same partition change (or none: the partition is offline).
    FenceBroker {
        broker: BrokerId,
        new_leader: Option<BrokerId>,
    },
    /// The controller unfences a live broker whose heartbeats resumed.
    UnfenceBroker { broker: BrokerId },
    /// The controller elects a leader for an offline partition: from the ISR, else from the
    /// ELR, else (unclean election on) from any live replica.
    ElectLeader { broker: BrokerId, unclean: bool },
    /// The controller moves leadership to another ISR member (preferred-leader election).
    MoveLeader { to: BrokerId },
    /// A replica's log fails to open or recover (a corrupt segment, a gap between segments,
    /// a malformed checkpoint): its broker reports it offline (AssignReplicasToDirs to
    /// `DirectoryId.LOST`), and the controller takes it out of the ISR and the ELR; if it led,
    /// `new_leader` is elected in the same partition change (or none). The replica takes no
    /// further step.
    LogFails {
        broker: BrokerId,
        new_leader: Option<BrokerId>,
    },
}

impl Action {
    /// The step's kind, as named in the specification and the trace format.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Produce { .. } => "Produce",
            Action::Fetch { .. } => "Fetch",
            Action::HandleFetchResponse { .. } => "HandleFetchResponse",
            Action::ProposeIsrShrink { .. } => "ProposeIsrShrink",
            Action::ProposeIsrExpand { .. } => "ProposeIsrExpand",
            Action::AlterPartition { .. } => "AlterPartition",
            Action::BecomeLeader { .. } => "BecomeLeader",
            Action::BecomeFollower { .. } => "BecomeFollower",
            Action::Crash { .. } => "Crash",
            Action::Restart { .. } => "Restart",
            Action::FenceBroker { .. } => "FenceBroker",
            Action::UnfenceBroker { .. } => "UnfenceBroker",
            Action::ElectLeader { .. } => "ElectLeader",
            Action::MoveLeader { .. } => "MoveLeader",
            Action::LogFails { .. } => "LogFails",
        }
    }

    /// The broker whose replica takes this step, for the steps a replica takes on its own
    /// log (none of which a replica whose log failed can take); `None` for the controller's.
    pub fn replica_step_of(&self) -> Option<BrokerId> {
        match *self {
            Action::Produce { leader, .. }
            | Action::ProposeIsrShrink { leader, .. }
            | Action::ProposeIsrExpand { leader, .. }
            | Action::AlterPartition { leader } => Some(leader),
            Action::Fetch { follower } | Action::HandleFetchResponse { follower } => Some(follower),
            Action::BecomeLeader { broker }
            | Action::BecomeFollower { broker }
            | Action::Crash { broker, .. }
            | Action::Restart { broker } => Some(broker),
            Action::FenceBroker { .. }
            | Action::UnfenceBroker { .. }
            | Action::ElectLeader { .. }
            | Action::MoveLeader { .. }
            | Action::LogFails { .. } => None,
        }
    }

    /// Every step kind, for coverage tables.
    pub const KINDS: [&'static str; 15] = [
        "Produce",
        "Fetch",
        "HandleFetchResponse",
        "ProposeIsrShrink",
        "ProposeIsrExpand",
        "AlterPartition",
        "BecomeLeader",
        "BecomeFollower",
        "Crash",
        "Restart",
        "FenceBroker",
        "UnfenceBroker",
        "ElectLeader",
        "MoveLeader",
        "LogFails",
    ];

    /// A one-line description for counterexample tables.
    pub fn describe(&self) -> String {
        match *self {
            Action::Produce { leader, acks_all } => format!(
                "Produce to b{leader} (acks={})",
                if acks_all { "all" } else { "1" }
            ),
            Action::Fetch { follower } => format!("Fetch by b{follower}"),
            Action::HandleFetchResponse { follower } => {
                format!("HandleFetchResponse at b{follower}")
            }
            Action::ProposeIsrShrink { leader, follower } => {
                format!("ProposeIsrShrink b{leader} drops b{follower}")
            }
            Action::ProposeIsrExpand { leader, follower } => {
                format!("ProposeIsrExpand b{leader} adds b{follower}")
            }
            Action::AlterPartition { leader } => format!("AlterPartition from b{leader}"),
            Action::BecomeLeader { broker } => format!("BecomeLeader b{broker}"),
            Action::BecomeFollower { broker } => format!("BecomeFollower b{broker}"),
            Action::Crash {
                broker,
                clean,
                kept,
            } => {
                if clean {
                    format!("Crash b{broker} (clean)")
                } else {
                    format!("Crash b{broker} (unclean, keeps {kept})")
                }
            }
            Action::Restart { broker } => format!("Restart b{broker}"),
            Action::FenceBroker { broker, new_leader } => match new_leader {
                Some(l) => format!("FenceBroker b{broker}, elect b{l}"),
                None => format!("FenceBroker b{broker}"),
            },
            Action::UnfenceBroker { broker } => format!("UnfenceBroker b{broker}"),
            Action::ElectLeader { broker, unclean } => {
                if unclean {
                    format!("ElectLeader b{broker} (unclean)")
                } else {
                    format!("ElectLeader b{broker}")
                }
            }
            Action::MoveLeader { to } => format!("MoveLeader to b{to}"),
            Action::LogFails { broker, new_leader } => match new_leader {
                Some(l) => format!("LogFails b{broker}, elect b{l}"),
                None => format!("LogFails b{broker}"),
            },
        }
    }
}
