//! `osprey guarantees`: the guarantee matrix. Every combination of replication factor,
//! min.insync.replicas, acks, unclean election, flush policy, ELR and crashes is checked by
//! the replication model; a violated cell carries its shortest counterexample.

use clap::Args;
use osprey_model::check::CheckOptions;
use osprey_model::guarantees::{grid, story, Cell, GridBounds};
use serde::Serialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

mod html;
mod results;

use results::{table, CellCounterexample, CellResult};

/// Bumped when the model or the grid changes what a cached cell would say.
const CACHE_VERSION: u32 = 2;

#[derive(Args, Debug)]
pub struct GuaranteesArgs {
    /// Replication factors (comma-separated, 1 to 4).
    #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
    pub rf: Vec<u8>,
    /// Largest leader epoch in every cell's runs.
    #[arg(long, default_value_t = 2)]
    pub max_epoch: u8,
    /// ISR changes other than elections in every cell's runs.
    #[arg(long, default_value_t = 2)]
    pub max_isr_changes: u8,
    /// Checker threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the results as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML page: the grid and each counterexample as a timeline.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Where counterexample traces are written (one file per violated cell).
    #[arg(long, default_value = "guarantees-traces")]
    pub traces: PathBuf,
    /// Cache of cell results, keyed by configuration (default: ~/.cache/osprey/guarantees).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Check every cell again, ignoring the cache.
    #[arg(long)]
    pub no_cache: bool,
}

#[derive(Serialize)]
struct GridReport<'a> {
    bounds: GridBounds,
    records: u8,
    cells: &'a [CellResult],
}

pub fn run(args: GuaranteesArgs) -> ExitCode {
    if let Some(rf) = args.rf.iter().find(|&&rf| !(1..=4).contains(&rf)) {
        return bad_args(format!("--rf {rf} is out of range: 1 to 4"));
    }
    let bounds = GridBounds {
        max_epoch: args.max_epoch,
        max_isr_changes: args.max_isr_changes,
    };
    let threads = args
        .threads
        .unwrap_or_else(|| CheckOptions::default().threads);
    if threads == 0 {
        return bad_args("--threads must be at least 1");
    }
    let cells = grid(&args.rf);
    for c in &cells {
        if let Err(e) = c.config(bounds).validate() {
            return bad_args(e);
        }
    }
    let cache = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(default_cache_dir)
    };
    let bar = progress(cells.len() as u64, !args.json);
    let start = Instant::now();
    let mut results = Vec::with_capacity(cells.len());
    let mut cached = 0;
    for cell in &cells {
        if let Some(bar) = &bar {
            bar.set_message(cell.label());
        }
        let hit = cache.as_deref().and_then(|d| read_cache(d, cell, bounds));
        let result = match hit {
            Some(r) => {
                cached += 1;
                r
            }
            None => {
                let r = check_cell(*cell, bounds, threads, &args.traces);
                if let Some(d) = &cache {
                    write_cache(d, cell, bounds, &r);
                }
                r
            }
        };
        results.push(result);
        if let Some(bar) = &bar {
            bar.inc(1);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if let Err(e) = write_traces(&results) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(path) = &args.html {
        if let Err(e) = std::fs::write(path, html::page(&results, bounds)) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    if args.json {
        let report = GridReport {
            bounds,
            records: 1,
            cells: &results,
        };
        println!(
            "{}",
            serde_json::to_string(&report).expect("a report serializes")
        );
    } else {
        print!("{}", table(&results));
        println!(
            "\n{} cells ({} from the cache) in {:.1} s; bounds: 1 record, leader epochs <= {}, {} ISR change(s).",
            results.len(),
            cached,
            start.elapsed().as_secs_f64(),
            bounds.max_epoch,
            bounds.max_isr_changes
        );
        let exhaustive = results.iter().filter(|r| r.exhaustive).count();
        let violated = results
            .iter()
            .filter(|r| r.counterexample.is_some())
            .count();
        println!(
            "{exhaustive} of {} cells exhaustive (every state within the bounds explored); {violated} violated cells carry their shortest counterexample.",
            results.len()
        );
        if let Some(path) = &args.html {
            println!("HTML written to {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

fn bad_args(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn progress(len: u64, enabled: bool) -> Option<indicatif::ProgressBar> {
    if !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} cells, {elapsed} {msg}")
    {
        bar.set_style(style);
    }
    Some(bar)
}

/// Checks one cell ([`osprey_model::guarantees::check_cell`]) and names its trace file.
pub fn check_cell(cell: Cell, bounds: GridBounds, threads: usize, traces: &Path) -> CellResult {
    let start = Instant::now();
    let v = osprey_model::guarantees::check_cell(cell, bounds, threads);
    let counterexample = v.counterexample.map(|trace| CellCounterexample {
        steps: trace.steps.len() - 1,
        violated: v.violated.clone(),
        story: story(&trace),
        trace_file: traces.join(format!("{}.json", file_name(&cell))),
        trace,
    });
    CellResult {
        cell,
        acked_never_lost: v.acked_never_lost,
        consumed_never_lost: v.consumed_never_lost,
        available: v.available,
        exhaustive: v.exhaustive,
        states: v.states,
        elapsed_s: start.elapsed().as_secs_f64(),
        counterexample,
    }
}

fn file_name(cell: &Cell) -> String {
    cell.label().replace([' ', '='], "-")
}

fn write_traces(results: &[CellResult]) -> Result<(), String> {
    for r in results {
        if let Some(c) = &r.counterexample {
            if let Some(dir) = c.trace_file.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            }
            let json = serde_json::to_string_pretty(&c.trace).expect("a trace serializes");
            std::fs::write(&c.trace_file, json + "\n")
                .map_err(|e| format!("cannot write {}: {e}", c.trace_file.display()))?;
        }
    }
    Ok(())
}

fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("osprey").join("guarantees"))
}

/// The cache file of a cell: its configuration spelled out, so a change of bound or of cell
/// is a different file.
fn cache_file(dir: &Path, cell: &Cell, bounds: GridBounds) -> PathBuf {
    dir.join(format!(
        "v{CACHE_VERSION}-{}-{}-epoch{}-isr{}.json",
        env!("CARGO_PKG_VERSION"),
        file_name(cell),
        bounds.max_epoch,
        bounds.max_isr_changes
    ))
}

fn read_cache(dir: &Path, cell: &Cell, bounds: GridBounds) -> Option<CellResult> {
    let text = std::fs::read_to_string(cache_file(dir, cell, bounds)).ok()?;
    let r: CellResult = serde_json::from_str(&text).ok()?;
    (r.cell == *cell).then_some(r)
}

/// A cache that cannot be written only costs time on the next run.
fn write_cache(dir: &Path, cell: &Cell, bounds: GridBounds, r: &CellResult) {
    if std::fs::create_dir_all(dir).is_ok() {
        let json = serde_json::to_string(r).expect("a result serializes");
        let _ = std::fs::write(cache_file(dir, cell, bounds), json);
    }
}
