//! Osprey's reference broker.
//!
//! The broker is split the way quinn splits quinn-proto from quinn: the protocol logic
//! (`replication`, `controller`) is a set of deterministic state machines with no sockets,
//! files, clocks or randomness inside, and the I/O layers (`storage`, `wire`, `server`)
//! drive them. The conformance suite drives the same state machines step by step.

pub mod client;
pub mod config;
pub mod controller;
pub mod faults;
pub mod group;
pub mod node;
pub mod quorum;
pub mod replication;
pub mod storage;
pub mod wire;
