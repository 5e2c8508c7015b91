//! A running Osprey node: the tokio driver around the deterministic cores.
//!
//! A node has one or both of Kafka's KRaft roles (`process.roles`):
//!
//! * **controller** — [`quorum_driver`] runs the KRaft quorum core ([`crate::quorum`]) with
//!   the other voters of `controller.quorum.voters` over the controller listener, keeping
//!   the metadata log and `quorum-state` on disk; [`controller_service`] is the
//!   [`crate::controller::Controller`] state machine on the quorum leader (the active
//!   controller: BrokerRegistration, BrokerHeartbeat, AlterPartition, the admin requests
//!   brokers forward) and the Fetch of `__cluster_metadata` through which brokers learn
//!   committed metadata.
//! * **broker** — [`broker_api`] serves clients; [`broker_runtime`] registers and
//!   heartbeats with the controller, follows the metadata log, turns partition metadata into
//!   `become_leader`/`become_follower` calls, runs the follower fetchers, sends AlterPartition
//!   and ticks the replicas' timers; [`partitions`] holds the replicas.
//!
//! Time enters the state machines only as `now_ms` from [`clock::now_ms`].

pub mod broker_api;
pub mod broker_runtime;
pub mod clock;
pub mod controller_client;
pub mod controller_service;
pub mod fetch_mapping;
pub mod forward;
pub mod group_service;
pub mod groups;
pub mod listener;
pub mod meta_properties;
pub mod metadata_follower;
pub mod metadata_log;
pub mod metadata_snapshot;
pub mod offline_logs;
pub mod partitions;
pub mod quorum_driver;
pub mod quorum_progress;
pub mod repeated_log;
pub mod replica_fetcher;
pub mod shared;
pub mod view;

use std::time::Duration;

use crate::config::NodeConfig;

/// Runs a node until `shutdown` resolves: the controller role, the broker role, or both.
pub async fn run(
    mut config: NodeConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(config.log_dir()).map_err(|e| {
        anyhow::anyhow!("cannot create log dir {}: {e}", config.log_dir().display())
    })?;
    // Format the directory on first start, or check it was formatted for this cluster and
    // node; from here on every role uses the cluster id in force.
    let meta = meta_properties::format_or_check(
        config.log_dir(),
        config.cluster_id.as_deref(),
        config.node_id,
    )?;
    config.cluster_id = Some(meta.cluster_id);
    let mut tasks = Vec::new();
    let mut quorum = None;
    if config.process_roles.controller {
        let (controller_tasks, driver) = controller_service::start(&config).await?;
        tasks.extend(controller_tasks);
        quorum = Some(driver);
    }
    let mut broker = None;
    if config.process_roles.broker {
        let (shared, broker_tasks) = broker_runtime::start(config.clone()).await?;
        tasks.extend(broker_tasks);
        broker = Some(shared);
    }
    tracing::info!(node_id = config.node_id, "node started");
    shutdown.await;
    tracing::info!(node_id = config.node_id, "shutting down");
    if let Some(shared) = broker {
        broker_runtime::shutdown(&shared).await;
    }
    if let Some(driver) = quorum {
        // A leader resigns (EndQuorumEpoch) so the others elect at once.
        if driver.resign() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for t in tasks {
        t.abort();
    }
    Ok(())
}
