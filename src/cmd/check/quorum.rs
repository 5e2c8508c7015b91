//! `osprey check --protocol quorum`: the KRaft controller-quorum model, with the replication
//! model's options, output and exit codes.

use super::args::CheckArgs;
use super::output::{bad_args, check_and_print, exit_code};
use osprey_model::kraft::{KraftConfig, KraftVariant, Quorum};
use osprey_model::{AcksChoice, ConfigError, ModelConfig};
use std::process::ExitCode;

/// The quorum's bounds from the command line; replication-only options must stay at their
/// defaults.
fn config(args: &CheckArgs) -> Result<KraftConfig, ConfigError> {
    let m = &args.model;
    let replication = ModelConfig::default();
    let only = |flag: &str| {
        Err(ConfigError(format!(
            "{flag} applies to the replication model only, not --protocol quorum"
        )))
    };
    if m.max_isr_changes != replication.max_isr_changes {
        return only("--max-isr-changes");
    }
    if m.min_isr != replication.min_isr {
        return only("--min-isr");
    }
    if m.max_log_failures != replication.max_log_failures {
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
                    "variant '{name}' applies to the replication model only, not --protocol quorum"
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
        "quorum model: {} voters, {} records, epochs <= {}, {} crash(es), flush {}{}",
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
    match check_and_print::<Quorum>(config, &describe_config(&config), &args) {
        Ok(report) => exit_code(&report),
        Err(code) => code,
    }
}
