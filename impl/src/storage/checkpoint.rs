//! Kafka's versioned text checkpoint files, written atomically.
//!
//! Format (Kafka `CheckpointFile`): a version line, a count line, then exactly `count` entry
//! lines, each `\n`-terminated:
//!
//! ```text
//! 0
//! 2
//! 0 0
//! 3 120
//! ```
//!
//! Used for the `leader-epoch-checkpoint` (entries `epoch start_offset`) and the per-partition
//! `high-watermark-checkpoint` (one entry: the high watermark). Writes go to `<name>.tmp`,
//! are fsynced, renamed over the target and the directory is fsynced, so a crash leaves
//! either the old or the new file, never a mix. Reads are strict: a file that does not match
//! the format exactly is rejected with the path and line number rather than half-loaded.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::epoch_cache::EpochEntry;
use super::error::{Result, StorageError};

/// Name of the leader-epoch checkpoint inside a partition directory (as in Kafka).
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Name of the high-watermark checkpoint inside a partition directory.
pub const HIGH_WATERMARK_CHECKPOINT: &str = "high-watermark-checkpoint";
/// The only checkpoint format version.
pub const CHECKPOINT_VERSION: i32 = 0;
/// Refuse to load checkpoint files larger than this (they are a few bytes per epoch).
const MAX_CHECKPOINT_BYTES: u64 = 16 << 20;

/// `path` + `.tmp`.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// fsyncs a directory so that creations, renames and deletions in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("fsyncing directory", dir))
}

/// Replaces `path` with `contents` atomically and durably (tmp, fsync, rename, fsync dir).
pub(crate) fn atomic_write(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(StorageError::io("creating", &tmp))?;
    f.write_all(contents)
        .map_err(StorageError::io("writing", &tmp))?;
    f.sync_all().map_err(StorageError::io("fsyncing", &tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(StorageError::io("renaming checkpoint onto", path))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    fsync_dir(dir)
}

/// Writes a checkpoint with the given entry lines.
pub fn write_checkpoint(path: &Path, version: i32, lines: &[String]) -> Result<()> {
    let mut s = format!("{version}\n{}\n", lines.len());
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    atomic_write(path, s.as_bytes())
}

/// Reads a checkpoint's entry lines; `Ok(None)` if the file does not exist.
pub fn read_checkpoint(path: &Path, expected_version: i32) -> Result<Option<Vec<String>>> {
    let malformed = |line: usize, reason: String| StorageError::MalformedCheckpoint {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let meta = match fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("reading metadata of", path)(e)),
    };
    if meta.len() > MAX_CHECKPOINT_BYTES {
        return Err(malformed(
            0,
            format!(
                "file is {} bytes, larger than the {MAX_CHECKPOINT_BYTES} byte limit",
                meta.len()
            ),
        ));
    }
    let raw = fs::read(path).map_err(StorageError::io("reading", path))?;
    let text = String::from_utf8(raw).map_err(|e| malformed(0, format!("not UTF-8: {e}")))?;
    let mut lines = text.split('\n');
    let version_line = lines.next().unwrap_or_default();
    let version: i32 = version_line
        .trim()
        .parse()
        .map_err(|_| malformed(1, format!("version {version_line:?} is not an integer")))?;
    if version != expected_version {
        return Err(malformed(
            1,
            format!("unsupported version {version}, expected {expected_version}"),
        ));
    }
    let count_line = lines
        .next()
        .ok_or_else(|| malformed(2, "missing entry count line".into()))?;
    let count: usize = count_line.trim().parse().map_err(|_| {
        malformed(
            2,
            format!("entry count {count_line:?} is not a non-negative integer"),
        )
    })?;
    // Never pre-allocate from the count field: it is untrusted.
    let mut out = Vec::new();
    for i in 0..count {
        let line_no = i + 3;
        match lines.next() {
            Some(l) if !l.trim().is_empty() => out.push(l.to_string()),
            _ => {
                return Err(malformed(
                    line_no,
                    format!("expected {count} entries but found only {i}"),
                ))
            }
        }
    }
    // Only a trailing newline may follow.
    for (j, rest) in lines.enumerate() {
        if !rest.trim().is_empty() {
            return Err(malformed(
                count + 3 + j,
                format!("expected {count} entries but found more: {rest:?}"),
            ));
        }
    }
    Ok(Some(out))
}

/// Reads the leader-epoch checkpoint; `Ok(None)` if missing. Entries must have non-negative
/// fields, strictly increasing epochs and non-decreasing start offsets.
pub fn read_leader_epoch_checkpoint(path: &Path) -> Result<Option<Vec<EpochEntry>>> {
    let Some(lines) = read_checkpoint(path, CHECKPOINT_VERSION)? else {
        return Ok(None);
    };
    let mut out: Vec<EpochEntry> = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        let line_no = i + 3;
        let malformed = |reason: String| StorageError::MalformedCheckpoint {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let fields: Vec<&str> = l.split_whitespace().collect();
        let [epoch, offset] = fields[..] else {
            return Err(malformed(format!(
                "expected `epoch start_offset`, got {l:?}"
            )));
        };
        let epoch: i32 = epoch
            .parse()
            .map_err(|_| malformed(format!("epoch {epoch:?} is not an i32")))?;
        let start_offset: i64 = offset
            .parse()
            .map_err(|_| malformed(format!("start offset {offset:?} is not an i64")))?;
        if epoch < 0 || start_offset < 0 {
            return Err(malformed(format!("negative epoch or offset in {l:?}")));
        }
        if let Some(prev) = out.last() {
            if epoch <= prev.epoch || start_offset < prev.start_offset {
                return Err(malformed(format!(
                    "entry ({epoch}, {start_offset}) does not follow ({}, {}): epochs must increase and offsets must not decrease",
                    prev.epoch, prev.start_offset
                )));
            }
        }
        out.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    Ok(Some(out))
}

/// Writes the leader-epoch checkpoint atomically.
pub fn write_leader_epoch_checkpoint(path: &Path, entries: &[EpochEntry]) -> Result<()> {
    let lines: Vec<String> = entries
        .iter()
        .map(|e| format!("{} {}", e.epoch, e.start_offset))
        .collect();
    write_checkpoint(path, CHECKPOINT_VERSION, &lines)
}

/// Reads the high-watermark checkpoint; `Ok(None)` if missing.
pub fn read_high_watermark_checkpoint(path: &Path) -> Result<Option<i64>> {
    let Some(lines) = read_checkpoint(path, CHECKPOINT_VERSION)? else {
        return Ok(None);
    };
    let malformed = |line: usize, reason: String| StorageError::MalformedCheckpoint {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let [line] = &lines[..] else {
        return Err(malformed(
            2,
            format!("expected exactly 1 entry, found {}", lines.len()),
        ));
    };
    let hw: i64 = line
        .trim()
        .parse()
        .map_err(|_| malformed(3, format!("high watermark {line:?} is not an i64")))?;
    if hw < 0 {
        return Err(malformed(3, format!("negative high watermark {hw}")));
    }
    Ok(Some(hw))
}

/// Writes the high-watermark checkpoint atomically.
pub fn write_high_watermark_checkpoint(path: &Path, hw: i64) -> Result<()> {
    write_checkpoint(path, CHECKPOINT_VERSION, &[hw.to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    #[test]
    fn leader_epoch_round_trip_and_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        assert_eq!(read_leader_epoch_checkpoint(&p).expect("missing ok"), None);
        let entries = vec![e(0, 0), e(3, 120), e(4, 120)];
        write_leader_epoch_checkpoint(&p, &entries).expect("write");
        assert_eq!(
            fs::read_to_string(&p).expect("read"),
            "0\n3\n0 0\n3 120\n4 120\n"
        );
        assert_eq!(
            read_leader_epoch_checkpoint(&p).expect("read"),
            Some(entries)
        );
        assert!(!tmp_path(&p).exists(), "tmp file renamed away");
        write_leader_epoch_checkpoint(&p, &[]).expect("write empty");
        assert_eq!(
            read_leader_epoch_checkpoint(&p).expect("read"),
            Some(vec![])
        );
    }

    #[test]
    fn high_watermark_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(HIGH_WATERMARK_CHECKPOINT);
        assert_eq!(read_high_watermark_checkpoint(&p).expect("missing"), None);
        write_high_watermark_checkpoint(&p, 42).expect("write");
        assert_eq!(fs::read_to_string(&p).expect("read"), "0\n1\n42\n");
        assert_eq!(read_high_watermark_checkpoint(&p).expect("read"), Some(42));
        write_high_watermark_checkpoint(&p, 7).expect("overwrite");
        assert_eq!(read_high_watermark_checkpoint(&p).expect("read"), Some(7));
    }

    #[test]
    fn accepts_missing_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        fs::write(&p, "0\n1\n5 10").expect("write");
        assert_eq!(
            read_leader_epoch_checkpoint(&p).expect("read"),
            Some(vec![e(5, 10)])
        );
    }

    #[test]
    fn rejects_malformed_files_with_line_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "not an integer"),
            ("1\n0\n", 1, "unsupported version 1"),
            ("0\n", 2, "not a non-negative integer"),
            ("0\nx\n", 2, "not a non-negative integer"),
            ("0\n-1\n", 2, "not a non-negative integer"),
            ("0\n2\n0 0\n", 4, "found only 1"),
            ("0\n99999999999\n", 3, "found only 0"),
            ("0\n1\n0 0\n1 5\n", 4, "found more"),
            ("0\n1\n0 0 0\n", 3, "expected `epoch start_offset`"),
            ("0\n1\nzero 0\n", 3, "not an i32"),
            ("0\n1\n0 -4\n", 3, "negative"),
            ("0\n2\n3 0\n2 5\n", 4, "epochs must increase"),
            ("0\n2\n1 9\n2 5\n", 4, "offsets must not decrease"),
            ("0\n2\n1 9\n\n", 4, "found only 1"),
        ];
        for (content, line, needle) in cases {
            fs::write(&p, content).expect("write");
            let err = read_leader_epoch_checkpoint(&p).expect_err(content);
            match &err {
                StorageError::MalformedCheckpoint {
                    path,
                    line: l,
                    reason,
                } => {
                    assert_eq!(path, &p);
                    assert_eq!(l, line, "{content:?}: {err}");
                    assert!(reason.contains(needle), "{content:?}: {err}");
                }
                other => panic!("{content:?}: unexpected {other}"),
            }
            assert_eq!(err.kafka_error_code(), 56);
        }
        fs::write(&p, [0xff, 0xfe]).expect("write");
        assert!(matches!(
            read_leader_epoch_checkpoint(&p),
            Err(StorageError::MalformedCheckpoint { line: 0, .. })
        ));
    }

    #[test]
    fn rejects_malformed_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join(HIGH_WATERMARK_CHECKPOINT);
        for content in ["0\n2\n1\n2\n", "0\n0\n", "0\n1\n-3\n", "0\n1\nabc\n"] {
            fs::write(&p, content).expect("write");
            assert!(
                matches!(
                    read_high_watermark_checkpoint(&p),
                    Err(StorageError::MalformedCheckpoint { .. })
                ),
                "{content:?}"
            );
        }
    }
}
