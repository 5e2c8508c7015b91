//! Stateright models of Kafka's replication protocol.
//!
//! - [`partition`]: one partition replicated on N brokers with its controller — fetch-based
//!   replication, leader epochs (KIP-101/279/320), the high watermark, ISR changes through
//!   AlterPartition (KIP-497), acks and min.insync.replicas, eligible leader replicas
//!   (KIP-966), crashes that lose the unflushed tail, and leader election, clean or unclean.
//!
//! The protocol is specified in prose in `specs/replication.md`, with every step and property
//! named as here.

pub mod action;
pub mod canonical;
pub mod check;
pub mod config;
pub mod partition;
pub mod properties;
pub mod state;
pub mod symmetry;
pub mod trace;
pub mod types;

pub use action::Action;
pub use config::{AcksChoice, ConfigError, FlushPolicy, ModelConfig, Variant};
pub use partition::PartitionModel;
pub use state::PartitionState;
