//! `osprey check` (the replication protocol) and `osprey explore`.

use super::args::{CheckArgs, ExploreArgs, ModelArgs};
use super::output::{bad_args, check_and_print, exit_code, print_report};
use osprey_model::check::{check, CheckOptions, Engine};
use osprey_model::replication::Replication;
use osprey_model::{
    AcksChoice, ConfigError, FetchDelivery, FlushPolicy, ModelConfig, PartitionModel, Variant,
};
use std::process::ExitCode;

impl ModelArgs {
    /// Whether every bound and switch is at its default (the main job's configuration).
    pub fn is_default(&self) -> bool {
        self.config().is_ok_and(|c| c == ModelConfig::default())
    }

    /// The replication model's bounds from the command line.
    pub fn config(&self) -> Result<ModelConfig, ConfigError> {
        let variant: Option<Variant> = self.variant.as_deref().map(str::parse).transpose()?;
        Ok(ModelConfig {
            brokers: self.brokers,
            records: self.records,
            max_epoch: self.max_epoch,
            max_crashes: self.max_crashes,
            max_isr_changes: self.max_isr_changes,
            min_isr: self.min_isr,
            unclean: self.unclean,
            flush: self.flush.unwrap_or(FlushPolicy::Never),
            acks: self.acks,
            fetch: self
                .fetch
                .unwrap_or_else(|| FetchDelivery::default_for(variant)),
            variant,
            max_log_failures: self.max_log_failures,
        })
    }
}

pub fn run(args: CheckArgs) -> ExitCode {
    if args.voters.is_some() {
        return bad_args("--voters applies to --protocol quorum only");
    }
    let config = match args.model.config().and_then(|c| c.validate().map(|()| c)) {
        Ok(c) => c,
        Err(e) => return bad_args(e),
    };
    let report = match check_and_print::<Replication>(config, &describe_config(&config), &args) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if !args.json && args.model.is_default() {
        let threads = args.options().map_or(1, |o| o.threads);
        show_unclean_election_counterexample(threads);
    }
    exit_code(&report)
}

/// The main job's second half: the same protocol with unclean election on, and the
/// counterexample that shows what it costs (Jepsen's 2013 finding on Kafka 0.8).
fn show_unclean_election_counterexample(threads: usize) {
    let config = Variant::UncleanElection.small_config();
    println!(
        "\n--------------------------------------------------------------------------------\n"
    );
    println!("Now with unclean.leader.election.enable=true:");
    println!("Checking {}", describe_config(&config));
    let bfs = CheckOptions {
        threads,
        engine: Engine::Bfs,
        stop_at_first_violation: true,
    };
    let report = check::<Replication>(config, &bfs, |_| {});
    print_report(&report, None);
}

pub fn describe_config(c: &ModelConfig) -> String {
    format!(
        "replication model: {} brokers, {} records, epochs <= {}, {} crash(es), {} ISR change(s), min.insync.replicas={}, unclean election {}, flush {}, acks {}, fetch {}{}",
        c.brokers,
        c.records,
        c.max_epoch,
        c.max_crashes,
        c.max_isr_changes,
        c.min_isr,
        if c.unclean_election() { "on" } else { "off" },
        c.flush,
        match c.acks {
            AcksChoice::All => "all",
            AcksChoice::Both => "all|1",
        },
        c.fetch,
        if c.max_log_failures > 0 {
            format!(", {} log failure(s)", c.max_log_failures)
        } else {
            String::new()
        } + &c
            .variant
            .map(|v| format!(", variant {v} ({})", v.description()))
            .unwrap_or_default()
    )
}

pub fn explore(args: ExploreArgs) -> ExitCode {
    use stateright::Model;
    let config = match args.model.config().and_then(|c| c.validate().map(|()| c)) {
        Ok(c) => c,
        Err(e) => return bad_args(e),
    };
    if !args.addr.ip().is_loopback() {
        return bad_args(format!(
            "--addr {} is not a loopback address; the explorer serves 127.0.0.1 only",
            args.addr
        ));
    }
    println!("Serving the state-space explorer on http://{}", args.addr);
    println!("Model: {}", describe_config(&config));
    PartitionModel::new(config).checker().serve(args.addr);
    ExitCode::SUCCESS
}
