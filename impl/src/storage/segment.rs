//! One log segment: `<base offset, 20 digits>.log` plus its sparse `.index`.
//!
//! A segment knows its byte size, how much of it is known durable (fsynced), and how to
//! find, read, recover and cut batches — by walking 61-byte headers (recovery also walks the
//! records of uncompressed batches, see [`super::validate`]).
//! All file access is positioned (`pread`/`pwrite`), so a reader never disturbs a writer's
//! cursor and a failed write can simply be overwritten by the next one.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;

use super::batch::{check_header, BatchHeader, BATCH_HEADER_LEN};
use super::error::{Result, StorageError};
use super::index::{self, IndexEntry, OffsetIndex};
use super::validate::check_stored_records;

/// Extension of segment data files.
pub const LOG_SUFFIX: &str = ".log";
/// Extension of segment index files.
pub const INDEX_SUFFIX: &str = ".index";
/// Kafka's "no timestamp".
pub const NO_TIMESTAMP: i64 = -1;

/// Chunk size for header scans and streaming CRC checks.
const SCAN_CHUNK: usize = 64 * 1024;

/// `00000000000000000042` for 42 (Kafka's zero-padded file names).
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// Parses a segment file name (`<20 digits>.log`) into its base offset.
pub fn parse_log_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(LOG_SUFFIX)?;
    parse_stem(stem)
}

/// Parses an index file name (`<20 digits>.index`) into its base offset.
pub fn parse_index_file_name(name: &str) -> Option<i64> {
    let stem = name.strip_suffix(INDEX_SUFFIX)?;
    parse_stem(stem)
}

fn parse_stem(stem: &str) -> Option<i64> {
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// What recovery found in a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    /// Offset after the last valid batch.
    pub(crate) next_offset: i64,
    /// Bytes cut from the tail.
    pub(crate) truncated_bytes: u64,
    /// Why the tail was cut, if it was.
    pub(crate) reason: Option<String>,
}

/// Result of walking headers through an in-memory window.
enum Walk {
    /// Target batch at this offset in the window.
    Found(usize, BatchHeader),
    /// Window ended before the target; continue from this file position.
    NeedMore(u64),
    /// Segment ended without a batch containing the target.
    NotFound,
}

/// Sequential `Read` over a file from a position, via `pread`.
/// Computes the CRC-32C of everything read through it, and keeps the first I/O error (a
/// failing disk is an error to report, not a corrupt batch to cut).
struct CrcReader<R: Read> {
    inner: R,
    crc: u32,
    io_error: Option<std::io::Error>,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
                Ok(n)
            }
            Err(e) => {
                let copy = std::io::Error::new(e.kind(), e.to_string());
                if self.io_error.is_none() {
                    self.io_error = Some(e);
                }
                Err(copy)
            }
        }
    }
}

struct PosReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PosReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One segment's files and bookkeeping.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    log: File,
    index: OffsetIndex,
    index_interval: u64,
    /// Valid bytes (the file may be longer only transiently, after a failed write).
    size: u64,
    /// Bytes known to be on stable storage.
    durable_size: u64,
    /// Log bytes appended since the last index entry.
    bytes_since_index_entry: u64,
    /// Largest batch max timestamp; computed lazily for segments loaded from disk.
    max_timestamp: OnceLock<i64>,
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf) {
        let stem = file_stem(base_offset);
        (
            dir.join(format!("{stem}{LOG_SUFFIX}")),
            dir.join(format!("{stem}{INDEX_SUFFIX}")),
        )
    }

    fn open_log(path: &Path, truncate: bool) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(truncate)
            .open(path)
            .map_err(StorageError::io("opening segment", path))
    }

    /// Creates an empty segment at `base_offset` (replacing leftover files of that name).
    /// The caller fsyncs the directory.
    pub(crate) fn create(dir: &Path, base_offset: i64, index_interval: u64) -> Result<Segment> {
        let (log_path, index_path) = Self::paths(dir, base_offset);
        let log = Self::open_log(&log_path, true)?;
        let index = OffsetIndex::create(index_path)?;
        let max_timestamp = OnceLock::new();
        let _ = max_timestamp.set(NO_TIMESTAMP);
        Ok(Segment {
            base_offset,
            log_path,
            log,
            index,
            index_interval,
            size: 0,
            durable_size: 0,
            bytes_since_index_entry: 0,
            max_timestamp,
        })
    }

    /// Opens an existing segment without reading it (index and max timestamp are lazy).
    /// Its bytes are assumed durable: segments are fsynced when rolled.
    pub(crate) fn open(dir: &Path, base_offset: i64, index_interval: u64) -> Result<Segment> {
        let (log_path, index_path) = Self::paths(dir, base_offset);
        let log = Self::open_log(&log_path, false)?;
        let size = log
            .metadata()
            .map_err(StorageError::io("reading metadata of", &log_path))?
            .len();
        let index = OffsetIndex::open(index_path)?;
        Ok(Segment {
            base_offset,
            log_path,
            log,
            index,
            index_interval,
            size,
            durable_size: size,
            bytes_since_index_entry: 0,
            max_timestamp: OnceLock::new(),
        })
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn corrupt(&self, position: u64, reason: impl Into<String>) -> StorageError {
        StorageError::CorruptSegment {
            path: self.log_path.clone(),
            position,
            reason: reason.into(),
        }
    }

    /// Parses and structurally checks the header at `buf` (file position `pos`); any
    /// problem inside the committed region is corruption of data we already accepted.
    fn header_at(&self, buf: &[u8], pos: u64) -> Result<BatchHeader> {
        check_header(buf, pos, u64::MAX, self.size.saturating_sub(pos))
            .map_err(|e| self.corrupt(pos, e.to_string()))
    }

    fn read_exact_at(&self, pos: u64, len: u64) -> Result<Vec<u8>> {
        // `len` is always bounded by the segment size by callers.
        let mut buf = vec![0u8; len as usize];
        self.log
            .read_exact_at(&mut buf, pos)
            .map_err(StorageError::io("reading segment", &self.log_path))?;
        Ok(buf)
    }

    /// Walks every batch header in `[from, size)`, calling `f(position, header)`.
    fn scan_headers(
        &self,
        from: u64,
        mut f: impl FnMut(u64, &BatchHeader) -> std::ops::ControlFlow<()>,
    ) -> Result<()> {
        let mut pos = from;
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_start = 0u64;
        while pos < self.size {
            let in_chunk = pos >= chunk_start
                && pos + BATCH_HEADER_LEN as u64 <= chunk_start + chunk.len() as u64;
            if !in_chunk {
                let len = (self.size - pos).min(SCAN_CHUNK as u64);
                chunk = self.read_exact_at(pos, len)?;
                chunk_start = pos;
            }
            let rel = (pos - chunk_start) as usize;
            let h = self.header_at(chunk.get(rel..).unwrap_or_default(), pos)?;
            if f(pos, &h).is_break() {
                return Ok(());
            }
            pos += h.size();
        }
        Ok(())
    }

    /// Index entries, loading (and if needed rebuilding) them on first use.
    fn index_entries(&self) -> Result<&[IndexEntry]> {
        if let Some(es) = self.index.loaded() {
            return Ok(es);
        }
        let max_entries = self.size / BATCH_HEADER_LEN as u64 + 1;
        let entries = match self.index.read_file(self.size, max_entries)? {
            Ok(es) => es,
            Err(why) => {
                tracing::warn!(
                    path = %self.index.path().display(),
                    reason = %why,
                    "rebuilding corrupt offset index"
                );
                let es = self.rebuild_index_entries()?;
                self.index.write_file(&es)?;
                es
            }
        };
        Ok(self.index.set_loaded(entries))
    }

    /// Recomputes sparse index entries from the log with the append-time rule.
    fn rebuild_index_entries(&self) -> Result<Vec<IndexEntry>> {
        let mut entries = Vec::new();
        let mut since = 0u64;
        let base = self.base_offset;
        let interval = self.index_interval;
        self.scan_headers(0, |pos, h| {
            if since >= interval {
                if let Some(e) = entry_for(base, h.base_offset, pos) {
                    entries.push(e);
                }
                since = 0;
            }
            since += h.size();
            std::ops::ControlFlow::Continue(())
        })?;
        Ok(entries)
    }

    /// Largest batch `maxTimestamp` in the segment ([`NO_TIMESTAMP`] if empty).
    pub(crate) fn max_timestamp(&self) -> Result<i64> {
        if let Some(&t) = self.max_timestamp.get() {
            return Ok(t);
        }
        let mut max = NO_TIMESTAMP;
        self.scan_headers(0, |_, h| {
            max = max.max(h.max_timestamp);
            std::ops::ControlFlow::Continue(())
        })?;
        let _ = self.max_timestamp.set(max);
        Ok(max)
    }

    /// Calls `f` for every batch header (for rebuilding the epoch cache).
    pub(crate) fn for_each_header(&self, mut f: impl FnMut(&BatchHeader)) -> Result<()> {
        self.scan_headers(0, |_, h| {
            f(h);
            std::ops::ControlFlow::Continue(())
        })
    }

    /// The offset after the segment's last batch (its base offset when empty), found by
    /// walking headers from the last index entry, so that opening a log can check that each
    /// sealed segment ends where the next one begins without reading whole segments. The
    /// batch at the index entry must carry the offset the entry names; a header that does
    /// not parse, or a batch cut short by the end of the file, is corruption.
    pub(crate) fn next_offset(&self) -> Result<i64> {
        let (start, expect) = match self.index_entries()?.last() {
            Some(e) => (
                u64::from(e.position),
                Some(self.base_offset + i64::from(e.rel_offset)),
            ),
            None => (0, None),
        };
        let mut next = self.base_offset;
        let mut mismatch = None;
        self.scan_headers(start, |pos, h| {
            if pos == start && expect.is_some_and(|x| x != h.base_offset) {
                mismatch = Some((pos, expect.unwrap_or_default(), h.base_offset));
                return std::ops::ControlFlow::Break(());
            }
            next = h.next_offset();
            std::ops::ControlFlow::Continue(())
        })?;
        if let Some((pos, expected, found)) = mismatch {
            return Err(self.index_mismatch(pos, expected, found));
        }
        Ok(next)
    }

    /// Index floor for `target`: (file position, expected base offset there).
    fn seek(&self, target: i64) -> Result<(u64, Option<i64>)> {
        let rel = u32::try_from((target - self.base_offset).max(0)).unwrap_or(u32::MAX);
        Ok(match index::floor(self.index_entries()?, rel) {
            Some(e) => (
                u64::from(e.position),
                Some(self.base_offset + i64::from(e.rel_offset)),
            ),
            None => (0, None),
        })
    }

    /// The first batch whose last offset is `>= target`, with its file position.
    pub(crate) fn locate(&self, target: i64) -> Result<Option<(u64, BatchHeader)>> {
        let (start, expect) = self.seek(target)?;
        self.locate_from(start, expect, target)
    }

    /// Like [`Self::locate`], scanning from file position `start`, where a batch with base
    /// offset `expect` (if given) must begin.
    fn locate_from(
        &self,
        start: u64,
        expect: Option<i64>,
        target: i64,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let mut found = None;
        let mut first = true;
        let mut mismatch = None;
        self.scan_headers(start, |pos, h| {
            if first {
                first = false;
                if let Some(exp) = expect.filter(|&e| e != h.base_offset) {
                    mismatch = Some((pos, exp, h.base_offset));
                    return std::ops::ControlFlow::Break(());
                }
            }
            if h.last_offset() >= target {
                found = Some((pos, *h));
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            }
        })?;
        if let Some((pos, exp, got)) = mismatch {
            return Err(self.index_mismatch(pos, exp, got));
        }
        Ok(found)
    }

    fn index_mismatch(&self, pos: u64, expected: i64, found: i64) -> StorageError {
        self.corrupt(
            pos,
            format!("offset index points at a batch with base offset {found}, expected {expected}"),
        )
    }

    /// Walks headers in `buf` (which starts at file position `start`) to the batch holding
    /// `target`.
    fn walk(&self, buf: &[u8], start: u64, target: i64, expect: Option<i64>) -> Result<Walk> {
        let mut q = 0usize;
        loop {
            let fp = start + q as u64;
            if fp >= self.size {
                return Ok(Walk::NotFound);
            }
            if q + BATCH_HEADER_LEN > buf.len() {
                return Ok(Walk::NeedMore(fp));
            }
            let h = self.header_at(buf.get(q..).unwrap_or_default(), fp)?;
            if q == 0 {
                if let Some(exp) = expect.filter(|&e| e != h.base_offset) {
                    return Err(self.index_mismatch(fp, exp, h.base_offset));
                }
            }
            if h.last_offset() >= target {
                return Ok(Walk::Found(q, h));
            }
            q += h.size() as usize;
        }
    }

    /// Length of the whole batches at the start of `buf` (file position `pos`) to return
    /// for a `max_bytes` read — always at least the first batch — and whether that answer
    /// is final (`false`: the window ended before the limit or the segment end).
    fn whole_batches(&self, buf: &[u8], pos: u64, max_bytes: u64) -> Result<(usize, bool)> {
        let mut q = 0usize;
        loop {
            let fp = pos + q as u64;
            if fp >= self.size {
                return Ok((q, true));
            }
            if q + BATCH_HEADER_LEN > buf.len() {
                return Ok((q, false));
            }
            let h = self.header_at(buf.get(q..).unwrap_or_default(), fp)?;
            let end = q as u64 + h.size();
            if q > 0 && end > max_bytes {
                return Ok((q, true));
            }
            if end > buf.len() as u64 {
                return Ok((q, false));
            }
            q = end as usize;
        }
    }

    /// Whole batches starting at the batch containing `target`, up to `max_bytes` (at
    /// least one batch). Common case: one `pread` covering the index gap plus `max_bytes`.
    pub(crate) fn read_from(&self, target: i64, max_bytes: usize) -> Result<Bytes> {
        let (start, expect) = self.seek(target)?;
        if start >= self.size {
            return Ok(Bytes::new());
        }
        let max_bytes = max_bytes as u64;
        let slack = self.index_interval.saturating_mul(2) + 2 * BATCH_HEADER_LEN as u64;
        let window = (self.size - start).min(slack.saturating_add(max_bytes));
        let buf = self.read_exact_at(start, window)?;
        let (pos, header, first_buf) = match self.walk(&buf, start, target, expect)? {
            Walk::NotFound => return Ok(Bytes::new()),
            Walk::Found(q, h) => (start + q as u64, h, Some(buf)),
            Walk::NeedMore(fp) => match self.locate_from(fp, None, target)? {
                Some((p, h)) => (p, h, None),
                None => return Ok(Bytes::new()),
            },
        };
        if let Some(buf) = first_buf {
            let rel = (pos - start) as usize;
            let (len, done) =
                self.whole_batches(buf.get(rel..).unwrap_or_default(), pos, max_bytes)?;
            if done && len > 0 {
                return Ok(Bytes::from(buf).slice(rel..rel + len));
            }
        }
        let want = (self.size - pos).min(max_bytes.max(header.size()));
        let buf = self.read_exact_at(pos, want)?;
        let (len, _) = self.whole_batches(&buf, pos, max_bytes)?;
        let mut out = Bytes::from(buf);
        out.truncate(len);
        Ok(out)
    }

    /// Appends already-validated batches. `batches` lists each batch's
    /// (position within `data`, base offset, size, max timestamp).
    pub(crate) fn append(&mut self, data: &[u8], batches: &[(u64, i64, u64, i64)]) -> Result<()> {
        let start = self.size;
        if let Err(e) = self.log.write_all_at(data, start) {
            // Best effort: drop a partial write so the file matches `size` again.
            let _ = self.log.set_len(start);
            return Err(StorageError::io("appending to segment", &self.log_path)(e));
        }
        for &(rel_pos, base_offset, size, max_ts) in batches {
            let pos = start + rel_pos;
            if self.bytes_since_index_entry >= self.index_interval {
                if let Some(e) = entry_for(self.base_offset, base_offset, pos) {
                    self.index.append(e);
                }
                self.bytes_since_index_entry = 0;
            }
            self.bytes_since_index_entry += size;
            if let Some(m) = self.max_timestamp.get_mut() {
                *m = (*m).max(max_ts);
            }
        }
        self.size += data.len() as u64;
        Ok(())
    }

    /// fsyncs the log file (not the index: the active index is rebuilt on recovery).
    pub(crate) fn flush_log(&mut self) -> Result<()> {
        if self.durable_size == self.size {
            return Ok(());
        }
        self.log
            .sync_data()
            .map_err(StorageError::io("fsyncing", &self.log_path))?;
        self.durable_size = self.size;
        Ok(())
    }

    /// fsyncs log and index (on roll and close).
    pub(crate) fn flush_all(&mut self) -> Result<()> {
        self.flush_log()?;
        self.index.sync()
    }

    /// Cuts the segment at byte `position` (a batch boundary) and makes the cut durable.
    pub(crate) fn truncate_to_position(&mut self, position: u64) -> Result<()> {
        self.index_entries()?;
        self.log
            .set_len(position)
            .and_then(|()| self.log.sync_data())
            .map_err(StorageError::io("truncating segment", &self.log_path))?;
        self.size = position;
        self.durable_size = position;
        self.index.truncate_to_log_size(position)?;
        let last_entry_pos = self
            .index
            .loaded()
            .and_then(|es| es.last())
            .map_or(0, |e| u64::from(e.position));
        self.bytes_since_index_entry = position.saturating_sub(last_entry_pos);
        // Batches were removed: recompute lazily.
        self.max_timestamp = OnceLock::new();
        Ok(())
    }

    /// Scans the whole file, validating every batch (length, magic, counts, CRC-32C, the
    /// records of uncompressed batches, and offset continuity from the segment's base
    /// offset), cuts the file at the first
    /// invalid or torn batch, rebuilds the index and makes the result durable. `on_batch`
    /// sees each valid batch header in order. The CRC is computed in streaming fashion, so
    /// no allocation depends on a length field.
    pub(crate) fn recover(
        &mut self,
        mut on_batch: impl FnMut(&BatchHeader),
    ) -> Result<RecoveryReport> {
        let file_len = self
            .log
            .metadata()
            .map_err(StorageError::io("reading metadata of", &self.log_path))?
            .len();
        let io_err = StorageError::io("recovering segment", &self.log_path);
        let mut reader = BufReader::with_capacity(
            SCAN_CHUNK * 4,
            PosReader {
                file: &self.log,
                pos: 0,
            },
        );
        let mut pos = 0u64;
        let mut expected = self.base_offset;
        let mut entries = Vec::new();
        let mut since = 0u64;
        let mut max_ts = NO_TIMESTAMP;
        let mut hdr = [0u8; BATCH_HEADER_LEN];
        let mut chunk = vec![0u8; SCAN_CHUNK];
        let mut reason = None;
        let mut io_failure = None;
        while pos < file_len {
            let avail = file_len - pos;
            let n = (avail as usize).min(BATCH_HEADER_LEN);
            if let Err(e) = reader.read_exact(&mut hdr[..n]) {
                io_failure = Some(e);
                break;
            }
            let h = match check_header(&hdr[..n], pos, u64::MAX, avail) {
                Ok(h) => h,
                Err(e) => {
                    reason = Some(e.to_string());
                    break;
                }
            };
            if h.base_offset != expected {
                reason = Some(format!(
                    "batch at byte {pos} has base offset {}, expected {expected}",
                    h.base_offset
                ));
                break;
            }
            if h.last_offset() - self.base_offset > i64::from(u32::MAX) {
                reason = Some(format!(
                    "batch at byte {pos} ends at offset {}, too far from the segment base {}",
                    h.last_offset(),
                    self.base_offset
                ));
                break;
            }
            // One pass over the body: the CRC of every byte, and (uncompressed batches) the
            // record walk of the validator, so a batch whose records do not add up is cut
            // like one with a bad CRC.
            let mut body = CrcReader {
                inner: (&mut reader).take(h.size() - BATCH_HEADER_LEN as u64),
                crc: crc32c::crc32c(&hdr[21..]),
                io_error: None,
            };
            let records = check_stored_records(BufReader::with_capacity(SCAN_CHUNK, &mut body), &h);
            loop {
                match body.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            if let Some(e) = body.io_error.take() {
                io_failure = Some(e);
                break;
            }
            let crc = body.crc;
            if crc != h.crc {
                reason = Some(
                    StorageError::CrcMismatch {
                        position: pos,
                        stored: h.crc,
                        computed: crc,
                    }
                    .to_string(),
                );
                break;
            }
            if let Err(e) = records {
                reason = Some(format!("batch at byte {pos} has invalid records: {e}"));
                break;
            }
            if since >= self.index_interval {
                if let Some(e) = entry_for(self.base_offset, h.base_offset, pos) {
                    entries.push(e);
                }
                since = 0;
            }
            since += h.size();
            max_ts = max_ts.max(h.max_timestamp);
            on_batch(&h);
            expected = h.next_offset();
            pos += h.size();
        }
        drop(reader);
        if let Some(e) = io_failure {
            return Err(io_err(e));
        }
        if pos < file_len {
            tracing::warn!(
                path = %self.log_path.display(),
                position = pos,
                cut_bytes = file_len - pos,
                reason = reason.as_deref().unwrap_or("unknown"),
                "truncating invalid tail of segment during recovery"
            );
            self.log
                .set_len(pos)
                .map_err(StorageError::io("truncating segment", &self.log_path))?;
        }
        self.log
            .sync_all()
            .map_err(StorageError::io("fsyncing", &self.log_path))?;
        self.size = pos;
        self.durable_size = pos;
        self.bytes_since_index_entry = since;
        self.max_timestamp = OnceLock::new();
        let _ = self.max_timestamp.set(max_ts);
        self.index.replace(entries)?;
        self.index.sync()?;
        Ok(RecoveryReport {
            next_offset: expected,
            truncated_bytes: file_len - pos,
            reason,
        })
    }

    /// Deletes both files.
    pub(crate) fn delete(self) -> Result<()> {
        let index_path = self.index.path().to_path_buf();
        drop(self.index);
        drop(self.log);
        remove_if_exists(&self.log_path)?;
        remove_if_exists(&index_path)
    }

    /// Crash simulation: cut both files back to their last fsynced length.
    pub(crate) fn cut_to_durable(&self) -> Result<()> {
        self.log
            .set_len(self.durable_size)
            .map_err(StorageError::io("simulating crash on", &self.log_path))?;
        self.index.cut_to_durable()
    }
}

/// Removes a file, treating "already gone" as success.
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io("deleting", path)(e)),
    }
}

/// An index entry for a batch, if its relative offset and position fit in 32 bits.
fn entry_for(segment_base: i64, batch_base: i64, pos: u64) -> Option<IndexEntry> {
    Some(IndexEntry {
        rel_offset: u32::try_from(batch_base - segment_base).ok()?,
        position: u32::try_from(pos).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{BatchView, BatchesMut};
    use crate::storage::builder::BatchBuilder;

    #[test]
    fn file_names_round_trip() {
        assert_eq!(file_stem(42), "00000000000000000042");
        assert_eq!(parse_log_file_name("00000000000000000042.log"), Some(42));
        assert_eq!(
            parse_index_file_name("00000000000000000042.index"),
            Some(42)
        );
        assert_eq!(parse_log_file_name("0042.log"), None);
        assert_eq!(parse_log_file_name("0000000000000000004x.log"), None);
        assert_eq!(parse_log_file_name("00000000000000000042.index"), None);
        assert_eq!(
            parse_log_file_name("99999999999999999999.log"),
            None,
            "overflows i64"
        );
    }

    /// Writes `n` one-record batches with consecutive offsets from `base` into a segment.
    fn fill(seg: &mut Segment, base: i64, n: i64) -> Vec<(u64, i64)> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut b = BatchBuilder::new(100 + i)
                .record(100 + i, None, Some(&[i as u8; 40]))
                .build();
            for item in BatchesMut::new(&mut b, u64::MAX) {
                let (_, mut v) = item.expect("valid");
                v.set_base_offset(base + i);
            }
            out.push((seg.size(), base + i));
            let size = b.len() as u64;
            seg.append(&b, &[(0, base + i, size, 100 + i)])
                .expect("append");
        }
        out
    }

    #[test]
    fn locate_read_and_lazy_index_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 10, 200).expect("create");
        let positions = fill(&mut seg, 10, 30);
        seg.flush_all().expect("flush");
        assert!(!seg.index.loaded().expect("active index loaded").is_empty());
        for &(pos, off) in &positions {
            let (p, h) = seg.locate(off).expect("locate").expect("found");
            assert_eq!((p, h.base_offset), (pos, off));
            let bytes = seg.read_from(off, 0).expect("read");
            let b = crate::storage::batch::Batches::new(bytes.clone())
                .next()
                .expect("one")
                .expect("valid");
            assert_eq!(b.base_offset(), off);
            assert_eq!(
                bytes.len(),
                b.size_in_bytes(),
                "max_bytes 0 still returns one batch"
            );
        }
        assert_eq!(seg.max_timestamp().expect("ts"), 129);
        // Corrupt the index file; a reopened segment rebuilds it on first use.
        std::fs::write(seg.index.path(), [1u8; 13]).expect("clobber");
        let seg2 = Segment::open(dir.path(), 10, 200).expect("open");
        let (p, _) = seg2.locate(35).expect("locate").expect("found");
        assert_eq!(p, positions[25].0);
        assert_eq!(seg2.max_timestamp().expect("ts"), 129, "lazily scanned");
        assert_eq!(
            std::fs::metadata(seg2.index.path()).expect("meta").len()
                % crate::storage::index::INDEX_ENTRY_LEN,
            0,
            "rewritten"
        );
    }

    #[test]
    fn recovery_cuts_torn_tail_and_rebuilds_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 0, 100).expect("create");
        let positions = fill(&mut seg, 0, 5);
        let full = seg.size();
        seg.log.set_len(full - 3).expect("tear");
        drop(seg);
        let mut seg = Segment::open(dir.path(), 0, 100).expect("open");
        let mut seen = Vec::new();
        let report = seg.recover(|h| seen.push(h.base_offset)).expect("recover");
        assert_eq!(report.next_offset, 4);
        assert_eq!(seen, vec![0, 1, 2, 3]);
        assert_eq!(seg.size(), positions[4].0);
        assert_eq!(report.truncated_bytes, full - 3 - positions[4].0);
        assert!(report.reason.expect("reason").contains("declares"));
        assert_eq!(
            std::fs::metadata(seg.log_path()).expect("meta").len(),
            positions[4].0
        );
    }

    #[test]
    fn recovery_cuts_a_batch_whose_records_do_not_add_up() {
        // A CRC-valid batch that claims more records than it holds is corruption too.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 0, 100).expect("create");
        let positions = fill(&mut seg, 0, 3);
        let good_end = seg.size();
        let mut bad = BatchBuilder::new(0)
            .base_offset(3)
            .record(0, None, Some(b"one"))
            .build();
        bad[23..27].copy_from_slice(&4i32.to_be_bytes());
        bad[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = crc32c::crc32c(&bad[21..]);
        bad[17..21].copy_from_slice(&crc.to_be_bytes());
        seg.append(&bad, &[(0, 3, bad.len() as u64, 0)])
            .expect("append");
        // A compressed batch is not decompressed at recovery; a well-formed one survives.
        let mut zipped = BatchBuilder::new(0)
            .compression(crate::storage::Compression::Gzip)
            .record(0, None, Some(b"z"))
            .build();
        for item in BatchesMut::new(&mut zipped, u64::MAX) {
            item.expect("valid").1.set_base_offset(3);
        }
        drop(seg);
        let mut seg = Segment::open(dir.path(), 0, 100).expect("open");
        let report = seg.recover(|_| {}).expect("recover");
        assert_eq!(report.next_offset, 3);
        assert_eq!(seg.size(), good_end);
        assert!(
            report.reason.expect("reason").contains("invalid records"),
            "cut for its records"
        );
        assert_eq!(positions.len(), 3);
        let size = zipped.len() as u64;
        seg.append(&zipped, &[(0, 3, size, 0)]).expect("append");
        drop(seg);
        let mut seg = Segment::open(dir.path(), 0, 100).expect("open");
        let report = seg.recover(|_| {}).expect("recover");
        assert_eq!(report.next_offset, 4, "{:?}", report.reason);
    }
}
