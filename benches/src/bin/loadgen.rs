//! Osprey's load generator: measures a local cluster of real `osprey broker` processes over
//! the Kafka protocol.
//!
//! * `produce`: throughput (records/s, MB/s) and per-request latency (p50/p99/p999) of
//!   acks=all produces to a replication-factor-3 topic, from `--connections` concurrent
//!   producers each keeping one request in flight.
//! * `failover`: acks=all produces to one partition while its leader is SIGKILLed; reports
//!   the time from the kill to the first acknowledged write on the new leader.
//! * `controller-failover`: with three KRaft controllers, SIGKILLs the active controller
//!   and reports the time to a new active controller (DescribeQuorum) and to the first
//!   successful metadata change (CreateTopics through a broker).
//!
//! The cluster is started and stopped with `osprey cluster up/kill/down` (the `osprey`
//! executable next to this one, or `--osprey PATH`), in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Parser, Subcommand};
use hdrhistogram::Histogram;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use osprey_broker::client::Connection;
use osprey_broker::storage::{BatchBuilder, Compression};

#[derive(Parser)]
#[command(name = "loadgen", about = "Osprey's load generator")]
struct Cli {
    /// The osprey executable (default: next to this one).
    #[arg(long, global = true)]
    osprey: Option<PathBuf>,
    /// First port of the local cluster.
    #[arg(long, global = true, default_value_t = 39092)]
    base_port: u16,
    /// `broker.session.timeout.ms` of the cluster (Kafka's default 9000): how long the
    /// controller waits for a silent broker before fencing it, the bulk of a crash failover.
    /// Heartbeats are sent every sixth of it. Passed to the nodes as KAFKA_ variables.
    #[arg(long, global = true, default_value_t = 9000)]
    session_timeout_ms: u64,
    #[command(subcommand)]
    command: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Produce throughput and latency, acks=all, replication factor 3.
    Produce {
        /// Record value size in bytes.
        #[arg(long, default_value_t = 100)]
        record_size: usize,
        /// Records per produce request (one batch).
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// The batch's codec, as a producer's `compression.type`: none, gzip, snappy, lz4
        /// or zstd. The leader decompresses each batch to validate it.
        #[arg(long, default_value = "none")]
        compression: String,
        /// Concurrent producer connections.
        #[arg(long, default_value_t = 6)]
        connections: usize,
        /// Seconds of load after a 2 s warm-up.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Leader failover time under acks=all load.
    Failover {
        /// Kills to measure.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// Controller failover time: three controllers, the active one SIGKILLed.
    ControllerFailover {
        /// Kills to measure.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
}

const TOPIC: &str = "loadgen";

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let osprey = match cli.osprey {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("executable dir")?
            .join("osprey"),
    };
    if !osprey.exists() {
        bail!(
            "{} not found: build it first (cargo build --release) or pass --osprey",
            osprey.display()
        );
    }
    let dir = tempfile::tempdir()?;
    std::env::set_var(
        "KAFKA_BROKER_SESSION_TIMEOUT_MS",
        cli.session_timeout_ms.to_string(),
    );
    std::env::set_var(
        "KAFKA_BROKER_HEARTBEAT_INTERVAL_MS",
        (cli.session_timeout_ms / 6).max(50).to_string(),
    );
    let controllers = match cli.command {
        Mode::ControllerFailover { .. } => 3,
        _ => 1,
    };
    let cluster = LocalCluster::up(&osprey, dir.path(), cli.base_port, controllers)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        match cli.command {
            Mode::Produce {
                record_size,
                batch,
                compression,
                connections,
                seconds,
                partitions,
                json,
            } => {
                cluster.create_topic(partitions)?;
                let codec = codec_named(&compression)?;
                let shape = (record_size, batch, codec);
                let r = produce_load(&cluster, partitions, shape, connections, seconds).await?;
                r.print(json);
                Ok(())
            }
            Mode::Failover { rounds, json } => {
                cluster.create_topic(1)?;
                let mut times = Vec::new();
                for _ in 0..rounds {
                    times.push(failover_once(&cluster).await?);
                }
                let ms: Vec<f64> = times.iter().map(|d| d.as_secs_f64() * 1e3).collect();
                if json {
                    println!("{}", serde_json::json!({ "failover_ms": ms }));
                } else {
                    for (i, t) in ms.iter().enumerate() {
                        println!(
                            "failover {}: {t:.0} ms (leader SIGKILL → first acks=all write acknowledged; \
                             broker.session.timeout.ms={})",
                            i + 1,
                            cli.session_timeout_ms
                        );
                    }
                }
                Ok(())
            }
            Mode::ControllerFailover { rounds, json } => {
                let mut rows = Vec::new();
                for round in 0..rounds {
                    rows.push(controller_failover_once(&cluster, round).await?);
                }
                if json {
                    let active: Vec<f64> = rows.iter().map(|r| r.1.as_secs_f64() * 1e3).collect();
                    let change: Vec<f64> = rows.iter().map(|r| r.2.as_secs_f64() * 1e3).collect();
                    println!(
                        "{}",
                        serde_json::json!({ "new_active_controller_ms": active, "first_metadata_change_ms": change })
                    );
                } else {
                    for (i, (killed, active, change)) in rows.iter().enumerate() {
                        println!(
                            "controller failover {}: controller {killed} SIGKILLed → new active controller {:.0} ms → first CreateTopics committed {:.0} ms",
                            i + 1,
                            active.as_secs_f64() * 1e3,
                            change.as_secs_f64() * 1e3
                        );
                    }
                }
                Ok(())
            }
        }
    });
    cluster.down();
    result
}

/// A cluster run by `osprey cluster` in a directory.
struct LocalCluster {
    osprey: PathBuf,
    dir: PathBuf,
    bootstrap: String,
    /// (node id, controller address) of every voter.
    controllers: Vec<(i32, String)>,
}

impl LocalCluster {
    fn up(
        osprey: &Path,
        dir: &Path,
        base_port: u16,
        controllers: usize,
    ) -> anyhow::Result<LocalCluster> {
        let out = Command::new(osprey)
            .args(["cluster", "up", "--brokers", "3", "--controllers"])
            .arg(controllers.to_string())
            .arg("--base-port")
            .arg(base_port.to_string())
            .arg("--dir")
            .arg(dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "cluster up failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("cluster.json"))?)?;
        let bootstrap = state["bootstrap_servers"]
            .as_str()
            .context("bootstrap_servers")?
            .to_string();
        let controllers = state["nodes"]
            .as_array()
            .context("nodes")?
            .iter()
            .filter_map(|n| {
                let port = n["controller_port"].as_u64()?;
                Some((n["id"].as_i64()? as i32, format!("127.0.0.1:{port}")))
            })
            .collect();
        Ok(LocalCluster {
            osprey: osprey.to_path_buf(),
            dir: dir.to_path_buf(),
            bootstrap,
            controllers,
        })
    }

    fn cluster(&self, args: &[&str]) -> anyhow::Result<()> {
        let out = Command::new(&self.osprey)
            .arg("cluster")
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .output()?;
        if !out.status.success() {
            bail!(
                "osprey cluster {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    fn down(&self) {
        let _ = self.cluster(&["down"]);
    }

    fn first_broker(&self) -> &str {
        self.bootstrap.split(',').next().unwrap_or_default()
    }

    fn create_topic(&self, partitions: i32) -> anyhow::Result<()> {
        // `osprey cluster up` returns once the nodes listen; the brokers may still be
        // registering, which the controller answers with INVALID_REPLICATION_FACTOR.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = Command::new(&self.osprey)
                .args([
                    "topics",
                    "--bootstrap-server",
                    self.first_broker(),
                    "create",
                    "--topic",
                    TOPIC,
                ])
                .args([
                    "--partitions",
                    &partitions.to_string(),
                    "--replication-factor",
                    "3",
                ])
                .args(["--config", "min.insync.replicas=2"])
                .output()?;
            if out.status.success() {
                break;
            }
            let err = String::from_utf8_lossy(&out.stderr);
            if !err.contains("unfenced broker") || Instant::now() > deadline {
                bail!("create topic: {err}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        std::thread::sleep(Duration::from_secs(1));
        Ok(())
    }

    /// Leader id and address of each partition.
    async fn leaders(&self, partitions: i32) -> anyhow::Result<Vec<(i32, String)>> {
        for addr in self.bootstrap.split(',') {
            let Ok(mut c) = Connection::connect(addr, "loadgen", Duration::from_secs(1)).await
            else {
                continue;
            };
            let req = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))]));
            let Ok(ResponseKind::Metadata(m)) = c
                .send(9, RequestKind::Metadata(req), Duration::from_secs(5))
                .await
            else {
                continue;
            };
            let addr_of = |id: i32| {
                m.brokers
                    .iter()
                    .find(|b| b.node_id.0 == id)
                    .map(|b| format!("{}:{}", b.host, b.port))
            };
            let Some(t) = m.topics.first() else { continue };
            let mut out = Vec::new();
            for p in 0..partitions {
                let Some(part) = t.partitions.iter().find(|x| x.partition_index == p) else {
                    break;
                };
                match addr_of(part.leader_id.0) {
                    Some(a) if part.leader_id.0 >= 0 => out.push((part.leader_id.0, a)),
                    _ => break,
                }
            }
            if out.len() == partitions as usize {
                return Ok(out);
            }
        }
        bail!("no complete metadata for {TOPIC}")
    }
}

fn produce_request(partition: i32, batch: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

fn codec_named(name: &str) -> anyhow::Result<Compression> {
    Ok(match name {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => bail!("unknown compression {other:?}: none, gzip, snappy, lz4 or zstd"),
    })
}

/// One batch of `records` values of `size` bytes. The values are text-like (compressible,
/// not trivially so), so that compressed runs measure real decompression.
fn make_batch(records: usize, size: usize, codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new(0).compression(codec);
    for i in 0..records {
        let value: Vec<u8> = (0..size)
            .map(|j| b"abcdefghijklmnopqrstuvwxyz0123456789 "[(i * 7 + j * 13) % 37])
            .collect();
        b = b.record(i as i64, None, Some(&value));
    }
    b.build().freeze()
}

/// Sends one produce; `Ok(true)` when acknowledged without error.
async fn send_produce(conn: &mut Connection, partition: i32, batch: Bytes) -> anyhow::Result<bool> {
    match conn
        .send(
            7,
            RequestKind::Produce(produce_request(partition, batch)),
            Duration::from_secs(35),
        )
        .await?
    {
        ResponseKind::Produce(r) => Ok(r
            .responses
            .iter()
            .flat_map(|t| &t.partition_responses)
            .all(|p| p.error_code == 0)),
        _ => bail!("unexpected response"),
    }
}

struct ProduceReport {
    records: u64,
    bytes: u64,
    elapsed: Duration,
    errors: u64,
    latency_us: Histogram<u64>,
    record_size: usize,
    batch: usize,
    codec: Compression,
    connections: usize,
}

impl ProduceReport {
    fn print(&self, json: bool) {
        let secs = self.elapsed.as_secs_f64();
        let rps = self.records as f64 / secs;
        let mbps = self.bytes as f64 / secs / 1e6;
        let q = |p: f64| self.latency_us.value_at_quantile(p) as f64 / 1e3;
        if json {
            println!(
                "{}",
                serde_json::json!({
                    "record_size": self.record_size, "batch": self.batch,
                    "compression": format!("{:?}", self.codec).to_lowercase(),
                    "connections": self.connections, "records": self.records,
                    "errors": self.errors, "elapsed_s": secs,
                    "records_per_s": rps, "mb_per_s": mbps,
                    "latency_ms": {"p50": q(0.5), "p99": q(0.99), "p999": q(0.999)},
                })
            );
        } else {
            println!(
                "acks=all RF=3, {} B records, {} per request ({:?}), {} connections: {:.0} records/s, {:.1} MB/s; \
                 request latency p50 {:.2} ms, p99 {:.2} ms, p999 {:.2} ms; {} errors",
                self.record_size, self.batch, self.codec, self.connections, rps, mbps, q(0.5), q(0.99), q(0.999), self.errors
            );
        }
    }
}

async fn produce_load(
    cluster: &LocalCluster,
    partitions: i32,
    (record_size, batch, codec): (usize, usize, Compression),
    connections: usize,
    seconds: u64,
) -> anyhow::Result<ProduceReport> {
    let leaders = cluster.leaders(partitions).await?;
    let payload = make_batch(batch, record_size, codec);
    let warmup = Duration::from_secs(2);
    let run = Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..connections {
        let partition = (i as i32) % partitions;
        let addr = leaders[partition as usize].1.clone();
        let payload = payload.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).expect("histogram");
            let (mut ok, mut err) = (0u64, 0u64);
            let mut conn = Connection::connect(&addr, "loadgen", Duration::from_secs(5)).await?;
            loop {
                let t = Instant::now();
                if t.duration_since(start) > warmup + run {
                    break;
                }
                let acked = send_produce(&mut conn, partition, payload.clone()).await?;
                if t.duration_since(start) >= warmup {
                    let _ = hist.record(t.elapsed().as_micros() as u64);
                    if acked {
                        ok += 1
                    } else {
                        err += 1
                    }
                }
            }
            anyhow::Ok((hist, ok, err))
        }));
    }
    let mut latency_us = Histogram::<u64>::new(3)?;
    let (mut requests, mut errors) = (0u64, 0u64);
    for t in tasks {
        let (h, ok, err) = t.await??;
        latency_us.add(h)?;
        requests += ok;
        errors += err;
    }
    let records = requests * batch as u64;
    Ok(ProduceReport {
        records,
        bytes: records * record_size as u64,
        elapsed: run,
        errors,
        latency_us,
        record_size,
        batch,
        codec,
        connections,
    })
}

/// Kills partition 0's leader while producing to it; returns kill → first acknowledged
/// acks=all write on a new leader. The killed broker is restarted and allowed to rejoin.
async fn failover_once(cluster: &LocalCluster) -> anyhow::Result<Duration> {
    let (leader, addr) = cluster.leaders(1).await?.remove(0);
    let batch = make_batch(10, 100, Compression::None);
    let mut conn = Connection::connect(&addr, "loadgen", Duration::from_secs(5)).await?;
    for _ in 0..50 {
        send_produce(&mut conn, 0, batch.clone()).await?;
    }
    cluster.cluster(&["kill", "--node", &leader.to_string()])?;
    let killed = Instant::now();
    loop {
        if killed.elapsed() > Duration::from_secs(60) {
            bail!("no new leader within 60 s");
        }
        if let Ok(leaders) = cluster.leaders(1).await {
            let (new_leader, new_addr) = &leaders[0];
            if *new_leader != leader {
                if let Ok(mut c) =
                    Connection::connect(new_addr, "loadgen", Duration::from_millis(500)).await
                {
                    if send_produce(&mut c, 0, batch.clone())
                        .await
                        .unwrap_or(false)
                    {
                        let took = killed.elapsed();
                        cluster.cluster(&["start", "--node", &leader.to_string()])?;
                        tokio::time::sleep(Duration::from_secs(6)).await;
                        return Ok(took);
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The quorum leader and each voter's log end offset, from the first controller (other
/// than `except`) that answers DescribeQuorum as the leader.
async fn active_controller(
    cluster: &LocalCluster,
    except: Option<i32>,
) -> Option<(i32, Vec<(i32, i64)>)> {
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    for (id, addr) in &cluster.controllers {
        if Some(*id) == except {
            continue;
        }
        let Ok(mut c) = Connection::connect(addr, "loadgen", Duration::from_millis(200)).await
        else {
            continue;
        };
        let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let Ok(ResponseKind::DescribeQuorum(r)) = c
            .send(0, RequestKind::DescribeQuorum(req), Duration::from_secs(1))
            .await
        else {
            continue;
        };
        let Some(p) = r.topics.first().and_then(|t| t.partitions.first()) else {
            continue;
        };
        if p.error_code == 0 {
            let ends = p
                .current_voters
                .iter()
                .map(|v| (v.replica_id.0, v.log_end_offset))
                .collect();
            return Some((p.leader_id.0, ends));
        }
    }
    None
}

/// CreateTopics of `name` through the first broker; true when it committed.
async fn create_topic_once(cluster: &LocalCluster, name: &str) -> bool {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let Ok(mut c) = Connection::connect(
        cluster.first_broker(),
        "loadgen",
        Duration::from_millis(500),
    )
    .await
    else {
        return false;
    };
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(3)])
        .with_timeout_ms(5_000);
    matches!(
        c.send(5, RequestKind::CreateTopics(req), Duration::from_secs(10)).await,
        Ok(ResponseKind::CreateTopics(r)) if r.topics.iter().all(|t| t.error_code == 0 || t.error_code == 36)
    )
}

/// One controller failover: (killed id, time to a new active controller, time to the first
/// committed metadata change). The killed controller is restarted and caught up after.
async fn controller_failover_once(
    cluster: &LocalCluster,
    round: usize,
) -> anyhow::Result<(i32, Duration, Duration)> {
    let start = Instant::now();
    let leader = loop {
        if let Some((l, _)) = active_controller(cluster, None).await {
            break l;
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("no active controller within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The quorum is healthy and brokers are registered: a change goes through first.
    let warm = format!("loadgen-controller-warm-{round}");
    while !create_topic_once(cluster, &warm).await {
        if start.elapsed() > Duration::from_secs(30) {
            bail!("CreateTopics does not succeed before the kill");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cluster.cluster(&["kill", "--node", &leader.to_string()])?;
    let killed = Instant::now();
    let active = loop {
        if let Some((l, _)) = active_controller(cluster, Some(leader)).await {
            if l != leader {
                break killed.elapsed();
            }
        }
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("no new active controller within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let topic = format!("loadgen-controller-failover-{round}");
    let change = loop {
        if create_topic_once(cluster, &topic).await {
            break killed.elapsed();
        }
        if killed.elapsed() > Duration::from_secs(30) {
            bail!("no metadata change within 30 s of the kill");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    cluster.cluster(&["start", "--node", &leader.to_string()])?;
    let back = Instant::now();
    loop {
        if let Some((l, ends)) = active_controller(cluster, None).await {
            let end_of = |id: i32| ends.iter().find(|(v, _)| *v == id).map(|(_, e)| *e);
            if end_of(leader).is_some() && end_of(leader) == end_of(l) {
                break;
            }
        }
        if back.elapsed() > Duration::from_secs(30) {
            bail!("controller {leader} did not catch up within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((leader, active, change))
}
