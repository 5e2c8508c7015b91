//! The KRaft controller quorum (KIP-595) as a deterministic core, in the style of raft-rs's
//! `RawNode`/`Ready`: inputs are requests, responses and timer firings; outputs are
//! [`Effect`]s the driver (`node::quorum_driver`) performs. The transitions are named and
//! ordered as in the checked model (`model/src/kraft/model.rs`, `specs/kraft.md`), so the two
//! can be read side by side:
//!
//! | model step | core |
//! |---|---|
//! | `Timeout` | [`QuorumCore::timeout`] |
//! | `HandleVote` | [`QuorumCore::handle_vote`] (and `handle_vote_response`) |
//! | `BecomeLeader` | [`QuorumCore::become_leader`] |
//! | `BeginQuorumEpoch` | [`QuorumCore::handle_begin_quorum_epoch`] |
//! | `Append` | [`QuorumCore::append`] |
//! | `Fetch` | [`QuorumCore::fetch_request`] / [`QuorumCore::handle_fetch`] |
//! | `HandleFetchResponse` | [`QuorumCore::handle_fetch_response`] |
//! | `Resign` | [`QuorumCore::resign`] |
//! | `Crash`, `Restart` | the process dies; [`QuorumCore::restart`] from the quorum state |

mod core;
mod log;
#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

pub use self::core::*;
pub use self::log::{LogSummary, SnapshotId};
