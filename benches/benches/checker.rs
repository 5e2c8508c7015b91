//! The model checker's throughput on a fixed configuration: 3 brokers, 1 record, leader
//! epochs <= 1, 1 crash, 1 ISR change, min.insync.replicas=2 — small enough to run in a few
//! seconds per sample, large enough (tens of thousands of states) to measure states per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use osprey_model::check::{check, CheckOptions, Engine};
use osprey_model::replication::Replication;
use osprey_model::ModelConfig;

fn config() -> ModelConfig {
    ModelConfig {
        records: 1,
        max_epoch: 1,
        max_isr_changes: 1,
        ..ModelConfig::default()
    }
}

fn bench_checker(c: &mut Criterion) {
    let mut group = c.benchmark_group("partition-model");
    group.sample_size(10);
    for (name, engine) in [("bfs", Engine::Bfs), ("dfs-symmetry", Engine::DfsSymmetry)] {
        let opts = CheckOptions {
            threads: 2,
            engine,
            stop_at_first_violation: true,
        };
        let states = check::<Replication>(config(), &opts, |_| {}).unique_states;
        group.throughput(Throughput::Elements(states as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let r = check::<Replication>(config(), &opts, |_| {});
                assert_eq!(r.verdict, "ok");
                r.unique_states
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_checker);
criterion_main!(benches);
