//! Osprey's reference broker.
//!
//! The broker is split the way quinn splits quinn-proto from quinn: the protocol logic is a
//! set of deterministic cores with no sockets, clocks or randomness inside — time and
//! requests are passed in, effects come out — and `node` drives them with tokio. The
//! layers, each importing only the ones below it:
//!
//! * `wire` — Kafka's framing, the kafka-protocol codec with an allocation guard, and the
//!   connection loop that hands decoded requests to a handler;
//! * `node` — the tokio driver: listeners, the broker's request handlers, the replica
//!   fetchers and timers, the controller role, and the quorum driver; the only clock;
//! * the cores: `replication` (one partition replica: leader and follower, high watermark,
//!   ISR, produce purgatory, the consumer read rule), `controller` (the active controller's
//!   metadata state machine), `quorum` (the KRaft quorum of controllers), `group` (the
//!   classic consumer-group coordinator);
//! * `storage` — the partition log on disk (segments, indexes, checkpoints, recovery), the
//!   one core that does file I/O, synchronously, for the replica that owns it;
//! * `error_codes` — Kafka's error codes, one table for all of them.
//!
//! The conformance suite drives the same cores step by step against the model's traces.

pub mod client;
pub mod config;
pub mod controller;
pub mod error_codes;
pub mod faults;
pub mod group;
pub mod node;
pub mod quorum;
pub mod replication;
pub mod storage;
pub mod wire;
