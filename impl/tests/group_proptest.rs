//! Random interleavings of member operations, timer ticks, append outcomes and
//! coordinator failovers, checking the group invariants after every step:
//! * a Stable group's members all have the group's generation;
//! * in CompletingRebalance and Stable there is exactly one leader and it is a member;
//! * the generation never decreases (across a failover: never below the generation of
//!   the group's last record in the log, which is what the new coordinator loads);
//! * every request is answered exactly once, and no parked request stays parked forever.

#[path = "group_harness.rs"]
mod harness;

use std::collections::BTreeSet;

use bytes::Bytes;
use harness::*;
use osprey_broker::group::codec::{decode_record, Record};
use osprey_broker::group::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Join {
        client: usize,
        version: i16,
        alt_protocols: bool,
    },
    Sync(usize),
    Heartbeat(usize),
    Leave(usize),
    Commit(usize),
    Advance(u64),
    CompleteAppends {
        ok: bool,
    },
    Failover,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, prop_oneof![Just(3i16), Just(5i16)], prop::bool::weighted(0.2))
            .prop_map(|(client, version, alt_protocols)| Op::Join { client, version, alt_protocols }),
        3 => (0..3usize).prop_map(Op::Sync),
        2 => (0..3usize).prop_map(Op::Heartbeat),
        1 => (0..3usize).prop_map(Op::Leave),
        1 => (0..3usize).prop_map(Op::Commit),
        3 => (0..8_000u64).prop_map(Op::Advance),
        3 => prop::bool::weighted(0.85).prop_map(|ok| Op::CompleteAppends { ok }),
        1 => Just(Op::Failover),
    ]
}

/// What a well-behaved client remembers.
#[derive(Debug, Clone, Default)]
struct Client {
    member_id: String,
    generation: i32,
    /// The member list, when this client was told it leads.
    members: Vec<String>,
}

struct World {
    d: Driver,
    clients: Vec<Client>,
    /// Request id → client, for requests whose response updates the client.
    owners: std::collections::BTreeMap<u64, usize>,
    parked: BTreeSet<u64>,
    answered: BTreeSet<u64>,
    last_generation: i32,
    /// The coordinator epoch of the current coordinator (bumped at each failover).
    epoch: i32,
    /// Every member id handed out, and to which client.
    issued: std::collections::BTreeMap<String, usize>,
}

impl World {
    fn on_join(&mut self, client: usize, r: &kafka_protocol::messages::JoinGroupResponse) {
        if matches!(r.error_code, 0 | 79) {
            let id = r.member_id.as_str().to_owned();
            let first = *self.issued.entry(id.clone()).or_insert(client);
            assert_eq!(first, client, "member id {id} handed to two clients");
        }
        let c = &mut self.clients[client];
        match r.error_code {
            0 => {
                c.member_id = r.member_id.as_str().to_owned();
                c.generation = r.generation_id;
                c.members = r
                    .members
                    .iter()
                    .map(|m| m.member_id.as_str().to_owned())
                    .collect();
            }
            79 => c.member_id = r.member_id.as_str().to_owned(),
            25 => *c = Client::default(),
            _ => {}
        }
    }

    fn reply<T>(
        &mut self,
        id: u64,
        reply: Reply<T>,
        client: usize,
        on_now: impl FnOnce(&mut Self, usize, T),
    ) {
        match reply {
            Reply::Parked => {
                self.parked.insert(id);
                self.owners.insert(id, client);
            }
            Reply::Now(r) => {
                self.answered.insert(id);
                on_now(self, client, r);
            }
        }
    }

    /// Collects parked responses that came out and applies them to their clients.
    fn absorb(&mut self) {
        let responses = std::mem::take(&mut self.d.responses);
        for (id, r) in responses {
            assert!(
                self.parked.remove(&id),
                "response for {id}, which was not parked"
            );
            assert!(self.answered.insert(id), "request {id} answered twice");
            let client = self.owners.remove(&id).expect("owner");
            if let GroupResponse::Join(r) = r {
                self.on_join(client, &r);
            }
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Join {
                client,
                version,
                alt_protocols,
            } => {
                let protocols: &[(&str, &[u8])] = if alt_protocols {
                    &[("roundrobin", b"alt")]
                } else {
                    RANGE
                };
                let member = self.clients[client].member_id.clone();
                let (id, reply) = self
                    .d
                    .join(version, &format!("c{client}"), &member, protocols);
                self.reply(id, reply, client, |w, c, r| w.on_join(c, &r));
            }
            Op::Sync(client) => {
                let c = self.clients[client].clone();
                let assignments: Vec<(String, Vec<u8>)> = c
                    .members
                    .iter()
                    .map(|m| (m.clone(), m.as_bytes().to_vec()))
                    .collect();
                let refs: Vec<(&str, &[u8])> = assignments
                    .iter()
                    .map(|(m, a)| (m.as_str(), a.as_slice()))
                    .collect();
                let (id, reply) = self.d.sync(5, &c.member_id, c.generation, &refs);
                self.reply(id, reply, client, |_, _, _| {});
            }
            Op::Heartbeat(client) => {
                let c = self.clients[client].clone();
                if self.d.heartbeat(&c.member_id, c.generation) == 25 {
                    self.clients[client] = Client::default();
                }
            }
            Op::Leave(client) => {
                let c = self.clients[client].clone();
                self.d.leave(&c.member_id);
                self.clients[client] = Client::default();
            }
            Op::Commit(client) => {
                let c = self.clients[client].clone();
                let (id, reply) = self.d.commit(
                    GROUP,
                    &c.member_id,
                    c.generation,
                    &[("t", client as i32, 1)],
                );
                self.reply(id, reply, client, |_, _, _| {});
            }
            Op::Advance(ms) => {
                let to = self.d.now + ms;
                self.d.tick(to);
            }
            Op::CompleteAppends { ok } => {
                self.d.complete_appends(if ok { 0 } else { 7 });
                self.d.pump();
            }
            Op::Failover => {
                let p = self.d.c.partition_of(GROUP);
                self.d.c.unload_partition(p);
                self.d.pump();
                self.absorb();
                let log = self.d.log.get(&p).cloned().unwrap_or_default();
                let stored_generation = log
                    .iter()
                    .filter_map(|(k, v)| match decode_record(k.clone(), v.clone()) {
                        Ok(Record::Group { value: Some(g), .. }) => Some(g.generation),
                        _ => None,
                    })
                    .last();
                self.epoch += 1;
                self.d.c.begin_loading(p, self.epoch);
                self.d.c.load_partition(p, self.epoch, log, self.d.now);
                let loaded = self.d.c.group(GROUP).map(|g| g.generation);
                if let Some(g) = stored_generation {
                    assert_eq!(
                        loaded,
                        Some(g),
                        "the new coordinator loads the last stored generation"
                    );
                }
                self.last_generation = loaded.unwrap_or(0);
            }
        }
        self.d.pump();
        self.absorb();
        self.check();
    }

    fn check(&mut self) {
        let Some(g) = self.d.c.group(GROUP) else {
            return;
        };
        assert!(
            g.generation >= self.last_generation,
            "generation went back: {g:?}"
        );
        self.last_generation = g.generation;
        if g.state == GroupState::Stable {
            for m in &g.members {
                assert_eq!(m.generation, g.generation, "stable member behind: {g:?}");
            }
        }
        match g.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                let leader = g.leader.as_ref().expect("a leader");
                assert!(
                    g.members.iter().any(|m| &m.member_id == leader),
                    "leader not a member: {g:?}"
                );
            }
            GroupState::Empty => {
                assert!(g.members.is_empty());
                assert!(g.leader.is_none());
            }
            _ => {}
        }
        let ids: BTreeSet<&str> = g.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(ids.len(), g.members.len(), "duplicate member ids");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_member_operations_keep_the_group_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let mut d = Driver::new(500);
        d.auto_commit = false;
        let mut w = World {
            d,
            clients: vec![Client::default(); 3],
            owners: Default::default(),
            parked: BTreeSet::new(),
            answered: BTreeSet::new(),
            last_generation: 0,
            epoch: 0,
            issued: Default::default(),
        };
        for op in &ops {
            w.step(op);
        }
        // Quiesce: appends complete, time runs past every deadline.
        for _ in 0..4 {
            w.d.complete_appends(0);
            w.d.pump();
            let to = w.d.now + 60_000;
            w.d.tick(to);
            w.absorb();
            w.check();
        }
        prop_assert!(w.parked.is_empty(), "requests never answered: {:?}", w.parked);
        let _ = Bytes::new();
    }
}
