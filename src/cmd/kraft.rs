//! `osprey check --protocol kraft`: the KRaft controller-quorum model, with the partition
//! model's options, output and exit codes.

use super::check::{bad_args, print_report, progress_bar, CheckArgs};
use osprey_model::check::{CheckOptions, Engine, Progress};
use osprey_model::kraft::{check_kraft, KraftConfig, KraftVariant};
use osprey_model::{AcksChoice, ConfigError, FlushPolicy, ModelConfig};
use std::process::ExitCode;

/// The KRaft bounds from the command line; partition-only options must stay at their defaults.
fn config(args: &CheckArgs) -> Result<KraftConfig, ConfigError> {
    let m = &args.model;
    let partition = ModelConfig::default();
    let only = |flag: &str| {
        Err(ConfigError(format!(
            "{flag} applies to the partition model only, not --protocol kraft"
        )))
    };
    if m.max_isr_changes != partition.max_isr_changes {
        return only("--max-isr-changes");
    }
    if m.min_isr != partition.min_isr {
        return only("--min-isr");
    }
    if m.max_log_failures != partition.max_log_failures {
        return only("--max-log-failures");
    }
    if m.unclean {
        return only("--unclean");
    }
    if m.acks != AcksChoice::All {
        return only("--acks");
    }
    let variant = match m.variant.as_deref() {
        None => None,
        Some(name) => Some(name.parse::<KraftVariant>().map_err(|e| {
            if name.parse::<osprey_model::Variant>().is_ok() {
                ConfigError(format!(
                    "variant '{name}' applies to the partition model only, not --protocol kraft"
                ))
            } else {
                e
            }
        })?),
    };
    let c = KraftConfig {
        voters: args.voters.unwrap_or(m.brokers),
        records: m.records,
        max_epoch: m.max_epoch,
        max_crashes: m.max_crashes,
        flush: m.flush.unwrap_or(KraftConfig::default().flush),
        variant,
    };
    c.validate()?;
    Ok(c)
}

pub fn describe_config(c: &KraftConfig) -> String {
    format!(
        "kraft model: {} voters, {} records, epochs <= {}, {} crash(es), flush {}{}",
        c.voters,
        c.records,
        c.max_epoch,
        c.max_crashes,
        c.flush,
        c.variant
            .map(|v| format!(", variant {v} ({})", v.description()))
            .unwrap_or_default()
    )
}

pub fn run(args: CheckArgs) -> ExitCode {
    let config = match config(&args) {
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
            _ if config.variant.is_some() || config.flush == FlushPolicy::Never => Engine::Bfs,
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
    let mut report = check_kraft(config, &opts, |p: Progress| {
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
    if report.violated() && opts.engine == Engine::DfsSymmetry && args.engine == "auto" {
        // Depth-first paths are long: search breadth-first for a short counterexample.
        let bfs = CheckOptions {
            engine: Engine::Bfs,
            stop_at_first_violation: true,
            ..opts.clone()
        };
        let shorter = check_kraft(config, &bfs, |_| {});
        report.counterexample = shorter.counterexample.or(report.counterexample);
    }
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
    if report.violated() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
