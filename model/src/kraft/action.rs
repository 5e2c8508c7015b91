//! The steps of the KRaft quorum model, named as in `specs/kraft.md`. A request and its
//! response are one step where no property can tell the difference (Vote, BeginQuorumEpoch,
//! EndQuorumEpoch); Fetch is split, because a response can arrive after the follower and the
//! leader have moved on.

use super::state::VoterId;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "PascalCase")]
pub enum KraftAction {
    /// A voter's election (or fetch) timeout fires: with Pre-Vote it becomes prospective in
    /// its epoch; without, a candidate in the next epoch that votes for itself.
    Timeout { voter: VoterId },
    /// KIP-996: a voter handles a prospective's pre-vote request and the prospective the
    /// response; a majority of pre-votes starts the election.
    HandlePreVote { candidate: VoterId, voter: VoterId },
    /// A voter handles a candidate's Vote request (epoch, last log epoch, log end offset) and
    /// the candidate the response.
    HandleVote { candidate: VoterId, voter: VoterId },
    /// A candidate with votes from a majority becomes leader and appends a LeaderChange record.
    BecomeLeader { candidate: VoterId },
    /// A voter handles the leader's BeginQuorumEpoch and follows it.
    BeginQuorumEpoch { leader: VoterId, voter: VoterId },
    /// The leader appends the next metadata record.
    Append { leader: VoterId },
    /// The leader handles a follower's Fetch (fetch offset, last fetched epoch); the response
    /// goes in flight.
    Fetch { follower: VoterId },
    /// A follower handles the response to its Fetch: appends, or truncates on a diverging epoch.
    HandleFetchResponse { follower: VoterId },
    /// The leader resigns and sends EndQuorumEpoch.
    Resign { leader: VoterId },
    /// A voter crashes, keeping its quorum state and the flushed prefix of its log.
    Crash { voter: VoterId },
    /// A crashed voter restarts from its quorum state.
    Restart { voter: VoterId },
}

impl KraftAction {
    /// Every step kind, as [`KraftAction::kind`] names them.
    pub const KINDS: [&'static str; 11] = [
        "Timeout",
        "HandlePreVote",
        "HandleVote",
        "BecomeLeader",
        "BeginQuorumEpoch",
        "Append",
        "Fetch",
        "HandleFetchResponse",
        "Resign",
        "Crash",
        "Restart",
    ];

    /// The step kind (its `step` tag in traces).
    pub fn kind(&self) -> &'static str {
        match self {
            KraftAction::Timeout { .. } => "Timeout",
            KraftAction::HandleVote { .. } => "HandleVote",
            KraftAction::HandlePreVote { .. } => "HandlePreVote",
            KraftAction::BecomeLeader { .. } => "BecomeLeader",
            KraftAction::BeginQuorumEpoch { .. } => "BeginQuorumEpoch",
            KraftAction::Append { .. } => "Append",
            KraftAction::Fetch { .. } => "Fetch",
            KraftAction::HandleFetchResponse { .. } => "HandleFetchResponse",
            KraftAction::Resign { .. } => "Resign",
            KraftAction::Crash { .. } => "Crash",
            KraftAction::Restart { .. } => "Restart",
        }
    }

    /// One line for tables and the explorer.
    pub fn describe(&self) -> String {
        match *self {
            KraftAction::Timeout { voter } => format!("Timeout v{voter}"),
            KraftAction::HandleVote { candidate, voter } => {
                format!("HandleVote v{voter} <- candidate v{candidate}")
            }
            KraftAction::HandlePreVote { candidate, voter } => {
                format!("HandlePreVote v{voter} <- prospective v{candidate}")
            }
            KraftAction::BecomeLeader { candidate } => format!("BecomeLeader v{candidate}"),
            KraftAction::BeginQuorumEpoch { leader, voter } => {
                format!("BeginQuorumEpoch v{leader} -> v{voter}")
            }
            KraftAction::Append { leader } => format!("Append at v{leader}"),
            KraftAction::Fetch { follower } => format!("Fetch v{follower}"),
            KraftAction::HandleFetchResponse { follower } => {
                format!("HandleFetchResponse v{follower}")
            }
            KraftAction::Resign { leader } => format!("Resign v{leader} (EndQuorumEpoch)"),
            KraftAction::Crash { voter } => format!("Crash v{voter}"),
            KraftAction::Restart { voter } => format!("Restart v{voter}"),
        }
    }
}
