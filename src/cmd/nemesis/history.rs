//! The run's history: one JSON object a line, every line with `t` (wall-clock milliseconds)
//! and `op`. The nemesis writes its faults and observations here and copies the workload
//! worker's lines in as they arrive, so the file is the whole run in arrival order.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{json, Value};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A shared, line-buffered history file.
#[derive(Clone)]
pub struct History {
    out: Arc<Mutex<BufWriter<File>>>,
}

impl History {
    pub fn create(path: &Path) -> Result<History> {
        Ok(History {
            out: Arc::new(Mutex::new(BufWriter::new(File::create(path)?))),
        })
    }

    /// Appends `event` with the current time unless it has one.
    pub fn record(&self, mut event: Value) {
        if let Value::Object(m) = &mut event {
            m.entry("t").or_insert_with(|| json!(now_ms()));
        }
        self.write_line(&event.to_string());
    }

    /// Appends a line that is already JSON (the worker's); anything else is wrapped.
    pub fn record_raw(&self, line: &str) {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(_)) => self.write_line(line),
            _ => self.record(json!({"op": "worker-output", "line": line})),
        }
    }

    fn write_line(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
    }

    pub fn flush(&self) {
        let _ = self.out.lock().unwrap_or_else(|e| e.into_inner()).flush();
    }
}

/// Reads a history file back.
pub fn load(path: &Path) -> Result<Vec<Value>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
