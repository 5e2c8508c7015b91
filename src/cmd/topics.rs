//! `osprey topics`: the subset of Kafka's `kafka-topics.sh` operators use, speaking the Kafka
//! protocol (kafka-protocol messages over one connection) to any broker — Osprey's or
//! Kafka's. `describe` prints exactly kafka-topics.sh's layout.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::client::Connection;

#[derive(Args, Debug)]
pub struct TopicsArgs {
    /// Brokers to talk to, `HOST:PORT[,HOST:PORT...]` (the first reachable one is used).
    #[arg(long, global = true, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
    #[command(subcommand)]
    pub command: TopicsCommand,
}

#[derive(Subcommand, Debug)]
pub enum TopicsCommand {
    /// Create a topic.
    Create {
        #[arg(long)]
        topic: String,
        /// Defaults to the cluster's num.partitions.
        #[arg(long)]
        partitions: Option<i32>,
        /// Defaults to the cluster's default.replication.factor.
        #[arg(long)]
        replication_factor: Option<i16>,
        /// A topic config override, `KEY=VALUE` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Describe topics: leader, replicas and ISR of each partition.
    Describe {
        #[arg(long)]
        topic: Option<String>,
        /// Only partitions whose ISR is smaller than their replica set.
        #[arg(long)]
        under_replicated_partitions: bool,
        /// Only partitions without a leader.
        #[arg(long)]
        unavailable_partitions: bool,
    },
    /// List topic names.
    List,
    /// Delete a topic.
    Delete {
        #[arg(long)]
        topic: String,
    },
    /// Raise a topic's partition count.
    Alter {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partitions: i32,
    },
}

pub fn run(args: TopicsArgs) -> ExitCode {
    super::run_admin("topics", execute(args))
}

const TIMEOUT: Duration = Duration::from_secs(30);

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

async fn execute(args: TopicsArgs) -> anyhow::Result<String> {
    let mut conn = connect_any(&args.bootstrap_server).await?;
    match args.command {
        TopicsCommand::Create {
            topic,
            partitions,
            replication_factor,
            configs,
        } => {
            let mut cfgs = Vec::new();
            for c in &configs {
                let (k, v) = c
                    .split_once('=')
                    .with_context(|| format!("--config {c:?}: expected KEY=VALUE"))?;
                cfgs.push(
                    CreatableTopicConfig::default()
                        .with_name(sb(k))
                        .with_value(Some(sb(v))),
                );
            }
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(TopicName(sb(&topic)))
                    .with_num_partitions(partitions.unwrap_or(-1))
                    .with_replication_factor(replication_factor.unwrap_or(-1))
                    .with_configs(cfgs)]);
            let ResponseKind::CreateTopics(resp) = conn
                .send(5, RequestKind::CreateTopics(req), TIMEOUT)
                .await?
            else {
                bail!("unexpected response to CreateTopics");
            };
            for t in resp.topics {
                if t.error_code != 0 {
                    bail!(
                        "cannot create topic {topic}: {} (error {})",
                        t.error_message.as_deref().unwrap_or(""),
                        t.error_code
                    );
                }
            }
            Ok(format!("Created topic {topic}.\n"))
        }
        TopicsCommand::Delete { topic } => {
            let req = DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(vec![TopicName(sb(&topic))]);
            let ResponseKind::DeleteTopics(resp) = conn
                .send(4, RequestKind::DeleteTopics(req), TIMEOUT)
                .await?
            else {
                bail!("unexpected response to DeleteTopics");
            };
            for r in resp.responses {
                if r.error_code != 0 {
                    bail!("cannot delete topic {topic}: error {}", r.error_code);
                }
            }
            Ok(format!("Deleted topic {topic}.\n"))
        }
        TopicsCommand::Alter { topic, partitions } => {
            let req = CreatePartitionsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(TopicName(sb(&topic)))
                    .with_count(partitions)]);
            let ResponseKind::CreatePartitions(resp) = conn
                .send(1, RequestKind::CreatePartitions(req), TIMEOUT)
                .await?
            else {
                bail!("unexpected response to CreatePartitions");
            };
            for r in resp.results {
                if r.error_code != 0 {
                    bail!(
                        "cannot alter topic {topic}: {} (error {})",
                        r.error_message.as_deref().unwrap_or(""),
                        r.error_code
                    );
                }
            }
            Ok(String::new())
        }
        TopicsCommand::List => {
            let md = metadata(&mut conn, None).await?;
            let mut names: Vec<String> = md
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            names.sort();
            Ok(names.into_iter().map(|n| n + "\n").collect())
        }
        TopicsCommand::Describe {
            topic,
            under_replicated_partitions,
            unavailable_partitions,
        } => {
            let md = metadata(&mut conn, topic.as_deref()).await?;
            let mut topics: Vec<TopicDescription> = Vec::new();
            for t in &md.topics {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                if t.error_code != 0 {
                    if topic.is_some() {
                        bail!(
                            "Topic '{name}' does not exist as expected (error {})",
                            t.error_code
                        );
                    }
                    continue;
                }
                let configs = topic_configs(&mut conn, &name).await.unwrap_or_default();
                let mut partitions: Vec<PartitionDescription> = t
                    .partitions
                    .iter()
                    .map(|p| PartitionDescription {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                topics.push(TopicDescription {
                    name,
                    id: t.topic_id.to_string(),
                    configs,
                    partitions,
                });
            }
            topics.sort_by(|a, b| a.name.cmp(&b.name));
            let filter = if under_replicated_partitions {
                Filter::UnderReplicated
            } else if unavailable_partitions {
                Filter::Unavailable
            } else {
                Filter::All
            };
            Ok(format_describe(&topics, filter))
        }
    }
}

/// Connects to the first reachable broker of a comma-separated bootstrap list.
async fn connect_any(bootstrap: &str) -> anyhow::Result<Connection> {
    let mut last = None;
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
    {
        match Connection::connect(addr, "osprey-topics", Duration::from_secs(5)).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("empty --bootstrap-server")))
        .with_context(|| format!("cannot reach any of {bootstrap}"))
}

async fn metadata(conn: &mut Connection, topic: Option<&str>) -> anyhow::Result<MetadataResponse> {
    let req = MetadataRequest::default().with_topics(
        topic.map(|t| vec![MetadataRequestTopic::default().with_name(Some(TopicName(sb(t))))]),
    );
    match conn.send(12, RequestKind::Metadata(req), TIMEOUT).await? {
        ResponseKind::Metadata(m) => Ok(m),
        _ => bail!("unexpected response to Metadata"),
    }
}

/// The topic's own overrides (config source DYNAMIC_TOPIC_CONFIG), as kafka-topics shows.
async fn topic_configs(
    conn: &mut Connection,
    topic: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(topic))
            .with_configuration_keys(None)]);
    let ResponseKind::DescribeConfigs(resp) = conn
        .send(4, RequestKind::DescribeConfigs(req), TIMEOUT)
        .await?
    else {
        bail!("unexpected response to DescribeConfigs");
    };
    Ok(resp
        .results
        .into_iter()
        .flat_map(|r| r.configs)
        .filter(|c| c.config_source == 1)
        .map(|c| {
            (
                c.name.to_string(),
                c.value.map(|v| v.to_string()).unwrap_or_default(),
            )
        })
        .collect())
}

/// One topic as `describe` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    pub name: String,
    pub id: String,
    pub configs: Vec<(String, String)>,
    pub partitions: Vec<PartitionDescription>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionDescription {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Metadata's offline replicas: fenced or unregistered brokers, and replicas whose log
    /// is offline (it failed to open or recover).
    pub offline: Vec<i32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    UnderReplicated,
    Unavailable,
}

fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// kafka-topics.sh's describe layout: a topic line (omitted when filtering partitions),
/// then one tab-indented, tab-separated line per partition; a partition without a leader
/// shows `Leader: none`, and one with offline replicas ends with `Offline: <ids>`.
pub fn format_describe(topics: &[TopicDescription], filter: Filter) -> String {
    let mut out = String::new();
    for t in topics {
        if filter == Filter::All {
            let configs = t
                .configs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
            out.push_str(&format!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}\n",
                t.name,
                t.id,
                t.partitions.len(),
                rf,
                configs
            ));
        }
        for p in &t.partitions {
            let show = match filter {
                Filter::All => true,
                Filter::UnderReplicated => p.isr.len() < p.replicas.len(),
                Filter::Unavailable => p.leader < 0,
            };
            if !show {
                continue;
            }
            let leader = if p.leader < 0 {
                "none".to_string()
            } else {
                p.leader.to_string()
            };
            out.push_str(&format!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                t.name,
                p.partition,
                leader,
                join(&p.replicas),
                join(&p.isr)
            ));
            if !p.offline.is_empty() {
                out.push_str(&format!("\tOffline: {}", join(&p.offline)));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders() -> TopicDescription {
        TopicDescription {
            name: "orders".into(),
            id: "2d4f1c0e-0000-4000-8000-000000000001".into(),
            configs: vec![("min.insync.replicas".into(), "2".into())],
            partitions: vec![
                PartitionDescription {
                    partition: 0,
                    leader: 1,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2, 3],
                    offline: vec![],
                },
                PartitionDescription {
                    partition: 1,
                    leader: -1,
                    replicas: vec![2, 3, 1],
                    isr: vec![2],
                    offline: vec![3, 1],
                },
            ],
        }
    }

    #[test]
    fn describe_matches_kafka_topics_layout() {
        let out = format_describe(&[orders()], Filter::All);
        assert_eq!(
            out,
            "Topic: orders\tTopicId: 2d4f1c0e-0000-4000-8000-000000000001\tPartitionCount: 2\tReplicationFactor: 3\tConfigs: min.insync.replicas=2\n\
             \tTopic: orders\tPartition: 0\tLeader: 1\tReplicas: 1,2,3\tIsr: 1,2,3\n\
             \tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2,3,1\tIsr: 2\tOffline: 3,1\n"
        );
    }

    #[test]
    fn under_replicated_lists_only_shrunk_partitions() {
        let out = format_describe(&[orders()], Filter::UnderReplicated);
        assert_eq!(
            out,
            "\tTopic: orders\tPartition: 1\tLeader: none\tReplicas: 2,3,1\tIsr: 2\tOffline: 3,1\n"
        );
        assert_eq!(format_describe(&[orders()], Filter::Unavailable), out);
    }
}
