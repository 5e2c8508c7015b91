//! Small fixed-size value types shared by the partition model's state.
//!
//! The checker hashes and clones every state it visits, so the state is made of
//! fixed-size arrays of bytes instead of heap collections: a state is a few hundred
//! bytes, cloned with one `memcpy` and hashed without chasing pointers.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest number of brokers (replicas) a model can have.
pub const MAX_BROKERS: usize = 5;
/// Largest number of records a model can produce (and so the longest log).
pub const MAX_RECORDS: usize = 4;
/// Largest number of entries in a leader-epoch cache (epochs 0..=MAX_EPOCH_BOUND).
pub const MAX_CACHE: usize = 8;
/// Largest leader epoch the bounds may allow.
pub const MAX_EPOCH_BOUND: u8 = (MAX_CACHE - 1) as u8;

/// A broker id, 0-based in the model (the broker maps it to Kafka's node ids).
pub type BrokerId = u8;
/// A log offset; logs are at most `MAX_RECORDS` long.
pub type Offset = u8;

/// A follower whose log end offset the leader has not learned since it became leader.
pub const UNKNOWN_OFFSET: Offset = u8::MAX;
/// A leader epoch (KIP-101).
pub type Epoch = u8;
/// A record's identity: the n-th record the producer sent, starting at 1.
pub type RecordId = u8;

/// A set of brokers, as a bit mask.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerSet(pub u8);

impl BrokerSet {
    pub const EMPTY: BrokerSet = BrokerSet(0);

    /// Every broker id below `n`.
    pub fn all(n: usize) -> Self {
        BrokerSet(((1u16 << n) - 1) as u8)
    }
    pub fn single(b: BrokerId) -> Self {
        BrokerSet(1 << b)
    }
    pub fn contains(self, b: BrokerId) -> bool {
        self.0 & (1 << b) != 0
    }
    pub fn with(self, b: BrokerId) -> Self {
        BrokerSet(self.0 | (1 << b))
    }
    pub fn without(self, b: BrokerId) -> Self {
        BrokerSet(self.0 & !(1 << b))
    }
    pub fn union(self, o: Self) -> Self {
        BrokerSet(self.0 | o.0)
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn is_subset(self, o: Self) -> bool {
        self.0 & !o.0 == 0
    }
    /// The members in increasing order (one step per member, not per possible id: the
    /// checker iterates sets in every transition).
    pub fn iter(self) -> impl Iterator<Item = BrokerId> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            if rest == 0 {
                return None;
            }
            let b = rest.trailing_zeros() as BrokerId;
            rest &= rest - 1;
            Some(b)
        })
    }
    /// The set with every member renamed through `map` (used by symmetry reduction).
    pub fn permuted(self, map: &[BrokerId; MAX_BROKERS]) -> Self {
        let mut out = BrokerSet::EMPTY;
        for b in self.iter() {
            out = out.with(map[b as usize]);
        }
        out
    }
    pub fn to_vec(self) -> Vec<BrokerId> {
        self.iter().collect()
    }
}

impl fmt::Debug for BrokerSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl Serialize for BrokerSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_vec().serialize(s)
    }
}

impl<'de> Deserialize<'de> for BrokerSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ids = Vec::<BrokerId>::deserialize(d)?;
        let mut set = BrokerSet::EMPTY;
        for b in ids {
            if b as usize >= MAX_BROKERS {
                return Err(serde::de::Error::custom(format!(
                    "broker id {b} out of range (at most {} brokers)",
                    MAX_BROKERS
                )));
            }
            set = set.with(b);
        }
        Ok(set)
    }
}

/// One record in a replica's log: which record it is and the leader epoch it was written in.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    pub record: RecordId,
    pub epoch: Epoch,
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}@e{}", self.record, self.epoch)
    }
}

/// A replica's log: entries at offsets `0..len`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Log {
    len: u8,
    entries: [Entry; MAX_RECORDS],
}

impl Log {
    pub fn from_entries(entries: &[Entry]) -> Self {
        let mut log = Log::default();
        for e in entries {
            log.push(*e);
        }
        log
    }
    /// The log end offset.
    pub fn end_offset(&self) -> Offset {
        self.len
    }
    pub fn entries(&self) -> &[Entry] {
        &self.entries[..self.len as usize]
    }
    pub fn get(&self, offset: Offset) -> Option<Entry> {
        self.entries().get(offset as usize).copied()
    }
    pub fn last(&self) -> Option<Entry> {
        self.entries().last().copied()
    }
    /// Appends at the log end. Logs never exceed `MAX_RECORDS` because every record is produced
    /// at most once and appended at most once per replica.
    pub fn push(&mut self, e: Entry) {
        if (self.len as usize) < MAX_RECORDS {
            self.entries[self.len as usize] = e;
            self.len += 1;
        }
    }
    /// Removes every entry at or above `offset`.
    pub fn truncate(&mut self, offset: Offset) {
        while self.len > offset {
            self.len -= 1;
            self.entries[self.len as usize] = Entry::default();
        }
    }
    /// The entries from `offset` to the end.
    pub fn suffix(&self, offset: Offset) -> Log {
        Log::from_entries(self.entries().get(offset as usize..).unwrap_or(&[]))
    }
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

/// The leader-epoch cache of KIP-101: `(epoch, start offset)` pairs, epochs strictly increasing.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EpochCache {
    len: u8,
    entries: [(Epoch, Offset); MAX_CACHE],
}

impl EpochCache {
    pub fn entries(&self) -> &[(Epoch, Offset)] {
        &self.entries[..self.len as usize]
    }
    pub fn latest(&self) -> Option<(Epoch, Offset)> {
        self.entries().last().copied()
    }
    pub fn latest_epoch(&self) -> Option<Epoch> {
        self.latest().map(|(e, _)| e)
    }
    /// Records that `epoch` starts at `start`, as Kafka's `LeaderEpochFileCache.assign`: no
    /// change when `epoch` is the latest and starts no earlier; otherwise the entries it
    /// supersedes are removed first (`maybeTruncateNonMonotonicEntries`: those of this epoch
    /// or a later one, and those starting at or after `start`), so an epoch in which nothing
    /// was written is dropped when the next one starts at the same offset.
    pub fn assign(&mut self, epoch: Epoch, start: Offset) {
        if let Some((latest, latest_start)) = self.latest() {
            if epoch == latest && start >= latest_start {
                return;
            }
        }
        while let Some((e, s)) = self.latest() {
            if e >= epoch || s >= start {
                self.len -= 1;
                self.entries[self.len as usize] = (0, 0);
            } else {
                break;
            }
        }
        if (self.len as usize) < MAX_CACHE {
            self.entries[self.len as usize] = (epoch, start);
            self.len += 1;
        }
    }
    /// Removes the entries that start at or after `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: Offset) {
        while let Some((_, start)) = self.latest() {
            if start >= end_offset {
                self.len -= 1;
                self.entries[self.len as usize] = (0, 0);
            } else {
                break;
            }
        }
    }
    /// Kafka's `endOffsetFor(requested)`: the largest epoch at or below `requested` that this
    /// cache knows, and where it ends (the start of the next epoch, or the log end offset for
    /// the latest epoch). When `requested` is older than every epoch in the cache, Kafka
    /// answers `(requested, start of the first epoch)` (`LeaderEpochFileCache.endOffsetFor`:
    /// "the requested epoch is smaller than any known epoch"). `None` (Kafka's
    /// UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET) only for an empty cache.
    pub fn end_offset_for(&self, requested: Epoch, log_end: Offset) -> Option<(Epoch, Offset)> {
        let entries = self.entries();
        let (latest, _) = *entries.last()?;
        if requested == latest {
            return Some((latest, log_end));
        }
        let higher = entries.iter().position(|(e, _)| *e > requested);
        match higher {
            None => Some((latest, log_end)),
            Some(0) => Some((requested, entries[0].1)),
            Some(i) => Some((entries[i - 1].0, entries[i].1)),
        }
    }
}

impl fmt::Debug for EpochCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.entries()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(Epoch, Offset)]) -> EpochCache {
        let mut c = EpochCache::default();
        for (e, o) in entries {
            c.assign(*e, *o);
        }
        c
    }

    #[test]
    fn broker_set_operations() {
        let s = BrokerSet::all(3);
        assert_eq!(s.len(), 3);
        assert!(s.contains(2) && !s.contains(3));
        assert_eq!(s.without(1).to_vec(), vec![0, 2]);
        assert!(BrokerSet::single(1).is_subset(s));
        let map = [2, 0, 1, 3, 4];
        assert_eq!(BrokerSet::single(0).permuted(&map), BrokerSet::single(2));
    }

    #[test]
    fn epoch_cache_assigns_as_kafka() {
        // The latest epoch at a later offset changes nothing.
        assert_eq!(
            cache(&[(0, 0), (2, 1), (2, 3)]).entries(),
            &[(0, 0), (2, 1)]
        );
        // An epoch in which nothing was written is superseded by the next one starting at
        // the same offset.
        assert_eq!(
            cache(&[(0, 0), (2, 1), (3, 1)]).entries(),
            &[(0, 0), (3, 1)]
        );
        // An older epoch removes the entries of its epoch and later ones
        // (`maybeTruncateNonMonotonicEntries`).
        assert_eq!(
            cache(&[(0, 0), (2, 1), (1, 3)]).entries(),
            &[(0, 0), (1, 3)]
        );
    }

    #[test]
    fn end_offset_for_follows_kafka() {
        let c = cache(&[(0, 0), (2, 1), (3, 3)]);
        // The latest epoch ends at the log end.
        assert_eq!(c.end_offset_for(3, 4), Some((3, 4)));
        // An epoch the cache knows ends where the next one starts.
        assert_eq!(c.end_offset_for(0, 4), Some((0, 1)));
        // An epoch it does not know: the largest smaller epoch, ending where the next starts.
        assert_eq!(c.end_offset_for(1, 4), Some((0, 1)));
        // Newer than the latest: the latest epoch and the log end.
        assert_eq!(c.end_offset_for(5, 4), Some((3, 4)));
        // Older than every epoch: the requested epoch, ending where the first one starts.
        let c = cache(&[(2, 0)]);
        assert_eq!(c.end_offset_for(1, 1), Some((1, 0)));
        assert_eq!(EpochCache::default().end_offset_for(0, 0), None);
    }

    #[test]
    fn truncate_from_end_drops_epochs_that_start_past_the_end() {
        let mut c = cache(&[(0, 0), (1, 2), (2, 2)]);
        c.truncate_from_end(2);
        assert_eq!(c.entries(), &[(0, 0)]);
    }

    #[test]
    fn log_push_truncate_suffix() {
        let mut l = Log::default();
        l.push(Entry {
            record: 1,
            epoch: 0,
        });
        l.push(Entry {
            record: 2,
            epoch: 1,
        });
        assert_eq!(l.end_offset(), 2);
        assert_eq!(
            l.suffix(1).entries(),
            &[Entry {
                record: 2,
                epoch: 1
            }]
        );
        l.truncate(1);
        assert_eq!(
            l.entries(),
            &[Entry {
                record: 1,
                epoch: 0
            }]
        );
        // A truncated slot is reset so equal logs hash equally.
        assert_eq!(
            l,
            Log::from_entries(&[Entry {
                record: 1,
                epoch: 0
            }])
        );
    }
}
