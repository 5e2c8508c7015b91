//! Exact state counts of small bounds, pinned as stateright's `examples/2pc.rs` pins its own:
//! a change to the model or to a reduction (canonical form, symmetry, eager steps) shows
//! here as a diff, to be explained in the commit that makes it.

use osprey_model::check::{check, CheckOptions, Engine, Protocol};
use osprey_model::kraft::{KraftConfig, Quorum};
use osprey_model::replication::Replication;
use osprey_model::{FetchDelivery, ModelConfig};

/// One thread: the counts do not depend on it, and the test stays cheap on a shared machine.
fn unique_states<P: Protocol>(config: P::Config, engine: Engine) -> usize {
    let opts = CheckOptions {
        threads: 1,
        engine,
        stop_at_first_violation: false,
    };
    let report = check::<P>(config, &opts, |_| {});
    assert_eq!(report.verdict, "ok");
    assert!(report.complete);
    report.unique_states
}

fn replication(records: u8, max_epoch: u8, max_isr_changes: u8) -> ModelConfig {
    ModelConfig {
        records,
        max_epoch,
        max_isr_changes,
        ..ModelConfig::default()
    }
}

#[test]
fn replication_one_record_one_epoch_one_isr_change() {
    // The checker bench's bounds.
    let c = replication(1, 1, 1);
    assert_eq!(unique_states::<Replication>(c, Engine::Bfs), 100_310);
    assert_eq!(unique_states::<Replication>(c, Engine::DfsSymmetry), 14_861);
}

#[test]
fn replication_one_record_one_epoch() {
    let c = replication(1, 1, 2);
    assert_eq!(unique_states::<Replication>(c, Engine::DfsSymmetry), 27_957);
    let split = ModelConfig {
        fetch: FetchDelivery::Split,
        ..c
    };
    assert_eq!(
        unique_states::<Replication>(split, Engine::DfsSymmetry),
        45_008
    );
}

#[test]
fn quorum_one_record_two_epochs() {
    let c = KraftConfig {
        records: 1,
        max_epoch: 2,
        ..KraftConfig::default()
    };
    assert_eq!(unique_states::<Quorum>(c, Engine::DfsSymmetry), 337_426);
}
