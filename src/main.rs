//! `osprey`: one binary fronting every part of Osprey — the model checker, the broker, and
//! the conformance suite.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "osprey",
    version,
    about = "A verified, Kafka-compatible replicated log",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Model-check Kafka's partition replication protocol exhaustively within bounds.
    Check(cmd::check::CheckArgs),
    /// The guarantee matrix: what each combination of durability settings guarantees.
    Guarantees(cmd::guarantees::GuaranteesArgs),
    /// Run one Osprey node (broker, controller, or both) from a Kafka-style config file.
    Broker(cmd::broker::BrokerArgs),
    /// Create, list, describe, alter and delete topics (like kafka-topics.sh).
    Topics(cmd::topics::TopicsArgs),
    /// Serve stateright's web explorer of the model's state space on 127.0.0.1.
    Explore(cmd::check::ExploreArgs),
    /// Describe the KRaft metadata quorum (like kafka-metadata-quorum.sh).
    MetadataQuorum(cmd::metadata_quorum::MetadataQuorumArgs),
    /// Run a local multi-process cluster: up, down, kill --node N, start --node N.
    Cluster(cmd::cluster::ClusterArgs),
    /// Generate model traces for the conformance suite.
    Traces(cmd::traces::TracesArgs),
    /// Replay model traces against the broker's replication core and storage.
    Conformance(cmd::conformance::ConformanceArgs),
    /// The fault campaign: a cluster in network namespaces under a seeded schedule of
    /// faults, real clients, and a checker over the history.
    Nemesis(cmd::nemesis::NemesisArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check(args) => cmd::check::run(args),
        Command::Explore(args) => cmd::check::explore(args),
        Command::Guarantees(args) => cmd::guarantees::run(args),
        Command::Broker(args) => cmd::broker::run(args),
        Command::Topics(args) => cmd::topics::run(args),
        Command::MetadataQuorum(args) => cmd::metadata_quorum::run(args),
        Command::Cluster(args) => cmd::cluster::run(args),
        Command::Traces(args) => cmd::traces::run(args),
        Command::Conformance(args) => cmd::conformance::run(args),
        Command::Nemesis(args) => cmd::nemesis::run(args),
    }
}
