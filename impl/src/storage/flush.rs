//! Decides *when* to fsync, separately from *how* (the log does the I/O).
//!
//! Pure bookkeeping with time passed in, so flush behaviour is deterministic in tests and
//! in the conformance suite.

use super::config::FlushPolicy;

/// Tracks unflushed work against a [`FlushPolicy`].
#[derive(Debug, Clone)]
pub(crate) struct FlushTracker {
    policy: FlushPolicy,
    unflushed_records: u64,
    dirty: bool,
    last_flush_ms: Option<u64>,
}

impl FlushTracker {
    pub(crate) fn new(policy: FlushPolicy) -> FlushTracker {
        FlushTracker {
            policy,
            unflushed_records: 0,
            dirty: false,
            last_flush_ms: None,
        }
    }

    /// Records an append of `records` records; true if the policy wants an fsync now.
    pub(crate) fn on_append(&mut self, records: u64) -> bool {
        self.dirty = true;
        self.unflushed_records = self.unflushed_records.saturating_add(records);
        match self.policy {
            FlushPolicy::EveryBatch => true,
            FlushPolicy::EveryMessages(n) => self.unflushed_records >= n,
            FlushPolicy::EveryMillis(_) | FlushPolicy::Os => false,
        }
    }

    /// True if a time-driven check at `now_ms` should fsync. Under `EveryMillis`, a log that
    /// has never been flushed by time yet flushes at the first check that finds dirty data
    /// (we have no append timestamps, so we err on the side of durability).
    pub(crate) fn due(&self, now_ms: u64) -> bool {
        if !self.dirty {
            return false;
        }
        match self.policy {
            FlushPolicy::EveryBatch => true,
            FlushPolicy::EveryMessages(n) => self.unflushed_records >= n,
            FlushPolicy::EveryMillis(ms) => self
                .last_flush_ms
                .is_none_or(|last| now_ms.saturating_sub(last) >= ms),
            FlushPolicy::Os => false,
        }
    }

    /// Everything written so far is durable.
    pub(crate) fn on_flush(&mut self, now_ms: Option<u64>) {
        self.dirty = false;
        self.unflushed_records = 0;
        if now_ms.is_some() {
            self.last_flush_ms = now_ms;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_batch_flushes_each_append() {
        let mut t = FlushTracker::new(FlushPolicy::EveryBatch);
        assert!(t.on_append(1));
        t.on_flush(None);
        assert!(!t.due(0));
    }

    #[test]
    fn every_messages_counts_records() {
        let mut t = FlushTracker::new(FlushPolicy::EveryMessages(5));
        assert!(!t.on_append(2));
        assert!(!t.on_append(2));
        assert!(t.on_append(1));
        t.on_flush(None);
        assert!(!t.on_append(4));
    }

    #[test]
    fn every_millis_uses_passed_in_time() {
        let mut t = FlushTracker::new(FlushPolicy::EveryMillis(100));
        assert!(!t.due(0), "clean log never due");
        assert!(!t.on_append(10));
        assert!(t.due(5), "first check with dirty data flushes");
        t.on_flush(Some(5));
        t.on_append(1);
        assert!(!t.due(104));
        assert!(t.due(105));
    }

    #[test]
    fn os_never_flushes() {
        let mut t = FlushTracker::new(FlushPolicy::Os);
        assert!(!t.on_append(1_000_000));
        assert!(!t.due(u64::MAX));
    }
}
