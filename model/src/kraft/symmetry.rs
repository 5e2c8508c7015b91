//! Symmetry reduction: voters are interchangeable, so a state and the same state with voter
//! ids permuted are equivalent. The representative sorts voters by an id-free key and renames
//! every voter reference. Ties are broken by the old id, which loses some reduction but never
//! soundness: every property is invariant under renaming voters.

use super::state::*;
use stateright::Representative;

impl Representative for KraftState {
    fn representative(&self) -> Self {
        let mut order: [VoterId; MAX_VOTERS] = [0, 1, 2, 3, 4];
        // Slots past the quorum's voters stay where they are.
        let n = self.quorum_size as usize;
        order[..n].sort_by_key(|&b| {
            let v = &self.voters[b as usize];
            (
                (v.alive, v.role, v.epoch),
                v.log,
                (v.flushed, v.high_watermark, v.votes.count_ones()),
                (
                    v.voted_for == b,
                    v.leader == b,
                    v.fetch_response
                        .map(|r| (r.epoch, r.high_watermark, r.result)),
                ),
                b,
            )
        });
        // `order[new] = old`; `map[old] = new`.
        let mut map = [0u8; MAX_VOTERS];
        for (new, &old) in order.iter().enumerate() {
            map[old as usize] = new as u8;
        }
        let rename = |b: VoterId| if b == NO_VOTER { b } else { map[b as usize] };
        let rename_set = |set: u8| {
            (0..MAX_VOTERS)
                .filter(|&b| set & (1 << b) != 0)
                .fold(0u8, |acc, b| acc | (1 << map[b]))
        };
        let mut out = *self;
        for (new, &old) in order.iter().enumerate() {
            let mut v = self.voters[old as usize];
            v.voted_for = rename(v.voted_for);
            v.leader = rename(v.leader);
            v.votes = rename_set(v.votes);
            let mut ends = [0; MAX_VOTERS];
            for (o, &end) in v.end_offsets.iter().enumerate() {
                ends[map[o] as usize] = end;
            }
            v.end_offsets = ends;
            if let Some(r) = v.fetch_response.as_mut() {
                r.leader = rename(r.leader);
            }
            out.voters[new] = v;
        }
        for l in out.ghost.leader_of_epoch.iter_mut() {
            *l = rename(*l);
        }
        out
    }
}
