//! What `osprey check` prints, whichever protocol it checks: the progress spinner, the
//! report (or its JSON), the counterexample and its trace file, and the exit code.

use super::args::CheckArgs;
use osprey_model::check::{
    check_shortened, CheckReport, Counterexample, Engine, Progress, Protocol,
};
use std::io::IsTerminal;
use std::process::ExitCode;

/// Exit code 2 with the message: the arguments are wrong.
pub fn bad_args(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// Checks `config` as the arguments ask and prints the outcome. Returns the report and the
/// exit code (0 when every always-property holds, 1 on a violation, 2 when the trace file
/// cannot be written).
pub fn check_and_print<P: Protocol>(
    config: P::Config,
    description: &str,
    args: &CheckArgs,
) -> Result<CheckReport<P::Config, P::Trace>, ExitCode> {
    let opts = args.options().map_err(bad_args)?;
    if !args.json {
        println!("Checking {description}");
    }
    let bar = progress_bar(!args.json);
    let report = check_shortened::<P>(config, args.engine(), &opts, |p| {
        if let Some(bar) = &bar {
            bar.set_message(progress_message(&p));
            bar.tick();
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let (Some(path), Some(trace)) = (&args.trace_out, &report.counterexample) {
        let json = serde_json::to_string_pretty(trace).expect("a trace serializes");
        if let Err(e) = std::fs::write(path, json + "\n") {
            eprintln!("error: cannot write {}: {e}", path.display());
            return Err(ExitCode::from(2));
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
    Ok(report)
}

/// The exit code of a finished check.
pub fn exit_code<C, T>(report: &CheckReport<C, T>) -> ExitCode {
    if report.violated() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// One line of progress: states, rate, depth.
pub fn progress_message(p: &Progress) -> String {
    let rate = p.unique_states as f64 / p.elapsed.as_secs_f64().max(1e-3);
    format!(
        "{} states, {:.0} states/s, depth {}",
        p.unique_states, rate, p.max_depth
    )
}

/// A spinner with a live message on stderr, when stderr is a terminal and the output is text.
pub fn progress_bar(enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
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
