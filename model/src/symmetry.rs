//! Symmetry reduction: brokers are interchangeable, so a state and the same state with broker
//! ids permuted are equivalent (every step is defined for every broker alike and every
//! property is invariant under renaming brokers; the initial state's leader is broker 0, and
//! what is reachable from it is closed under renaming, so only ids, never roles, are merged).
//!
//! The representative is a true canonical form: after erasing unobservable information
//! (`canonical::erase_unobservable`), brokers are sorted by a key that does not depend on ids
//! (their own state, and how the controller and the controller's leader see them); brokers
//! with equal keys are tried in every order, and the smallest renamed state wins. Two states
//! that are renamings of each other have the same sorted keys and the same set of candidate
//! renamings, hence the same representative.

use crate::canonical::erase_unobservable;
use crate::state::*;
use crate::types::*;
use stateright::Representative;

/// Bytes of a broker's id-free sort key.
const KEY_BYTES: usize = 64;

impl Representative for PartitionState {
    fn representative(&self) -> Self {
        let mut s = *self;
        erase_unobservable(&mut s);
        canonical_renaming(&s)
    }
}

/// The smallest renaming of `s` among those that sort brokers by their id-free key.
pub fn canonical_renaming(s: &PartitionState) -> PartitionState {
    let n = s.scope.brokers as usize;
    let keys: [[u8; KEY_BYTES]; MAX_BROKERS] = std::array::from_fn(|b| {
        if b < n {
            sort_key(s, b as BrokerId)
        } else {
            [0; KEY_BYTES]
        }
    });
    // `order[new] = old`; brokers at or above `n` keep their ids.
    let mut order: [BrokerId; MAX_BROKERS] = [0, 1, 2, 3, 4];
    order[..n].sort_by_key(|&b| keys[b as usize]);
    // Runs of equal keys: the brokers in a run are tried in every order.
    let mut ties = [(0usize, 0usize); MAX_BROKERS];
    let mut runs = 0;
    let mut lo = 0;
    while lo < n {
        let mut hi = lo + 1;
        while hi < n && keys[order[hi] as usize] == keys[order[lo] as usize] {
            hi += 1;
        }
        if hi - lo > 1 {
            ties[runs] = (lo, hi);
            runs += 1;
        }
        lo = hi;
    }
    if runs == 0 {
        return renamed(s, &order);
    }
    let mut best: Option<PartitionState> = None;
    permute_runs(&mut order, &ties[..runs], 0, ties[0].0, &mut |o| {
        let candidate = renamed(s, o);
        if best.as_ref().is_none_or(|b| candidate < *b) {
            best = Some(candidate);
        }
    });
    best.expect("at least one ordering")
}

/// Calls `f` with every ordering that permutes brokers within each run `runs[g..]`, starting
/// at position `k` of run `g` (a recursive swap-based enumeration).
fn permute_runs(
    order: &mut [BrokerId; MAX_BROKERS],
    runs: &[(usize, usize)],
    g: usize,
    k: usize,
    f: &mut impl FnMut(&[BrokerId; MAX_BROKERS]),
) {
    if g == runs.len() {
        f(order);
        return;
    }
    let (_, hi) = runs[g];
    if k + 1 >= hi {
        let next = runs.get(g + 1).map_or(0, |r| r.0);
        permute_runs(order, runs, g + 1, next, f);
        return;
    }
    for i in k..hi {
        order.swap(k, i);
        permute_runs(order, runs, g, k + 1, f);
        order.swap(k, i);
    }
}

/// What distinguishes broker `b` without naming any broker: its role, its own state, and how
/// the controller and the controller's leader see it. Equal for `b` in `s` and for `π(b)` in
/// the renaming of `s` by any permutation `π`.
fn sort_key(s: &PartitionState, b: BrokerId) -> [u8; KEY_BYTES] {
    let c = &s.controller;
    let r = &s.brokers[b as usize];
    let mut k = [0u8; KEY_BYTES];
    let mut i = 0;
    let mut put = |bytes: &[u8]| {
        k[i..i + bytes.len()].copy_from_slice(bytes);
        i += bytes.len();
    };
    let role = u8::from(c.leader == b)
        | u8::from(r.leader == b) << 1
        | u8::from(r.leader == NO_BROKER) << 2
        | u8::from(r.leader == c.leader) << 3
        | u8::from(r.alive) << 4;
    let member = u8::from(c.isr.contains(b))
        | u8::from(c.elr.contains(b)) << 1
        | u8::from(c.fenced.contains(b)) << 2
        | u8::from(s.ghost.unclean_shutdown.contains(b)) << 3
        | u8::from(c.offline_logs.contains(b)) << 4;
    put(&[role, member]);
    for e in r.log.entries() {
        put(&[e.record, e.epoch]);
    }
    put(&[0xFF, r.log.end_offset(), r.high_watermark, r.flushed]);
    for (e, o) in r.epoch_cache.entries() {
        put(&[*e, *o]);
    }
    put(&[
        0xFF,
        r.leader_epoch,
        r.broker_epoch,
        r.partition_epoch,
        r.isr.len() as u8,
        r.pending_isr.map_or(0, |p| p.len() as u8 + 1),
    ]);
    match r.inflight_fetch {
        None => put(&[0]),
        Some(f) => {
            put(&[1, f.leader_epoch, f.high_watermark]);
            match f.result {
                FetchResult::Records {
                    fetch_offset,
                    records,
                } => {
                    put(&[1, fetch_offset, records.end_offset()]);
                    for e in records.entries() {
                        put(&[e.record, e.epoch]);
                    }
                }
                FetchResult::Diverging { end } => match end {
                    None => put(&[2, 0, 0]),
                    Some((e, o)) => put(&[3, e, o]),
                },
            }
        }
    }
    if c.leader != NO_BROKER {
        let l = &s.brokers[c.leader as usize];
        put(&[
            0xFF,
            l.follower_end_offset[b as usize],
            l.follower_broker_epoch[b as usize],
            u8::from(l.isr.contains(b)) | u8::from(l.maximal_isr().contains(b)) << 1,
        ]);
    }
    k
}

/// `s` with broker `order[new]` renamed `new`, and every broker id inside the state renamed
/// accordingly: leaders, ISR and ELR sets, fenced set, the leaders' per-follower views, the
/// in-flight responses, and the ghost variables.
pub fn renamed(s: &PartitionState, order: &[BrokerId; MAX_BROKERS]) -> PartitionState {
    if order
        .iter()
        .enumerate()
        .all(|(new, &old)| new == old as usize)
    {
        return *s;
    }
    let n = s.scope.brokers as usize;
    let mut map = [0u8; MAX_BROKERS];
    for (new, &old) in order.iter().enumerate() {
        map[old as usize] = new as u8;
    }
    // `NO_BROKER` and the canonical form's `STALE_LEADER` are not ids: they stay.
    let rename = |b: BrokerId| {
        if (b as usize) < MAX_BROKERS {
            map[b as usize]
        } else {
            b
        }
    };
    let mut out = *s;
    // Brokers at or above `n` keep their ids and their (initial, never changing) state.
    for (new, &old) in order[..n].iter().enumerate() {
        let mut r = s.brokers[old as usize];
        r.leader = rename(r.leader);
        r.isr = r.isr.permuted(&map);
        r.pending_isr = r.pending_isr.map(|p| p.permuted(&map));
        let mut ends = [0; MAX_BROKERS];
        let mut epochs = [0; MAX_BROKERS];
        ends[n..].copy_from_slice(&r.follower_end_offset[n..]);
        epochs[n..].copy_from_slice(&r.follower_broker_epoch[n..]);
        for o in 0..n {
            ends[map[o] as usize] = r.follower_end_offset[o];
            epochs[map[o] as usize] = r.follower_broker_epoch[o];
        }
        r.follower_end_offset = ends;
        r.follower_broker_epoch = epochs;
        if let Some(f) = r.inflight_fetch.as_mut() {
            f.leader = rename(f.leader);
        }
        out.brokers[new] = r;
    }
    let c = &s.controller;
    out.controller.leader = rename(c.leader);
    out.controller.isr = c.isr.permuted(&map);
    out.controller.elr = c.elr.permuted(&map);
    out.controller.fenced = c.fenced.permuted(&map);
    out.controller.offline_logs = c.offline_logs.permuted(&map);
    out.ghost.unclean_shutdown = s.ghost.unclean_shutdown.permuted(&map);
    for st in out.ghost.records.iter_mut() {
        if let RecordStatus::Pending { leader, .. } = st {
            *leader = rename(*leader);
        }
    }
    out
}
