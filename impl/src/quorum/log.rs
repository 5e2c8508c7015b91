//! What the quorum core knows of the local metadata log: where each leader epoch starts,
//! the log end offset, and how much of it is flushed. The records themselves stay in the
//! driver's storage; the core only needs offsets and epochs to run elections (Vote's last
//! epoch and end offset), to find divergence (Fetch's last fetched epoch), and to count the
//! high watermark.
//!
//! With snapshots (KIP-630) the log may start after offset 0: everything below the log start
//! offset is summarised by the latest snapshot, whose id (end offset, epoch) stands in for the
//! missing prefix. When the log holds no entry at all past its start, the last epoch and the
//! end offset are the snapshot's, so Vote's and Fetch's comparisons stay right.

/// A snapshot's id (KIP-630's `SnapshotId`): it holds the state of every entry below
/// `end_offset`, the last of which has epoch `epoch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    pub end_offset: i64,
    pub epoch: i32,
}

/// The epochs and offsets of a log (the model's `Log`, without payloads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// `(epoch, start offset)` for each epoch present in the log, in increasing order (the
    /// leader epoch cache).
    epochs: Vec<(i32, i64)>,
    end_offset: i64,
    flushed: i64,
    /// The log start offset: entries below it are gone (covered by `snapshot`).
    start_offset: i64,
    /// The latest snapshot this replica holds.
    snapshot: Option<SnapshotId>,
}

impl LogSummary {
    /// A summary of an existing log: its epoch cache, log end offset and flushed offset.
    pub fn new(epochs: Vec<(i32, i64)>, end_offset: i64, flushed: i64) -> LogSummary {
        let mut s = LogSummary {
            epochs,
            end_offset,
            flushed: flushed.min(end_offset),
            start_offset: 0,
            snapshot: None,
        };
        s.epochs.retain(|&(_, start)| start < end_offset);
        s
    }

    /// The same log, starting at `start_offset`, with `snapshot` its latest snapshot (a
    /// restarted voter's log after snapshots moved its start). The epochs are cut to the
    /// log start as Kafka's `truncateFromStart` does.
    /// A log that ends before the snapshot (a crash lost its tail, or came while a fetched
    /// snapshot was being installed) restarts at the snapshot's end, as the driver restarts
    /// its stored log there.
    pub fn with_snapshot(mut self, start_offset: i64, snapshot: Option<SnapshotId>) -> LogSummary {
        match snapshot {
            Some(id) if id.end_offset > self.end_offset => self.install_snapshot(id),
            _ => {
                self.snapshot = snapshot;
                self.advance_start(start_offset);
            }
        }
        self
    }

    /// The log start offset: the first offset the log still holds (0 before any snapshot).
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// The latest snapshot's id, if any.
    pub fn snapshot(&self) -> Option<SnapshotId> {
        self.snapshot
    }

    /// The log end offset: the offset the next record gets.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// The prefix that survives a crash.
    pub fn flushed(&self) -> i64 {
        self.flushed
    }

    /// The epoch of the last entry, 0 for an empty log (Vote's last epoch, Fetch's last
    /// fetched epoch); the snapshot's epoch when the log holds nothing past the snapshot.
    pub fn last_epoch(&self) -> i32 {
        match (self.epochs.last(), self.snapshot) {
            (Some(&(e, _)), _) => e,
            (None, Some(s)) => s.epoch,
            (None, None) => 0,
        }
    }

    /// The `(epoch, start offset)` pairs.
    pub fn epochs(&self) -> &[(i32, i64)] {
        &self.epochs
    }

    /// The epoch of the entry at `offset`, if it is in the log.
    /// Below the log start only the snapshot's last entry is known.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        if offset < 0 || offset >= self.end_offset {
            return None;
        }
        if offset < self.start_offset {
            return self
                .snapshot
                .filter(|s| s.end_offset == offset + 1)
                .map(|s| s.epoch);
        }
        self.epochs
            .iter()
            .rev()
            .find(|&&(_, start)| start <= offset)
            .map(|&(e, _)| e)
    }

    /// KIP-595's end offset for an epoch: the largest epoch in the log at most `epoch`, and
    /// the offset just past its last entry; `(0, 0)` when there is none (the model's
    /// `Log::end_offset_for_epoch`). When no epoch of the log is at most `epoch` but the
    /// snapshot's is, the log starts at the snapshot's end: the answer is the snapshot's id.
    /// An answer below [`LogSummary::start_offset`] means "below the log start" (the leader
    /// answers such a fetch with its snapshot).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let Some(i) = self.epochs.iter().rposition(|&(e, _)| e <= epoch) else {
            return match self.snapshot {
                Some(s) if s.epoch <= epoch && s.end_offset >= self.start_offset => {
                    (s.epoch, s.end_offset)
                }
                _ => (0, 0),
            };
        };
        let end = self
            .epochs
            .get(i + 1)
            .map_or(self.end_offset, |&(_, start)| start);
        (self.epochs[i].0, end)
    }

    /// `count` entries of `epoch` were appended at the end.
    pub fn append(&mut self, epoch: i32, count: i64) {
        if count <= 0 {
            return;
        }
        if self.last_epoch() != epoch || self.epochs.is_empty() {
            self.epochs.push((epoch, self.end_offset));
        }
        self.end_offset += count;
    }

    /// The log was cut to end at `end`.
    /// Never below the log start: what is there is committed and in the snapshot.
    pub fn truncate(&mut self, end: i64) {
        if end >= self.end_offset {
            return;
        }
        let end = end.max(self.start_offset);
        self.end_offset = end.max(0);
        self.flushed = self.flushed.min(self.end_offset);
        self.epochs.retain(|&(_, start)| start < end);
    }

    /// Everything up to `offset` is on disk.
    pub fn flush(&mut self, offset: i64) {
        self.flushed = offset.clamp(self.flushed, self.end_offset);
    }

    /// A snapshot of the entries below `id.end_offset` was written (that prefix is in the
    /// log and committed). Older snapshots are superseded; the log start does not move.
    pub fn snapshot_taken(&mut self, id: SnapshotId) {
        if id.end_offset <= self.end_offset && self.snapshot.is_none_or(|s| s < id) {
            self.snapshot = Some(id);
        }
    }

    /// Entries below `offset` were deleted (whole segments below the latest snapshot's end):
    /// the log start moves up, never past the snapshot's end nor the log end, and the
    /// epoch that covers the new start starts there (Kafka's `truncateFromStart`).
    pub fn advance_start(&mut self, offset: i64) {
        let limit = self
            .snapshot
            .map_or(0, |s| s.end_offset)
            .min(self.end_offset);
        let start = offset.min(limit);
        if start <= self.start_offset {
            return;
        }
        let n = self.epochs.partition_point(|&(_, s)| s <= start);
        if let Some(i) = n.checked_sub(1) {
            let covering = self.epochs[i].0;
            self.epochs.drain(..n);
            if start < self.end_offset {
                self.epochs.insert(0, (covering, start));
            }
        }
        self.start_offset = start;
    }

    /// A snapshot fetched from the leader replaces the whole log: the log is empty and
    /// starts (and ends) at the snapshot's end offset, which is flushed (the driver fsyncs
    /// the snapshot before it installs it).
    pub fn install_snapshot(&mut self, id: SnapshotId) {
        self.epochs.clear();
        self.end_offset = id.end_offset;
        self.flushed = id.end_offset;
        self.start_offset = id.end_offset;
        self.snapshot = Some(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offset_for_epoch_follows_kip_595() {
        let mut log = LogSummary::default();
        assert_eq!(log.end_offset_for_epoch(3), (0, 0));
        log.append(1, 2);
        log.append(3, 1);
        log.append(3, 2);
        assert_eq!(log.epochs(), &[(1, 0), (3, 2)]);
        assert_eq!(log.end_offset(), 5);
        assert_eq!(log.last_epoch(), 3);
        assert_eq!(log.end_offset_for_epoch(1), (1, 2));
        assert_eq!(log.end_offset_for_epoch(2), (1, 2));
        assert_eq!(log.end_offset_for_epoch(3), (3, 5));
        assert_eq!(log.end_offset_for_epoch(9), (3, 5));
        assert_eq!(log.end_offset_for_epoch(0), (0, 0));
        assert_eq!(log.epoch_at(1), Some(1));
        assert_eq!(log.epoch_at(4), Some(3));
        assert_eq!(log.epoch_at(5), None);
    }

    #[test]
    fn truncation_drops_epochs_and_the_flushed_tail() {
        let mut log = LogSummary::new(vec![(1, 0), (2, 3)], 6, 6);
        log.truncate(3);
        assert_eq!(log.epochs(), &[(1, 0)]);
        assert_eq!((log.end_offset(), log.flushed()), (3, 3));
        log.flush(10);
        assert_eq!(log.flushed(), 3);
        log.truncate(0);
        assert_eq!(log.last_epoch(), 0);
        assert_eq!(log.end_offset(), 0);
    }

    #[test]
    fn a_log_after_a_snapshot_answers_from_the_snapshot_id() {
        // Epoch 1 at 0..4, epoch 2 at 4..7, epoch 3 at 7..9.
        let mut log = LogSummary::new(vec![(1, 0), (2, 4), (3, 7)], 9, 9);
        let snap = SnapshotId {
            end_offset: 6,
            epoch: 2,
        };
        log.snapshot_taken(snap);
        assert_eq!(log.snapshot(), Some(snap));
        assert_eq!(log.start_offset(), 0);
        // Segments below 5 are deleted: epoch 2 now starts at 5.
        log.advance_start(5);
        assert_eq!(log.start_offset(), 5);
        assert_eq!(log.epochs(), &[(2, 5), (3, 7)]);
        assert_eq!(log.epoch_at(4), None);
        assert_eq!(log.epoch_at(5), Some(2));
        // Never past the snapshot's end.
        log.advance_start(100);
        assert_eq!(log.start_offset(), 6);
        assert_eq!(log.epochs(), &[(2, 6), (3, 7)]);
        // An epoch older than anything left is below the log start.
        assert_eq!(log.end_offset_for_epoch(1), (0, 0));
        assert_eq!(log.end_offset_for_epoch(2), (2, 7));
        // Truncation stops at the log start.
        log.truncate(2);
        assert_eq!((log.end_offset(), log.last_epoch()), (6, 2));
        assert_eq!(log.epoch_at(5), Some(2));
    }

    #[test]
    fn an_installed_snapshot_is_the_whole_log() {
        let mut log = LogSummary::new(vec![(1, 0)], 3, 3);
        let snap = SnapshotId {
            end_offset: 40,
            epoch: 4,
        };
        log.install_snapshot(snap);
        assert_eq!(log.start_offset(), 40);
        assert_eq!((log.end_offset(), log.flushed()), (40, 40));
        // Vote and Fetch read the snapshot's id when the log is empty.
        assert_eq!(log.last_epoch(), 4);
        assert_eq!(log.end_offset_for_epoch(4), (4, 40));
        assert_eq!(log.end_offset_for_epoch(7), (4, 40));
        assert_eq!(log.end_offset_for_epoch(3), (0, 0));
        assert_eq!(log.epoch_at(39), Some(4));
        assert_eq!(log.epoch_at(38), None);
        log.append(5, 2);
        assert_eq!(log.epochs(), &[(5, 40)]);
        assert_eq!(log.end_offset_for_epoch(4), (4, 40));
        assert_eq!(log.end_offset_for_epoch(5), (5, 42));
        assert_eq!(log.last_epoch(), 5);
        // A restarted log keeps its start and snapshot.
        let restarted =
            LogSummary::new(vec![(4, 30), (5, 40)], 42, 42).with_snapshot(40, Some(snap));
        assert_eq!(restarted.epochs(), &[(5, 40)]);
        assert_eq!(restarted.start_offset(), 40);
    }
}
