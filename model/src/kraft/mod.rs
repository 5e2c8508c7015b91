//! The KRaft controller quorum: the Raft variant Kafka's controllers use to replicate the
//! metadata log (KIP-595 for the quorum, KIP-630 for its snapshots' fetch offsets, KIP-631 for
//! the controllers that run on it).
//!
//! Voters keep a durable epoch and vote (the quorum-state file, fsynced on every change),
//! elect a leader with Vote requests that carry the candidate's last log epoch and log end
//! offset, announce it with BeginQuorumEpoch, and replicate by pull: followers Fetch from the
//! leader with their fetch offset and last fetched epoch, and truncate when the leader answers
//! with a diverging epoch. The leader's high watermark advances when a majority of voters
//! hold an entry of its own epoch. Leaders resign (EndQuorumEpoch); voters crash and restart
//! with what they flushed.
//!
//! The protocol is specified in prose in `specs/kraft.md`, with every step and property named
//! as here.

pub mod action;
pub mod check;
pub mod config;
pub mod model;
pub mod properties;
pub mod state;
pub mod symmetry;
pub mod trace;

pub use action::KraftAction;
pub use check::Quorum;
pub use config::{KraftConfig, KraftVariant};
pub use model::KraftModel;
pub use state::KraftState;
pub use trace::KraftTrace;
