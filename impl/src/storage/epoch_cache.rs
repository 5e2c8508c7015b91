//! The leader-epoch cache (KIP-101 / KIP-279): which leader epoch started at which offset.
//!
//! Followers use it to find where their log diverges from the leader's
//! (OffsetsForLeaderEpoch, and Fetch's diverging-epoch response), instead of truncating to
//! the high watermark and risking the loss or divergence KIP-101 describes. The semantics
//! below follow Kafka's `LeaderEpochFileCache` line by line; this type is pure in-memory
//! state, and [`super::PartitionLog`] persists it (via [`super::checkpoint`]) after every
//! change.

/// "No epoch", Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// "No offset", Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// `epoch` became leader and wrote its first batch at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EpochEntry {
    /// Leader epoch.
    pub epoch: i32,
    /// First offset written in that epoch.
    pub start_offset: i64,
}

/// Ordered epoch entries: epochs strictly increasing, start offsets non-decreasing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// An empty cache.
    pub fn new() -> LeaderEpochCache {
        LeaderEpochCache::default()
    }

    /// Builds a cache by assigning each entry in order (so it is normalised exactly as if
    /// the entries had been appended one by one).
    pub fn from_entries(entries: impl IntoIterator<Item = EpochEntry>) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::new();
        for e in entries {
            c.assign(e.epoch, e.start_offset);
        }
        c
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// True if there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest entry.
    pub fn latest_entry(&self) -> Option<EpochEntry> {
        self.entries.last().copied()
    }

    /// The newest epoch.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// The oldest entry.
    pub fn earliest_entry(&self) -> Option<EpochEntry> {
        self.entries.first().copied()
    }

    /// The epoch that wrote `offset` (largest entry with `start_offset <= offset`).
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        let idx = self.entries.partition_point(|e| e.start_offset <= offset);
        idx.checked_sub(1).map(|i| self.entries[i].epoch)
    }

    /// Records that `epoch` starts at `start_offset`; returns whether the cache changed.
    ///
    /// Kafka semantics (`LeaderEpochFileCache.assign`): the call is a no-op when `epoch`
    /// equals the latest epoch and `start_offset` is not smaller than its start offset (the
    /// common case: every batch of the current epoch calls this). Otherwise every entry at
    /// the end with `epoch >= new epoch` or `start_offset >= new start_offset` is removed
    /// before the new entry is added, which keeps the invariants even if a caller assigns
    /// out of order. Negative epochs or offsets (Kafka throws) are ignored and return false.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || start_offset < 0 {
            tracing::warn!(epoch, start_offset, "ignoring invalid leader epoch entry");
            return false;
        }
        if let Some(last) = self.entries.last() {
            if last.epoch == epoch && start_offset >= last.start_offset {
                return false;
            }
        }
        while let Some(last) = self.entries.last() {
            if last.epoch >= epoch || last.start_offset >= start_offset {
                self.entries.pop();
            } else {
                break;
            }
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Removes every entry with `start_offset >= end_offset` (the log was truncated to
    /// `end_offset`). Returns whether anything was removed. Negative offsets are ignored.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        if end_offset < 0 {
            return false;
        }
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log now starts at `start_offset`: removes entries that start at or before it,
    /// except that the last of them is kept with its start moved up to `start_offset`
    /// (its epoch still covers the new first offset). Kafka's `truncateFromStart`.
    /// Returns whether the cache changed.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let n = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(last_removed) = n.checked_sub(1).map(|i| self.entries[i]) else {
            return false;
        };
        if n == 1 && last_removed.start_offset == start_offset {
            return false;
        }
        self.entries.drain(..n);
        self.entries.insert(
            0,
            EpochEntry {
                epoch: last_removed.epoch,
                start_offset,
            },
        );
        true
    }

    /// Kafka's `LeaderEpochFileCache.endOffsetFor`: the epoch and end offset a follower
    /// (or consumer) should use for `requested_epoch`, given the log end offset.
    ///
    /// * `requested_epoch == UNDEFINED_EPOCH` (-1) → `None` (Kafka: `(-1, -1)`).
    /// * `requested_epoch` is the latest epoch → `Some((requested, log_end_offset))`.
    /// * otherwise let `higher` be the first entry with `epoch > requested`:
    ///   * no such entry (requested is newer than anything we know, or the cache is empty)
    ///     → `None` (Kafka: `(-1, -1)`);
    ///   * no entry with `epoch <= requested` (requested predates the earliest epoch we
    ///     have) → `Some((requested, higher.start_offset))` — exactly Kafka's answer, which
    ///     echoes the requested epoch even though we never saw it;
    ///   * else → `Some((floor.epoch, higher.start_offset))` where `floor` is the largest
    ///     entry with `epoch <= requested` (the requested epoch may itself be unknown).
    ///
    /// `None` therefore always means Kafka's `(UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)`.
    pub fn end_offset_for_epoch(
        &self,
        requested_epoch: i32,
        log_end_offset: i64,
    ) -> Option<(i32, i64)> {
        if requested_epoch == UNDEFINED_EPOCH {
            return None;
        }
        if self.latest_epoch() == Some(requested_epoch) {
            return Some((requested_epoch, log_end_offset));
        }
        let hi = self.entries.partition_point(|e| e.epoch <= requested_epoch);
        let higher = self.entries.get(hi)?;
        match hi.checked_sub(1).map(|i| self.entries[i]) {
            None => Some((requested_epoch, higher.start_offset)),
            Some(floor) => Some((floor.epoch, higher.start_offset)),
        }
    }
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

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache::from_entries(entries.iter().map(|&(a, b)| e(a, b)))
    }

    #[test]
    fn assign_appends_new_epochs_and_ignores_repeats() {
        let mut c = LeaderEpochCache::new();
        assert!(c.assign(0, 0));
        assert!(!c.assign(0, 5), "same epoch, later offset: no-op");
        assert!(c.assign(2, 10));
        assert!(c.assign(3, 10), "an epoch that wrote nothing is replaced");
        assert_eq!(c.entries(), &[e(0, 0), e(3, 10)]);
        assert_eq!(c.latest_epoch(), Some(3));
        assert_eq!(c.latest_entry(), Some(e(3, 10)));
        assert_eq!(c.earliest_entry(), Some(e(0, 0)));
        assert!(!c.assign(-1, 20));
        assert!(!c.assign(4, -1));
        assert_eq!(c.entries().len(), 2);
    }

    #[test]
    fn assign_out_of_order_removes_conflicting_tail_like_kafka() {
        let mut c = cache(&[(1, 0), (3, 10), (5, 20)]);
        // Older epoch at a later offset: drops every entry with epoch >= 2.
        assert!(c.assign(2, 25));
        assert_eq!(c.entries(), &[e(1, 0), e(2, 25)]);
        // Same epoch, earlier offset: replaces it.
        assert!(c.assign(2, 5));
        assert_eq!(c.entries(), &[e(1, 0), e(2, 5)]);
        // Newer epoch at an earlier offset: drops entries starting at or after it.
        assert!(c.assign(7, 3));
        assert_eq!(c.entries(), &[e(1, 0), e(7, 3)]);
    }

    #[test]
    fn epoch_for_offset() {
        let c = cache(&[(1, 5), (4, 10)]);
        assert_eq!(c.epoch_for_offset(4), None);
        assert_eq!(c.epoch_for_offset(5), Some(1));
        assert_eq!(c.epoch_for_offset(9), Some(1));
        assert_eq!(c.epoch_for_offset(10), Some(4));
        assert_eq!(c.epoch_for_offset(1_000), Some(4));
    }

    #[test]
    fn truncate_from_end() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!c.truncate_from_end(21));
        assert_eq!(c.entries().len(), 3);
        assert!(c.truncate_from_end(20));
        assert_eq!(c.entries(), &[e(1, 0), e(2, 10)]);
        assert!(c.truncate_from_end(5));
        assert_eq!(c.entries(), &[e(1, 0)]);
        assert!(!c.truncate_from_end(-1));
        assert!(c.truncate_from_end(0));
        assert!(c.is_empty());
    }

    #[test]
    fn truncate_from_start() {
        let mut c = cache(&[(1, 0), (2, 10), (3, 20)]);
        assert!(!c.truncate_from_start(0), "already starts there");
        assert!(c.truncate_from_start(15));
        assert_eq!(c.entries(), &[e(2, 15), e(3, 20)]);
        assert!(c.truncate_from_start(20));
        assert_eq!(c.entries(), &[e(3, 20)]);
        assert!(!c.truncate_from_start(20));
        assert!(c.truncate_from_start(50));
        assert_eq!(c.entries(), &[e(3, 50)]);
        let mut empty = LeaderEpochCache::new();
        assert!(!empty.truncate_from_start(3));
        let mut later = cache(&[(4, 100)]);
        assert!(!later.truncate_from_start(50), "nothing starts before 50");
        assert_eq!(later.entries(), &[e(4, 100)]);
    }

    #[test]
    fn end_offset_for_epoch_matches_kafka() {
        let c = cache(&[(1, 0), (2, 10), (4, 30)]);
        let leo = 42;
        // Latest epoch → LEO.
        assert_eq!(c.end_offset_for_epoch(4, leo), Some((4, 42)));
        // Known older epoch → start of the next epoch.
        assert_eq!(c.end_offset_for_epoch(1, leo), Some((1, 10)));
        assert_eq!(c.end_offset_for_epoch(2, leo), Some((2, 30)));
        // Unknown epoch between known ones → largest epoch below it, next epoch's start.
        assert_eq!(c.end_offset_for_epoch(3, leo), Some((2, 30)));
        // Below the earliest epoch → echoes the requested epoch, first entry's start.
        assert_eq!(c.end_offset_for_epoch(0, leo), Some((0, 0)));
        // Above the latest epoch → undefined.
        assert_eq!(c.end_offset_for_epoch(5, leo), None);
        // UNDEFINED_EPOCH → undefined.
        assert_eq!(c.end_offset_for_epoch(UNDEFINED_EPOCH, leo), None);
        // Empty cache → undefined.
        assert_eq!(LeaderEpochCache::new().end_offset_for_epoch(0, leo), None);
        let later = cache(&[(3, 7)]);
        assert_eq!(later.end_offset_for_epoch(1, 9), Some((1, 7)));
    }
}
