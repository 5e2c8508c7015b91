//! Stateright models of Kafka's replication protocol.
//!
//! - [`partition`]: one partition replicated on N brokers with its controller — fetch-based
//!   replication, leader epochs (KIP-101/279/320), the high watermark, ISR changes through
//!   AlterPartition (KIP-497), acks and min.insync.replicas, eligible leader replicas
//!   (KIP-966), crashes that lose the unflushed tail, and leader election, clean or unclean.
//! - [`kraft`]: the KRaft controller quorum (KIP-595/630/631) — elections with durable votes,
//!   pull-based replication with diverging-epoch truncation, the majority high watermark,
//!   resignation, crashes that keep what was flushed.
//!
//! The protocols are specified in prose in `specs/replication.md` and `specs/kraft.md`, with
//! every step and property named as here.

pub mod action;
pub mod canonical;
pub mod check;
pub mod config;
pub mod guarantees;
pub mod kraft;
pub mod properties;
pub mod replication;
pub mod state;
pub mod symmetry;
pub mod trace;
pub mod types;

pub use action::Action;
pub use config::{AcksChoice, ConfigError, FetchDelivery, FlushPolicy, ModelConfig, Variant};
pub use replication::PartitionModel;
pub use state::PartitionState;
