//! Symmetry reduction: brokers are interchangeable, so a state and the same state with broker
//! ids permuted are equivalent. The representative sorts brokers by an id-free key and renames
//! every broker reference accordingly. Ties are broken by the old id, so the representative is
//! not always the canonical one; that loses some reduction but never soundness, because every
//! property is itself invariant under renaming brokers.

use crate::partition::UNKNOWN_OFFSET;
use crate::state::*;
use crate::types::*;
use stateright::Representative;

impl Representative for PartitionState {
    fn representative(&self) -> Self {
        let c = &self.controller;
        let mut order: [BrokerId; MAX_BROKERS] = [0, 1, 2, 3, 4];
        // Sort by everything that does not name another broker.
        order.sort_by_key(|&b| {
            let r = &self.brokers[b as usize];
            (
                (
                    c.leader == b,
                    r.leader == b,
                    c.isr.contains(b),
                    c.elr.contains(b),
                    c.fenced.contains(b),
                    r.alive,
                ),
                r.log,
                r.high_watermark,
                r.flushed,
                r.epoch_cache,
                (r.leader_epoch, r.broker_epoch),
                r.inflight_fetch
                    .map(|f| (f.leader_epoch, f.result, f.high_watermark)),
                b,
            )
        });
        // `order[new] = old`; `map[old] = new`.
        let mut map = [0u8; MAX_BROKERS];
        for (new, &old) in order.iter().enumerate() {
            map[old as usize] = new as u8;
        }
        let rename = |b: BrokerId| if b == NO_BROKER { b } else { map[b as usize] };
        let mut out = *self;
        for (new, &old) in order.iter().enumerate() {
            let mut r = self.brokers[old as usize];
            r.leader = rename(r.leader);
            r.isr = r.isr.permuted(&map);
            r.pending_isr = r.pending_isr.map(|p| p.permuted(&map));
            let mut ends = [UNKNOWN_OFFSET; MAX_BROKERS];
            for (o, &end) in r.follower_end_offset.iter().enumerate() {
                ends[map[o] as usize] = end;
            }
            r.follower_end_offset = ends;
            let mut epochs = [0; MAX_BROKERS];
            for (o, &e) in r.follower_broker_epoch.iter().enumerate() {
                epochs[map[o] as usize] = e;
            }
            r.follower_broker_epoch = epochs;
            if let Some(f) = r.inflight_fetch.as_mut() {
                f.leader = rename(f.leader);
            }
            out.brokers[new] = r;
        }
        out.controller.leader = rename(c.leader);
        out.controller.isr = c.isr.permuted(&map);
        out.controller.elr = c.elr.permuted(&map);
        out.controller.fenced = c.fenced.permuted(&map);
        out.ghost.unclean_shutdown = self.ghost.unclean_shutdown.permuted(&map);
        for st in out.ghost.records.iter_mut() {
            if let RecordStatus::Pending { leader, .. } = st {
                *leader = rename(*leader);
            }
        }
        out
    }
}
