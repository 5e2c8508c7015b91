//! `osprey check` and `osprey explore`.

use clap::Args;
use osprey_model::check::{
    check_partition, CheckOptions, CheckReport, Counterexample, Engine, Progress,
};
use osprey_model::{
    AcksChoice, ConfigError, FetchDelivery, FlushPolicy, ModelConfig, PartitionModel, Variant,
};
use std::io::IsTerminal;
use std::process::ExitCode;

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
    /// Flush policy: every (fsync each append) or never. Default: never for the partition
    /// (Kafka's default: leave it to the OS), every for kraft (the raft client flushes).
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

impl ModelArgs {
    /// Whether every bound and switch is at its default (the main job's configuration).
    pub fn is_default(&self) -> bool {
        self.config().is_ok_and(|c| c == ModelConfig::default())
    }

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

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The protocol to check: `partition` (replication of one partition) or `kraft` (the
    /// KRaft controller quorum, specs/kraft.md).
    #[arg(long, default_value = "partition", value_parser = ["partition", "kraft"])]
    pub protocol: String,
    /// KRaft voters (default: --brokers).
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

#[derive(Args, Debug)]
pub struct ExploreArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Address to serve on (loopback only).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: std::net::SocketAddr,
}

pub(super) fn bad_args(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

pub fn run(args: CheckArgs) -> ExitCode {
    if args.protocol == "kraft" {
        return super::kraft::run(args);
    }
    if args.voters.is_some() {
        return bad_args("--voters applies to --protocol kraft only");
    }
    let config = match args.model.config().and_then(|c| c.validate().map(|()| c)) {
        Ok(c) => c,
        Err(e) => return bad_args(e),
    };
    let opts = CheckOptions {
        threads: args
            .threads
            .unwrap_or_else(|| CheckOptions::default().threads),
        engine: match args.engine.as_str() {
            "bfs" => Engine::Bfs,
            "symmetry" => Engine::DfsSymmetry,
            _ if config.variant.is_some() || config.unclean => Engine::Bfs,
            _ => Engine::DfsSymmetry,
        },
        stop_at_first_violation: !args.all_violations,
    };
    if opts.threads == 0 {
        return bad_args("--threads must be at least 1");
    }
    if !args.json {
        println!("Checking {}", describe_config(&config));
    }
    let bar = progress_bar(!args.json);
    let report = check_partition(config, &opts, |p: Progress| {
        if let Some(bar) = &bar {
            let rate = p.unique_states as f64 / p.elapsed.as_secs_f64().max(1e-3);
            bar.set_message(format!(
                "{} states, {:.0} states/s, depth {}",
                p.unique_states, rate, p.max_depth
            ));
            bar.tick();
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut report = report;
    if report.violated() && opts.engine == Engine::DfsSymmetry && args.engine == "auto" {
        // Depth-first paths are long: search breadth-first for a short counterexample.
        let bfs = CheckOptions {
            engine: Engine::Bfs,
            stop_at_first_violation: true,
            ..opts.clone()
        };
        let shorter = check_partition(config, &bfs, |_| {});
        report.counterexample = shorter.counterexample.or(report.counterexample);
    }
    let demo = !args.json && args.model.is_default();
    if let (Some(path), Some(trace)) = (&args.trace_out, &report.counterexample) {
        let json = serde_json::to_string_pretty(trace).expect("a trace serializes");
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report serializes")
        );
    } else {
        print_report(&report, args.trace_out.as_deref());
    }
    if demo {
        show_unclean_election_counterexample(&opts);
    }
    if report.violated() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// The main job's second half: the same protocol with unclean election on, and the
/// counterexample that shows what it costs (Jepsen's 2013 finding on Kafka 0.8).
fn show_unclean_election_counterexample(opts: &CheckOptions) {
    let config = Variant::UncleanElection.small_config();
    println!(
        "\n--------------------------------------------------------------------------------\n"
    );
    println!("Now with unclean.leader.election.enable=true:");
    println!("Checking {}", describe_config(&config));
    let bfs = CheckOptions {
        engine: Engine::Bfs,
        stop_at_first_violation: true,
        ..opts.clone()
    };
    let report = check_partition(config, &bfs, |_| {});
    print_report(&report, None);
}

/// A spinner with a live message on stderr, when stderr is a terminal and the output is text.
pub(super) fn progress_bar(enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

pub fn describe_config(c: &ModelConfig) -> String {
    format!(
        "partition model: {} brokers, {} records, epochs <= {}, {} crash(es), {} ISR change(s), min.insync.replicas={}, unclean election {}, flush {}, acks {}, fetch {}{}",
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

pub fn print_report<C, T: Counterexample>(
    r: &CheckReport<C, T>,
    trace_out: Option<&std::path::Path>,
) {
    println!(
        "{} unique states ({} generated), max depth {}, {:.2} s, {:.0} states/s, {} thread(s), {}{}",
        r.unique_states,
        r.total_states,
        r.max_depth,
        r.elapsed_s,
        r.states_per_s,
        r.threads,
        match r.engine {
            Engine::Bfs => "breadth-first",
            Engine::DfsSymmetry => "depth-first with symmetry reduction",
        },
        if r.complete {
            ", exhaustive"
        } else {
            ", stopped at the first violation"
        }
    );
    for p in &r.properties {
        let verdict = match (p.expectation.as_str(), p.holds) {
            ("sometimes", true) => "witnessed",
            ("sometimes", false) => "NOT WITNESSED",
            (_, true) => "holds",
            (_, false) => "VIOLATED",
        };
        println!("  {:<10} {:<32} {}", p.expectation, p.name, verdict);
    }
    if let Some(t) = &r.counterexample {
        println!(
            "\nCounterexample ({} steps) violating {}:\n",
            t.step_count(),
            t.violated_properties().join(", ")
        );
        print!("{}", t.render());
        if let Some(path) = trace_out {
            println!("\nTrace written to {}", path.display());
        }
    }
    let unwitnessed = r
        .properties
        .iter()
        .filter(|p| p.expectation == "sometimes" && !p.holds)
        .count();
    let verdict = if r.violated() {
        "VIOLATION".to_string()
    } else if unwitnessed > 0 {
        format!(
            "every always-property holds; {unwitnessed} sometimes-propert{} not witnessed within these bounds",
            if unwitnessed == 1 { "y" } else { "ies" }
        )
    } else {
        "every property holds".to_string()
    };
    println!("\nVerdict: {verdict}");
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
