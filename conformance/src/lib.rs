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

pub mod abstraction;
pub mod controller;
pub mod explore;
pub mod generate;
pub mod replay;
pub mod report;
pub mod variants;
