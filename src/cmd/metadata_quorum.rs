//! `osprey metadata-quorum`: Kafka's `kafka-metadata-quorum.sh describe --status|--replication`
//! with its output layout, so an election is visible: which controller leads, in which epoch,
//! how far each voter and observer (broker) is behind.
//!
//! It asks DescribeQuorum of a broker (which forwards it to the active controller, as
//! Kafka's brokers do) or, with `--bootstrap-controller`, of the controllers themselves,
//! trying each until the leader answers.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::ReplicaState;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::client::Connection;

#[derive(Args, Debug)]
pub struct MetadataQuorumArgs {
    /// Brokers to ask, `HOST:PORT[,HOST:PORT...]`; the request is forwarded to the active
    /// controller.
    #[arg(long, global = true, conflicts_with = "bootstrap_controller")]
    pub bootstrap_server: Option<String>,
    /// Controllers to ask directly, `HOST:PORT[,HOST:PORT...]`.
    #[arg(long, global = true)]
    pub bootstrap_controller: Option<String>,
    #[command(subcommand)]
    pub command: MetadataQuorumCommand,
}

#[derive(Subcommand, Debug)]
pub enum MetadataQuorumCommand {
    /// Describe the metadata quorum.
    Describe {
        /// The leader, its epoch, the high watermark, the largest follower lag, the voters
        /// and the observers.
        #[arg(
            long,
            conflicts_with = "replication",
            required_unless_present = "replication"
        )]
        status: bool,
        /// One line per replica: log end offset, lag, last fetch, last caught up, role.
        #[arg(long)]
        replication: bool,
    },
}

const TIMEOUT: Duration = Duration::from_secs(10);
const METADATA_TOPIC: &str = "__cluster_metadata";
const NOT_LEADER_OR_FOLLOWER: i16 = 6;

pub fn run(args: MetadataQuorumArgs) -> ExitCode {
    super::run_admin("metadata-quorum", execute(args))
}

/// The quorum as DescribeQuorum reports it, with the cluster id when a broker was asked.
struct Quorum {
    cluster_id: Option<String>,
    partition: describe_quorum_response::PartitionData,
}

async fn execute(args: MetadataQuorumArgs) -> anyhow::Result<String> {
    let quorum = match (&args.bootstrap_server, &args.bootstrap_controller) {
        (Some(servers), None) => describe_through_broker(servers).await?,
        (None, Some(controllers)) => describe_from_controllers(controllers).await?,
        _ => bail!("give --bootstrap-server or --bootstrap-controller"),
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match args.command {
        MetadataQuorumCommand::Describe { replication, .. } if replication => {
            Ok(render_replication(&quorum.partition))
        }
        MetadataQuorumCommand::Describe { .. } => Ok(render_status(&quorum, now_ms)),
    }
}

fn request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
}

fn addresses(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|a| !a.is_empty())
}

/// DescribeQuorum's one partition, or why there is none.
fn partition_of(
    resp: DescribeQuorumResponse,
) -> anyhow::Result<describe_quorum_response::PartitionData> {
    if resp.error_code != 0 {
        bail!("DescribeQuorum failed with error {}", resp.error_code);
    }
    resp.topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .context("DescribeQuorum answered no partition")
}

async fn describe_through_broker(servers: &str) -> anyhow::Result<Quorum> {
    let mut last = None;
    for addr in addresses(servers) {
        let attempt = async {
            let mut conn = Connection::connect(addr, "osprey-metadata-quorum", TIMEOUT).await?;
            let cluster_id = match conn
                .send(
                    0,
                    RequestKind::DescribeCluster(DescribeClusterRequest::default()),
                    TIMEOUT,
                )
                .await?
            {
                ResponseKind::DescribeCluster(r) => Some(r.cluster_id.to_string()),
                _ => None,
            };
            let ResponseKind::DescribeQuorum(resp) = conn
                .send(1, RequestKind::DescribeQuorum(request()), TIMEOUT)
                .await?
            else {
                bail!("unexpected response to DescribeQuorum");
            };
            let partition = partition_of(resp)?;
            if partition.error_code != 0 {
                bail!("DescribeQuorum failed with error {}", partition.error_code);
            }
            Ok(Quorum {
                cluster_id,
                partition,
            })
        };
        match attempt.await {
            Ok(q) => return Ok(q),
            Err(e) => last = Some(e.context(format!("asking {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("empty --bootstrap-server")))
}

async fn describe_from_controllers(controllers: &str) -> anyhow::Result<Quorum> {
    let mut last = None;
    for addr in addresses(controllers) {
        let attempt = async {
            let mut conn = Connection::connect(addr, "osprey-metadata-quorum", TIMEOUT).await?;
            let ResponseKind::DescribeQuorum(resp) = conn
                .send(1, RequestKind::DescribeQuorum(request()), TIMEOUT)
                .await?
            else {
                bail!("unexpected response to DescribeQuorum");
            };
            partition_of(resp)
        };
        match attempt.await {
            Ok(p) if p.error_code == 0 => {
                return Ok(Quorum {
                    cluster_id: None,
                    partition: p,
                })
            }
            Ok(p) if p.error_code == NOT_LEADER_OR_FOLLOWER => {
                last = Some(anyhow::anyhow!("{addr} is not the quorum leader"))
            }
            Ok(p) => {
                last = Some(anyhow::anyhow!(
                    "{addr}: DescribeQuorum error {}",
                    p.error_code
                ))
            }
            Err(e) => last = Some(e.context(format!("asking {addr}"))),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("empty --bootstrap-controller")))
        .context("no controller answered as the quorum leader")
}

fn ids(replicas: &[ReplicaState]) -> String {
    let ids: Vec<String> = replicas
        .iter()
        .map(|r| r.replica_id.0.to_string())
        .collect();
    format!("[{}]", ids.join(","))
}

/// The leader's log end offset, as it reports itself among the voters.
fn leader_log_end(p: &describe_quorum_response::PartitionData) -> i64 {
    p.current_voters
        .iter()
        .find(|r| r.replica_id == p.leader_id)
        .map_or(p.high_watermark, |r| r.log_end_offset)
}

/// `--status`, in kafka-metadata-quorum.sh's layout.
fn render_status(quorum: &Quorum, now_ms: i64) -> String {
    let p = &quorum.partition;
    let leader = p.leader_id.0;
    let leader_end = leader_log_end(p);
    let followers = p.current_voters.iter().filter(|r| r.replica_id.0 != leader);
    let max_lag = followers
        .clone()
        .map(|r| (leader_end - r.log_end_offset).max(0))
        .max()
        .unwrap_or(0);
    let max_lag_time = followers
        .map(|r| {
            if r.last_caught_up_timestamp < 0 {
                -1
            } else {
                (now_ms - r.last_caught_up_timestamp).max(0)
            }
        })
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    if let Some(id) = &quorum.cluster_id {
        out.push_str(&format!("ClusterId:              {id}\n"));
    }
    out.push_str(&format!("LeaderId:               {leader}\n"));
    out.push_str(&format!("LeaderEpoch:            {}\n", p.leader_epoch));
    out.push_str(&format!("HighWatermark:          {}\n", p.high_watermark));
    out.push_str(&format!("MaxFollowerLag:         {max_lag}\n"));
    out.push_str(&format!("MaxFollowerLagTimeMs:   {max_lag_time}\n"));
    out.push_str(&format!(
        "CurrentVoters:          {}\n",
        ids(&p.current_voters)
    ));
    out.push_str(&format!("CurrentObservers:       {}\n", ids(&p.observers)));
    out
}

/// `--replication`, in kafka-metadata-quorum.sh's layout: the leader first, then the other
/// voters, then the observers.
fn render_replication(p: &describe_quorum_response::PartitionData) -> String {
    let leader = p.leader_id.0;
    let leader_end = leader_log_end(p);
    let mut rows: Vec<(&ReplicaState, &str)> = Vec::new();
    rows.extend(
        p.current_voters
            .iter()
            .filter(|r| r.replica_id.0 == leader)
            .map(|r| (r, "Leader")),
    );
    rows.extend(
        p.current_voters
            .iter()
            .filter(|r| r.replica_id.0 != leader)
            .map(|r| (r, "Follower")),
    );
    rows.extend(p.observers.iter().map(|r| (r, "Observer")));
    let header = [
        "NodeId",
        "LogEndOffset",
        "Lag",
        "LastFetchTimestamp",
        "LastCaughtUpTimestamp",
        "Status",
    ];
    let table: Vec<[String; 6]> = rows
        .iter()
        .map(|(r, status)| {
            [
                r.replica_id.0.to_string(),
                r.log_end_offset.to_string(),
                (leader_end - r.log_end_offset).max(0).to_string(),
                r.last_fetch_timestamp.to_string(),
                r.last_caught_up_timestamp.to_string(),
                status.to_string(),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            table
                .iter()
                .map(|row| row[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("\t").trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in &table {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(id: i32, end: i64, fetch: i64, caught_up: i64) -> ReplicaState {
        ReplicaState::default()
            .with_replica_id(BrokerId(id))
            .with_log_end_offset(end)
            .with_last_fetch_timestamp(fetch)
            .with_last_caught_up_timestamp(caught_up)
    }

    fn quorum() -> Quorum {
        Quorum {
            cluster_id: Some("abc".into()),
            partition: describe_quorum_response::PartitionData::default()
                .with_leader_id(BrokerId(2))
                .with_leader_epoch(7)
                .with_high_watermark(40)
                .with_current_voters(vec![
                    replica(1, 35, 1_000, 900),
                    replica(2, 42, 1_000, 1_000),
                    replica(3, 42, 1_000, 1_000),
                ])
                .with_observers(vec![replica(4, 42, 990, 990)]),
        }
    }

    #[test]
    fn status_has_kafkas_fields_and_the_largest_follower_lag() {
        let out = render_status(&quorum(), 1_100);
        assert_eq!(
            out,
            "ClusterId:              abc\n\
             LeaderId:               2\n\
             LeaderEpoch:            7\n\
             HighWatermark:          40\n\
             MaxFollowerLag:         7\n\
             MaxFollowerLagTimeMs:   200\n\
             CurrentVoters:          [1,2,3]\n\
             CurrentObservers:       [4]\n"
        );
    }

    #[test]
    fn replication_lists_the_leader_then_followers_then_observers() {
        let out = render_replication(&quorum().partition);
        let rows: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows[0],
            [
                "NodeId",
                "LogEndOffset",
                "Lag",
                "LastFetchTimestamp",
                "LastCaughtUpTimestamp",
                "Status"
            ]
        );
        assert_eq!(rows[1], ["2", "42", "0", "1000", "1000", "Leader"]);
        assert_eq!(rows[2], ["1", "35", "7", "1000", "900", "Follower"]);
        assert_eq!(rows[3], ["3", "42", "0", "1000", "1000", "Follower"]);
        assert_eq!(rows[4], ["4", "42", "0", "990", "990", "Observer"]);
    }
}
