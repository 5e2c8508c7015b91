//! Osprey conformance: the model's traces replayed against the broker's real code, and the
//! broker's runs checked against the model.
//!
//! * [`abstraction`] — the one function from broker state to the model's `StateView`, and
//!   the field-by-field diff;
//! * [`controller`] — [`controller::ControllerDriver`], the seam for the controller, and
//!   [`controller::KafkaController`], the broker's own controller behind it;
//! * [`replay`] — a [`replay::Cluster`] of real replicas on real logs that performs model
//!   steps, and [`replay::replay`] for whole traces;
//! * [`generate`] — seeded random walks and a covering set of model traces;
//! * [`report`] — replaying a corpus: counts, mismatches, coverage.
//!
//! What both protocols share: [`mismatch`] (the step-by-step comparison of a replay and the
//! first mismatch), [`search`] (breadth-first covering search), and the generic corpus
//! replay of [`report`].
//!
//! The same for the KRaft controller quorum (`osprey_broker::quorum` against
//! `osprey_model::kraft`):
//!
//! * [`kraft_abstraction`] — the core's state as the model's `KraftStateView`, and the diff;
//! * [`kraft_replay`] — a [`kraft_replay::Quorum`] of quorum cores over a simulated network
//!   that performs model steps, and [`kraft_replay::replay`] for whole traces;
//! * [`kraft_explore`] — every reachable state of a small quorum, each compared;
//! * [`kraft_generate`] — random walks and a covering set of KRaft traces;
//! * [`kraft_report`] — replaying a KRaft corpus.

pub mod abstraction;
pub mod controller;
pub mod explore;
pub mod generate;
pub mod kraft_abstraction;
pub mod kraft_explore;
pub mod kraft_generate;
pub mod kraft_replay;
pub mod kraft_report;
pub mod mismatch;
pub mod replay;
pub mod report;
pub mod search;
pub mod variants;
