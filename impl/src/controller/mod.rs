//! The controller: KRaft's active controller, the state machine the quorum leader runs.
//!
//! A deterministic, event-sourced state machine: no sockets, files, clocks or randomness
//! inside. The driver (the node runtime) decodes BrokerRegistration, BrokerHeartbeat,
//! AlterPartition, CreateTopics, ... with kafka-protocol, calls the [`Controller`] with the
//! current time (`now_ms`) where time matters, and encodes the answer; refusals are
//! [`ControllerError`]s carrying Kafka's error code.
//!
//! **The KRaft seam.** Every change is a [`MetadataRecord`], and state changes only by
//! applying records to a [`MetadataImage`] ([`MetadataImage::apply`]). The controller appends
//! records to its image and keeps them until the driver calls [`Controller::drain_records`] to
//! append them to the metadata log through the KRaft quorum ([`crate::quorum`], driven by
//! `node::quorum_driver`), and brokers apply the same committed records to their own images.
//! A new active controller starts from the committed image ([`Controller::from_image`]);
//! [`Controller::replay`] rebuilds one from the records. The only state outside the image is
//! soft: each broker's last heartbeat time.
//!
//! The model's controller steps (`osprey-model`, `partition.rs`; see `specs/replication.md`)
//! and their counterparts here:
//!
//! | model step       | controller                                                          |
//! |------------------|---------------------------------------------------------------------|
//! | `FenceBroker`    | [`Controller::tick`] (session expired), [`Controller::heartbeat`] with `want_fence` / `want_shutdown` |
//! | `UnfenceBroker`  | [`Controller::heartbeat`] of a fenced, caught-up broker             |
//! | `ElectLeader`    | inside the unfence path, [`Controller::elect_leaders`] (`Unclean`), [`Controller::alter_configs`] enabling unclean election |
//! | `AlterPartition` | [`Controller::alter_partition`]                                     |
//! | `MoveLeader`     | [`Controller::elect_leaders`] (`Preferred`)                         |
//! | `Restart`        | [`Controller::register_broker`] (a new broker epoch; leaves the ELR after an unclean shutdown) |
//!
//! The model's `election_candidates`, `set_isr` and `install_leader` are in [`election`] under
//! the same names.
//!
//! Modules, one job each:
//! * [`records`] — [`MetadataRecord`], mirroring KRaft's records by name;
//! * [`image`] — [`MetadataImage`], the records applied, and the queries brokers need;
//! * [`election`] — leader election and ISR/ELR rules for one partition;
//! * [`assignment`] — topic names, Kafka's round-robin replica placement, topic ids;
//! * [`topic_config`] — the supported topic configs and their validation;
//! * [`controller`] — [`Controller`]: requests in, records out;
//! * [`error`] — [`ControllerError`].

pub mod assignment;
#[allow(clippy::module_inception)]
pub mod controller;
pub mod election;
pub mod error;
pub mod image;
pub mod records;
pub mod topic_config;

#[cfg(test)]
mod controller_tests;

pub use controller::{
    AlterPartitionRequest, ConfigChange, Controller, ControllerConfig, ElectionType,
    HeartbeatReply, PRODUCER_ID_BLOCK_SIZE,
};
pub use error::ControllerError;
pub use image::{BrokerRegistration, MetadataImage, PartitionImage, TopicImage};
pub use records::{
    ConfigResourceType, DirectoryId, Endpoint, LeaderRecoveryState, MetadataRecord, TopicId,
    DIRECTORY_LOST, DIRECTORY_UNASSIGNED,
};
