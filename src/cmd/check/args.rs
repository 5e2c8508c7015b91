//! The command-line arguments of `osprey check` and `osprey explore`, shared by both
//! protocols.

use clap::{Args, ValueEnum};
use osprey_model::check::{CheckOptions, Engine};
use osprey_model::{AcksChoice, FetchDelivery, FlushPolicy};

/// The protocols the checker knows. The names before the two were settled (`partition`,
/// `kraft`) stay accepted, since scripts use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolName {
    /// Replication of one partition on N brokers with its controller (specs/replication.md).
    #[value(alias = "partition")]
    Replication,
    /// The KRaft controller quorum (specs/kraft.md).
    #[value(alias = "kraft")]
    Quorum,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Brokers, each holding a replica of the partition.
    #[arg(long, default_value_t = 3)]
    pub brokers: u8,
    /// Records the producer sends.
    #[arg(long, default_value_t = 2)]
    pub records: u8,
    /// Largest leader epoch (the first leader has epoch 0).
    #[arg(long, default_value_t = 3)]
    pub max_epoch: u8,
    /// Broker crashes allowed.
    #[arg(long, default_value_t = 1)]
    pub max_crashes: u8,
    /// Partition changes other than elections (ISR shrinks and expands, fencing a follower).
    #[arg(long, default_value_t = 2)]
    pub max_isr_changes: u8,
    /// min.insync.replicas.
    #[arg(long, default_value_t = 2)]
    pub min_isr: u8,
    /// Replicas whose log may fail to open or recover (the `LogFails` step: the replica is
    /// reported offline and never elected).
    #[arg(long, default_value_t = 0)]
    pub max_log_failures: u8,
    /// unclean.leader.election.enable=true.
    #[arg(long)]
    pub unclean: bool,
    /// Flush policy: every (fsync each append) or never. Default: never for replication
    /// (Kafka's default: leave it to the OS), every for the quorum (the raft client flushes).
    #[arg(long)]
    pub flush: Option<FlushPolicy>,
    /// Producer acks explored: all, or both (acks=all and acks=1 per record).
    #[arg(long, default_value = "all")]
    pub acks: AcksChoice,
    /// Fetch delivery: atomic (the follower handles the response in the fetch's transition,
    /// as the TLA+ specifications of Kafka do) or split (responses in flight on their own).
    /// Default: atomic, split for the unfenced-truncation variant, whose flaw needs it.
    #[arg(long)]
    pub fetch: Option<FetchDelivery>,
    /// Switch on a historical Kafka flaw (see `specs/replication.md`, `specs/kraft.md`).
    #[arg(long)]
    pub variant: Option<String>,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The protocol to check: `replication` (of one partition) or `quorum` (the KRaft
    /// controller quorum, specs/kraft.md). `partition` and `kraft` are accepted too.
    #[arg(long, value_enum, default_value = "replication")]
    pub protocol: ProtocolName,
    /// Quorum voters (default: --brokers).
    #[arg(long)]
    pub voters: Option<u8>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Checker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Search engine: `symmetry` (depth-first with symmetry reduction over broker ids: the
    /// fewest states), `bfs` (breadth-first: the shortest counterexamples), or `auto`
    /// (symmetry to prove the protocol, breadth-first to shorten a counterexample it finds,
    /// and breadth-first directly for a variant).
    #[arg(long, default_value = "auto", value_parser = ["auto", "bfs", "symmetry"])]
    pub engine: String,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    pub json: bool,
    /// Write the counterexample, if any, as a trace (specs/trace-format.md).
    #[arg(long, value_name = "FILE")]
    pub trace_out: Option<std::path::PathBuf>,
    /// Keep exploring after the first violation (reports every violated property).
    #[arg(long)]
    pub all_violations: bool,
}

impl CheckArgs {
    /// The engine asked for; `None` for `auto` (the protocol chooses, and a depth-first
    /// counterexample is shortened breadth-first).
    pub fn engine(&self) -> Option<Engine> {
        match self.engine.as_str() {
            "bfs" => Some(Engine::Bfs),
            "symmetry" => Some(Engine::DfsSymmetry),
            _ => None,
        }
    }

    /// The checker's options; an error for `--threads 0`.
    pub fn options(&self) -> Result<CheckOptions, String> {
        let threads = self
            .threads
            .unwrap_or_else(|| CheckOptions::default().threads);
        if threads == 0 {
            return Err("--threads must be at least 1".to_string());
        }
        Ok(CheckOptions {
            threads,
            engine: self.engine().unwrap_or(Engine::Bfs),
            stop_at_first_violation: !self.all_violations,
        })
    }
}

#[derive(Args, Debug)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to serve on (loopback only).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: std::net::SocketAddr,
}
