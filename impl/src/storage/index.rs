//! The sparse offset index of one segment (`<base>.index`).
//!
//! Kafka's on-disk layout: 8-byte big-endian entries of (offset relative to the segment's
//! base offset: u32, byte position in the `.log` file: u32), one entry roughly every
//! `index_interval_bytes` of log. A lookup takes the last entry at or below the target and
//! scans batch headers forward from there, so the index bounds a read's scan to about one
//! interval without holding an entry per batch.
//!
//! One deliberate difference from Kafka: an entry maps the *base* offset of the batch that
//! starts at `position` (Kafka stores the append's largest offset, a leftover from v0/v1
//! nested message sets). With v2 only, the base offset makes the floor entry land exactly on
//! the batch containing the target more often, and it is equally valid for forward scans.
//!
//! The index is a cache: it is rebuilt for the active segment on every open, and for any
//! closed segment whose file fails the sanity check when first loaded. Closed segments load
//! their index lazily (first read), so opening a log with many segments stays cheap.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::error::{Result, StorageError};

/// Bytes per index entry.
pub(crate) const INDEX_ENTRY_LEN: u64 = 8;

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Base offset of the batch minus the segment's base offset.
    pub(crate) rel_offset: u32,
    /// Byte position of that batch in the `.log` file.
    pub(crate) position: u32,
}

impl IndexEntry {
    fn encode(&self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&self.rel_offset.to_be_bytes());
        b[4..].copy_from_slice(&self.position.to_be_bytes());
        b
    }
}

/// The last entry with `rel_offset <= rel`.
pub(crate) fn floor(entries: &[IndexEntry], rel: u32) -> Option<IndexEntry> {
    let i = entries.partition_point(|e| e.rel_offset <= rel);
    i.checked_sub(1).and_then(|i| entries.get(i)).copied()
}

/// Checks that entries are strictly increasing in both fields and point inside the log.
pub(crate) fn sanity_check(
    entries: &[IndexEntry],
    log_size: u64,
) -> std::result::Result<(), String> {
    for (i, e) in entries.iter().enumerate() {
        if u64::from(e.position) >= log_size {
            return Err(format!(
                "entry {i} points at byte {} but the log has {log_size} bytes",
                e.position
            ));
        }
        if i > 0 {
            let p = entries[i - 1];
            if e.rel_offset <= p.rel_offset || e.position <= p.position {
                return Err(format!(
                    "entry {i} ({e:?}) does not increase over entry {} ({p:?})",
                    i - 1
                ));
            }
        }
    }
    Ok(())
}

/// A segment's index file plus its (lazily loaded) entries.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    path: PathBuf,
    file: File,
    entries: OnceLock<Vec<IndexEntry>>,
    durable_len: u64,
}

impl OffsetIndex {
    fn open_file(path: &Path, truncate: bool) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(path)
            .map_err(StorageError::io("opening index", path))
    }

    /// A fresh, empty index (truncating any leftover file).
    pub(crate) fn create(path: PathBuf) -> Result<OffsetIndex> {
        let file = Self::open_file(&path, true)?;
        let entries = OnceLock::new();
        let _ = entries.set(Vec::new());
        Ok(OffsetIndex {
            path,
            file,
            entries,
            durable_len: 0,
        })
    }

    /// An existing index (created empty if missing); entries load on first use.
    pub(crate) fn open(path: PathBuf) -> Result<OffsetIndex> {
        let file = Self::open_file(&path, false)?;
        let durable_len = file
            .metadata()
            .map_err(StorageError::io("reading metadata of", &path))?
            .len();
        Ok(OffsetIndex {
            path,
            file,
            entries: OnceLock::new(),
            durable_len,
        })
    }

    /// The index file path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Entries if already loaded.
    pub(crate) fn loaded(&self) -> Option<&[IndexEntry]> {
        self.entries.get().map(Vec::as_slice)
    }

    /// Installs loaded entries (first caller wins) and returns them.
    pub(crate) fn set_loaded(&self, entries: Vec<IndexEntry>) -> &[IndexEntry] {
        let _ = self.entries.set(entries);
        self.entries.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// Reads and sanity-checks the file. The outer error is I/O; the inner `Err` explains
    /// why the file's contents are unusable (the caller then rebuilds from the log).
    /// `max_entries` bounds the read (a segment cannot have more entries than batches).
    pub(crate) fn read_file(
        &self,
        log_size: u64,
        max_entries: u64,
    ) -> Result<std::result::Result<Vec<IndexEntry>, String>> {
        let len = self
            .file
            .metadata()
            .map_err(StorageError::io("reading metadata of", &self.path))?
            .len();
        if len % INDEX_ENTRY_LEN != 0 {
            return Ok(Err(format!("length {len} is not a multiple of 8")));
        }
        if len / INDEX_ENTRY_LEN > max_entries {
            return Ok(Err(format!(
                "{} entries cannot index a {log_size} byte log",
                len / INDEX_ENTRY_LEN
            )));
        }
        let mut raw = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut raw, 0)
            .map_err(StorageError::io("reading index", &self.path))?;
        let entries: Vec<IndexEntry> = raw
            .chunks_exact(INDEX_ENTRY_LEN as usize)
            .map(|c| IndexEntry {
                rel_offset: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                position: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        Ok(sanity_check(&entries, log_size).map(|()| entries))
    }

    /// Overwrites the file with `entries` (does not change the in-memory entries).
    pub(crate) fn write_file(&self, entries: &[IndexEntry]) -> Result<()> {
        let mut raw = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN as usize);
        for e in entries {
            raw.extend_from_slice(&e.encode());
        }
        self.file
            .set_len(0)
            .and_then(|()| self.file.write_all_at(&raw, 0))
            .map_err(StorageError::io("rewriting index", &self.path))
    }

    /// Replaces file and memory with `entries`.
    pub(crate) fn replace(&mut self, entries: Vec<IndexEntry>) -> Result<()> {
        self.write_file(&entries)?;
        self.entries = OnceLock::new();
        let _ = self.entries.set(entries);
        Ok(())
    }

    /// Appends one entry (the entries must be loaded). A failed file write is logged, not
    /// returned: the index is a rebuildable cache and a missing entry only lengthens a scan.
    pub(crate) fn append(&mut self, entry: IndexEntry) {
        let Some(entries) = self.entries.get_mut() else {
            return;
        };
        let at = entries.len() as u64 * INDEX_ENTRY_LEN;
        entries.push(entry);
        if let Err(e) = self.file.write_all_at(&entry.encode(), at) {
            tracing::warn!(path = %self.path.display(), error = %e, "failed to append index entry");
        }
    }

    /// Drops entries at or past `log_size` (after the log was truncated there).
    pub(crate) fn truncate_to_log_size(&mut self, log_size: u64) -> Result<()> {
        let Some(entries) = self.entries.get_mut() else {
            return Ok(());
        };
        entries.retain(|e| u64::from(e.position) < log_size);
        let len = entries.len() as u64 * INDEX_ENTRY_LEN;
        self.file
            .set_len(len)
            .and_then(|()| self.file.sync_data())
            .map_err(StorageError::io("truncating index", &self.path))?;
        self.durable_len = len;
        Ok(())
    }

    /// fsyncs the index file.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(StorageError::io("fsyncing", &self.path))?;
        self.durable_len = self
            .file
            .metadata()
            .map_err(StorageError::io("reading metadata of", &self.path))?
            .len();
        Ok(())
    }

    /// Crash simulation: cut the file back to what was last fsynced.
    pub(crate) fn cut_to_durable(&self) -> Result<()> {
        self.file
            .set_len(self.durable_len)
            .map_err(StorageError::io("simulating crash on", &self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ie(rel_offset: u32, position: u32) -> IndexEntry {
        IndexEntry {
            rel_offset,
            position,
        }
    }

    #[test]
    fn floor_lookup() {
        let es = [ie(0, 0), ie(10, 400), ie(25, 900)];
        assert_eq!(floor(&es, 0), Some(ie(0, 0)));
        assert_eq!(floor(&es, 9), Some(ie(0, 0)));
        assert_eq!(floor(&es, 10), Some(ie(10, 400)));
        assert_eq!(floor(&es, 1000), Some(ie(25, 900)));
        assert_eq!(floor(&es[1..], 3), None);
        assert_eq!(floor(&[], 3), None);
    }

    #[test]
    fn file_round_trip_and_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("00000000000000000000.index");
        let mut idx = OffsetIndex::create(p.clone()).expect("create");
        idx.append(ie(3, 100));
        idx.append(ie(9, 300));
        idx.sync().expect("sync");
        assert_eq!(std::fs::metadata(&p).expect("meta").len(), 16);
        let reopened = OffsetIndex::open(p.clone()).expect("open");
        assert!(reopened.loaded().is_none(), "lazy");
        let es = reopened.read_file(1000, 100).expect("io").expect("sane");
        assert_eq!(es, vec![ie(3, 100), ie(9, 300)]);
        assert_eq!(reopened.set_loaded(es).len(), 2);
        let mut idx = reopened;
        idx.truncate_to_log_size(300).expect("truncate");
        assert_eq!(idx.loaded(), Some(&[ie(3, 100)][..]));
        assert_eq!(std::fs::metadata(&p).expect("meta").len(), 8);
    }

    #[test]
    fn rejects_insane_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.index");
        let idx = OffsetIndex::create(p.clone()).expect("create");
        std::fs::write(&p, [0u8; 7]).expect("write");
        assert!(idx.read_file(100, 100).expect("io").is_err());
        idx.write_file(&[ie(5, 50), ie(4, 60)]).expect("write");
        let why = idx
            .read_file(100, 100)
            .expect("io")
            .expect_err("non-monotonic");
        assert!(why.contains("does not increase"), "{why}");
        idx.write_file(&[ie(5, 500)]).expect("write");
        assert!(
            idx.read_file(100, 100).expect("io").is_err(),
            "points past log end"
        );
        idx.write_file(&[ie(1, 1), ie(2, 2)]).expect("write");
        assert!(
            idx.read_file(100, 1).expect("io").is_err(),
            "too many entries"
        );
    }
}
