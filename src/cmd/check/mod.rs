//! `osprey check` and `osprey explore`: one path for both protocols. Each protocol's file
//! turns the arguments into its model's configuration; `output` runs the checker and prints
//! what it found the same way for both.

mod args;
mod output;
mod quorum;
mod replication;

pub use args::{CheckArgs, ExploreArgs, ProtocolName};
pub use replication::explore;

pub fn run(args: CheckArgs) -> std::process::ExitCode {
    match args.protocol {
        ProtocolName::Replication => replication::run(args),
        ProtocolName::Quorum => quorum::run(args),
    }
}
