//! Logs a run of identical rejections once, with a count, instead of once per request: a
//! flood of forged quorum requests, or a broker's AlterPartition retried every 50 ms while
//! the controller refuses it, would otherwise write a line per request.
//!
//! The first occurrence of a key is logged at once; later ones are only counted, and one
//! summary line ("repeated N times") is logged per key at most every
//! [`RepeatedLog::SUMMARY_EVERY_MS`], and when a run ends because the key went quiet and
//! came back. Time is passed in, so the decision is testable.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct RepeatedLog {
    runs: Mutex<HashMap<String, Run>>,
}

struct Run {
    /// When the last line for this key was logged.
    logged_ms: u64,
    /// Occurrences since that line.
    unlogged: u64,
}

impl RepeatedLog {
    /// At most one line per key in this interval.
    pub const SUMMARY_EVERY_MS: u64 = 10_000;

    /// Records one occurrence of `key` at `now_ms`: `Some(n)` when a line should be logged
    /// now, where `n` is the number of occurrences that line stands for (1 for the first).
    pub fn note(&self, now_ms: u64, key: &str) -> Option<u64> {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        match runs.get_mut(key) {
            None => {
                runs.insert(
                    key.to_string(),
                    Run {
                        logged_ms: now_ms,
                        unlogged: 0,
                    },
                );
                Some(1)
            }
            Some(run) => {
                run.unlogged += 1;
                if now_ms.saturating_sub(run.logged_ms) < Self::SUMMARY_EVERY_MS {
                    return None;
                }
                let n = run.unlogged;
                run.logged_ms = now_ms;
                run.unlogged = 0;
                Some(n)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_of_identical_rejections_is_logged_once_then_summarised() {
        let log = RepeatedLog::default();
        assert_eq!(log.note(0, "a"), Some(1));
        // 1,582 repeats 50 ms apart within one summary interval: no line.
        let quiet = (1..200).filter_map(|i| log.note(i * 50, "a")).count();
        assert_eq!(quiet, 0);
        // Another key is logged on its own.
        assert_eq!(log.note(9_999, "b"), Some(1));
        // After the interval, one line stands for every repeat since the first.
        assert_eq!(log.note(10_000, "a"), Some(200));
        assert_eq!(log.note(10_050, "a"), None);
    }
}
