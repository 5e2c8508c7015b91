//! Admin requests a broker forwards to the active controller (as KRaft brokers do with
//! Envelope), answered only once this broker has applied the metadata they produced, so a
//! Metadata request right after sees it.

use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::*;

use super::metadata_follower;
use super::shared::NodeShared;

/// Forwards an admin request to the controller (as KRaft brokers do with Envelope),
/// then waits until this broker has applied the resulting metadata so that a Metadata
/// request right after sees it.
pub async fn forward_to_controller(
    shared: &NodeShared,
    version: i16,
    request: RequestKind,
) -> anyhow::Result<ResponseKind> {
    let resp = shared.controller.request(version, request).await?;
    catch_up_metadata(shared).await;
    Ok(resp)
}

/// Fetches and applies whatever the controller's metadata log has beyond this broker's
/// image, now, instead of waiting for the long-polling follower loop.
pub async fn catch_up_metadata(shared: &NodeShared) {
    if let Err(e) = metadata_follower::fetch_metadata_once(shared, 0).await {
        tracing::debug!(error = %e, "metadata catch-up failed");
    }
}

/// Creates `names` with the cluster defaults (auto-creation).
pub async fn create_topics_default(shared: &NodeShared, names: &[String]) {
    let topics = names
        .iter()
        .map(|n| {
            CreatableTopic::default()
                .with_name(TopicName(kafka_protocol::protocol::StrBytes::from_string(
                    n.clone(),
                )))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
        })
        .collect();
    let req = CreateTopicsRequest::default()
        .with_topics(topics)
        .with_timeout_ms(5_000);
    if let Err(e) = forward_to_controller(shared, 5, RequestKind::CreateTopics(req)).await {
        tracing::warn!(error = %e, "auto-creating topics failed");
    }
}
