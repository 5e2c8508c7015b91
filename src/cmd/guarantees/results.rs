//! One cell's result and the grid as a table: what both the text output and the HTML page
//! show.

use osprey_model::guarantees::Cell;
use osprey_model::trace::Trace;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The shortest counterexample of a violated cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellCounterexample {
    pub steps: usize,
    pub violated: Vec<String>,
    pub story: String,
    pub trace_file: PathBuf,
    pub trace: Trace,
}

/// What the model says of one cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CellResult {
    pub cell: Cell,
    pub acked_never_lost: bool,
    pub consumed_never_lost: bool,
    /// An acks=all write can be acknowledged after one broker is lost.
    pub available: bool,
    /// Both runs explored every state within the bounds (a holding verdict is a proof within
    /// them); a violated cell is decided by its counterexample.
    pub exhaustive: bool,
    pub states: usize,
    pub elapsed_s: f64,
    pub counterexample: Option<CellCounterexample>,
}

/// The three verdicts of a cell: acked writes kept, consumed records kept, available.
pub fn marks(r: &CellResult) -> String {
    let m = |b: bool| if b { '+' } else { 'x' };
    format!(
        "{}{}{}",
        m(r.acked_never_lost),
        m(r.consumed_never_lost),
        m(r.available)
    )
}

/// The grid as a table: one row per (RF, min ISR, acks, unclean, flush), one column per
/// (ELR, crashes), each entry three marks.
pub fn table(results: &[CellResult]) -> String {
    let mut out = String::from(
        "Each entry: acked writes never lost / consumed records never lost / acks=all available after one broker is lost\n\
         (+ holds, x violated; exhaustive within the bounds, or a counterexample)\n\n",
    );
    let cols: [(bool, u8); 4] = [(true, 1), (true, 2), (false, 1), (false, 2)];
    out.push_str(&format!(
        "{:<4} {:<4} {:<8} {:<8} {:<6} | {:<10} {:<10} {:<10} {:<10}\n",
        "RF",
        "min",
        "acks",
        "unclean",
        "flush",
        "ELR 1crash",
        "ELR 2crash",
        "3.x 1crash",
        "3.x 2crash"
    ));
    out.push_str(&format!("{}\n", "-".repeat(83)));
    let mut rows: Vec<Cell> = Vec::new();
    for r in results {
        let key = Cell {
            elr: true,
            crashes: 1,
            ..r.cell
        };
        if !rows.contains(&key) {
            rows.push(key);
        }
    }
    for row in rows {
        let entry = |(elr, crashes): (bool, u8)| {
            results
                .iter()
                .find(|r| {
                    r.cell
                        == Cell {
                            elr,
                            crashes,
                            ..row
                        }
                })
                .map_or("-".to_string(), marks)
        };
        out.push_str(&format!(
            "{:<4} {:<4} {:<8} {:<8} {:<6} | {:<10} {:<10} {:<10} {:<10}\n",
            row.rf,
            row.min_isr,
            if row.acks_all { "all" } else { "1" },
            if row.unclean { "on" } else { "off" },
            if row.flush_every { "every" } else { "never" },
            entry(cols[0]),
            entry(cols[1]),
            entry(cols[2]),
            entry(cols[3]),
        ));
    }
    let violated: Vec<&CellResult> = results
        .iter()
        .filter(|r| r.counterexample.is_some())
        .collect();
    if !violated.is_empty() {
        out.push_str("\nShortest counterexamples:\n");
        for r in violated {
            let c = r.counterexample.as_ref().expect("filtered");
            out.push_str(&format!(
                "  {}: {} steps, {}: {} ({})\n",
                r.cell.label(),
                c.steps,
                c.violated.join("+"),
                c.story,
                c.trace_file.display()
            ));
        }
    }
    out
}
