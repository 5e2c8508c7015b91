//! What the quorum core knows of the local metadata log: where each leader epoch starts,
//! the log end offset, and how much of it is flushed. The records themselves stay in the
//! driver's storage; the core only needs offsets and epochs to run elections (Vote's last
//! epoch and end offset), to find divergence (Fetch's last fetched epoch), and to count the
//! high watermark.

/// The epochs and offsets of a log (the model's `Log`, without payloads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// `(epoch, start offset)` for each epoch present in the log, in increasing order (the
    /// leader epoch cache).
    epochs: Vec<(i32, i64)>,
    end_offset: i64,
    flushed: i64,
}

impl LogSummary {
    /// A summary of an existing log: its epoch cache, log end offset and flushed offset.
    pub fn new(epochs: Vec<(i32, i64)>, end_offset: i64, flushed: i64) -> LogSummary {
        let mut s = LogSummary {
            epochs,
            end_offset,
            flushed: flushed.min(end_offset),
        };
        s.epochs.retain(|&(_, start)| start < end_offset);
        s
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
    /// fetched epoch).
    pub fn last_epoch(&self) -> i32 {
        self.epochs.last().map_or(0, |&(e, _)| e)
    }

    /// The `(epoch, start offset)` pairs.
    pub fn epochs(&self) -> &[(i32, i64)] {
        &self.epochs
    }

    /// The epoch of the entry at `offset`, if it is in the log.
    pub fn epoch_at(&self, offset: i64) -> Option<i32> {
        if offset < 0 || offset >= self.end_offset {
            return None;
        }
        self.epochs
            .iter()
            .rev()
            .find(|&&(_, start)| start <= offset)
            .map(|&(e, _)| e)
    }

    /// KIP-595's end offset for an epoch: the largest epoch in the log at most `epoch`, and
    /// the offset just past its last entry; `(0, 0)` when there is none (the model's
    /// `Log::end_offset_for_epoch`).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let Some(i) = self.epochs.iter().rposition(|&(e, _)| e <= epoch) else {
            return (0, 0);
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
    pub fn truncate(&mut self, end: i64) {
        if end >= self.end_offset {
            return;
        }
        self.end_offset = end.max(0);
        self.flushed = self.flushed.min(self.end_offset);
        self.epochs.retain(|&(_, start)| start < end);
    }

    /// Everything up to `offset` is on disk.
    pub fn flush(&mut self, offset: i64) {
        self.flushed = offset.clamp(self.flushed, self.end_offset);
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
}
