//! The broker's read-only snapshot of cluster metadata, rebuilt from the controller's
//! metadata image each time the broker applies new metadata records. Request handlers read
//! one `Arc<ClusterView>` and never see a half-applied change.

use std::collections::BTreeMap;

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerView {
    pub id: i32,
    pub broker_epoch: i64,
    /// The inter-broker listener's advertised host and port: where followers fetch from.
    pub host: String,
    pub port: u16,
    /// Every listener the broker registered, by name: a client is answered with the
    /// addresses of the listener it connected through, as Kafka does.
    pub listeners: BTreeMap<String, (String, u16)>,
    pub rack: Option<String>,
    pub fenced: bool,
}

impl BrokerView {
    /// The inter-broker address (`host:port`).
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The advertised host and port of the listener named `listener`, if it has one.
    pub fn endpoint(&self, listener: &str) -> Option<(&str, u16)> {
        self.listeners
            .get(listener)
            .map(|(host, port)| (host.as_str(), *port))
    }
}

/// One partition's controller state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub elr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// Replicas whose log is offline (assigned to `DirectoryId.LOST`, KIP-858).
    pub offline_logs: Vec<i32>,
}

/// One topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicView {
    pub name: String,
    pub id: [u8; 16],
    pub partitions: Vec<PartitionView>,
    /// Topic-level overrides only; see [`ClusterView::topic_config`].
    pub configs: BTreeMap<String, String>,
}

/// Everything a broker knows of the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterView {
    /// Offset of the next metadata record to apply.
    pub metadata_offset: i64,
    pub brokers: BTreeMap<i32, BrokerView>,
    pub topics: BTreeMap<String, TopicView>,
    /// Cluster-wide topic-config defaults (the node's own settings).
    pub defaults: BTreeMap<String, String>,
}

impl ClusterView {
    pub fn topic(&self, name: &str) -> Option<&TopicView> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &[u8; 16]) -> Option<&TopicView> {
        self.topics.values().find(|t| &t.id == id)
    }

    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionView> {
        self.topic(topic)?
            .partitions
            .iter()
            .find(|p| p.partition == partition)
    }

    /// Brokers clients may connect to (registered and not fenced).
    pub fn live_brokers(&self) -> impl Iterator<Item = &BrokerView> {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Replicas that are not live or whose log is offline (Metadata's `offline_replicas`).
    pub fn offline_replicas(&self, p: &PartitionView) -> Vec<i32> {
        p.replicas
            .iter()
            .copied()
            .filter(|&r| !self.is_live(r) || p.offline_logs.contains(&r))
            .collect()
    }

    /// A topic config: the topic's override, else the cluster default.
    pub fn topic_config(&self, topic: &str, key: &str) -> Option<&str> {
        self.topic(topic)
            .and_then(|t| t.configs.get(key))
            .or_else(|| self.defaults.get(key))
            .map(String::as_str)
    }

    /// The topic's `max.message.bytes` (the broker's `message.max.bytes` by default): the
    /// largest batch its leader accepts.
    pub fn max_message_bytes(&self, topic: &str) -> u64 {
        self.topic_config(topic, "max.message.bytes")
            .and_then(|v| v.parse().ok())
            .unwrap_or(crate::config::DEFAULT_MESSAGE_MAX_BYTES)
    }

    /// The topic's `segment.bytes` (the broker's `log.segment.bytes` by default).
    pub fn segment_bytes(&self, topic: &str) -> Option<u64> {
        self.topic_config(topic, "segment.bytes")
            .and_then(|v| v.trim().parse().ok())
    }

    /// The topic's `message.timestamp.type` (the broker's `log.message.timestamp.type` by
    /// default).
    pub fn message_timestamp_type(&self, topic: &str) -> crate::storage::TimestampType {
        self.topic_config(topic, "message.timestamp.type")
            .and_then(crate::controller::topic_config::parse_timestamp_type)
            .unwrap_or_default()
    }

    /// The topic's `message.timestamp.before.max.ms` and `after.max.ms` (unbounded unless
    /// set, on the topic or the broker).
    pub fn message_timestamp_bounds(&self, topic: &str) -> (i64, i64) {
        let bound = |key| {
            self.topic_config(topic, key)
                .and_then(|v| v.parse().ok())
                .unwrap_or(i64::MAX)
        };
        (
            bound("message.timestamp.before.max.ms"),
            bound("message.timestamp.after.max.ms"),
        )
    }

    pub fn min_insync_replicas(&self, topic: &str) -> usize {
        self.topic_config(topic, "min.insync.replicas")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1)
    }
}
