//! The checker proves the default protocol within small bounds and finds every historical
//! flaw (`--variant`) as a counterexample that replays as a run of the model.

use osprey_model::check::{check, CheckOptions, Engine};
use osprey_model::replication::Replication;
use osprey_model::{FetchDelivery, ModelConfig, Variant};

fn opts() -> CheckOptions {
    CheckOptions {
        threads: 2,
        engine: Engine::Bfs,
        stop_at_first_violation: true,
    }
}

#[test]
fn default_protocol_holds_exhaustively_within_small_bounds() {
    // Both grains of fetch: the default atomic delivery and responses in flight.
    let mut counts = Vec::new();
    for fetch in [FetchDelivery::Atomic, FetchDelivery::Split] {
        let config = ModelConfig {
            records: 1,
            max_epoch: 1,
            fetch,
            ..ModelConfig::default()
        };
        let report = check::<Replication>(config, &opts(), |_| {});
        assert_eq!(report.verdict, "ok", "{fetch}: {:?}", report.counterexample);
        assert!(report.complete);
        for p in &report.properties {
            assert!(
                p.holds,
                "{fetch}: {} ({}) does not hold",
                p.name, p.expectation
            );
        }
        counts.push(report.unique_states);
    }
    assert!(counts[0] > 50_000, "{counts:?}");
    // Atomic delivery only leaves out the states with a response in flight.
    assert!(counts[0] < counts[1], "{counts:?}");
}

#[test]
fn symmetry_reduction_agrees_and_explores_fewer_states() {
    let config = ModelConfig {
        records: 1,
        max_epoch: 1,
        max_isr_changes: 1,
        ..ModelConfig::default()
    };
    let plain = check::<Replication>(config, &opts(), |_| {});
    let reduced = check::<Replication>(
        config,
        &CheckOptions {
            engine: Engine::DfsSymmetry,
            ..opts()
        },
        |_| {},
    );
    assert_eq!(plain.verdict, "ok");
    assert_eq!(reduced.verdict, "ok");
    assert!(reduced.unique_states < plain.unique_states);
}

/// The reductions of the depth-first engine (canonical form, symmetry, eager steps) give the
/// same verdict for every property as the plain breadth-first search, over configurations
/// that take the reductions' side conditions both ways (min.insync.replicas 1 and 2, flush
/// every and never, acks=1).
#[test]
fn reductions_agree_with_the_plain_search_on_every_property() {
    let small = ModelConfig {
        records: 1,
        max_epoch: 1,
        ..ModelConfig::default()
    };
    for config in [
        ModelConfig {
            min_isr: 1,
            ..small
        },
        ModelConfig {
            flush: osprey_model::FlushPolicy::Every,
            ..small
        },
        ModelConfig {
            acks: osprey_model::AcksChoice::Both,
            max_isr_changes: 1,
            ..small
        },
    ] {
        let plain = check::<Replication>(config, &opts(), |_| {});
        let reduced = check::<Replication>(
            config,
            &CheckOptions {
                engine: Engine::DfsSymmetry,
                ..opts()
            },
            |_| {},
        );
        assert_eq!(plain.properties, reduced.properties, "{config:?}");
        assert_eq!(plain.verdict, "ok", "{config:?}");
        assert!(
            reduced.unique_states < plain.unique_states,
            "{config:?}: {} vs {}",
            reduced.unique_states,
            plain.unique_states
        );
    }
}

fn assert_variant_found(v: Variant) {
    let config = v.small_config();
    let report = check::<Replication>(config, &opts(), |_| {});
    assert_eq!(report.verdict, "violation", "{v}: no counterexample found");
    let trace = report.counterexample.expect("a counterexample");
    assert!(!trace.violated.is_empty());
    assert!(
        trace.violated.iter().any(
            |p| ["NoCommittedWriteLoss", "ConsumedNeverLost", "LogMatching"].contains(&p.as_str())
        ),
        "{v}: violated {:?}",
        trace.violated
    );
    // The counterexample is a run of the model, step by step.
    trace.validate().expect("the counterexample replays");
    // And the same bounds without the flaw hold.
    let fixed = ModelConfig {
        variant: None,
        unclean: false,
        ..config
    };
    if v != Variant::SingleEpochTruncation && v != Variant::UnfencedTruncation {
        let report = check::<Replication>(fixed, &opts(), |_| {});
        assert_eq!(report.verdict, "ok", "{v}: the fixed protocol fails too");
    }
}

#[test]
fn unclean_election_loses_acknowledged_writes() {
    assert_variant_found(Variant::UncleanElection);
}

#[test]
fn hw_truncation_loses_acknowledged_writes() {
    assert_variant_found(Variant::HwTruncation);
}

#[test]
fn single_epoch_truncation_diverges() {
    assert_variant_found(Variant::SingleEpochTruncation);
}

#[test]
fn unfenced_truncation_loses_acknowledged_writes() {
    assert_variant_found(Variant::UnfencedTruncation);
}

#[test]
fn no_expand_guard_loses_acknowledged_writes() {
    assert_variant_found(Variant::NoExpandGuard);
}

#[test]
fn eager_isr_shrink_loses_acknowledged_writes() {
    assert_variant_found(Variant::EagerIsrShrink);
}

#[test]
fn last_replica_standing_loses_committed_data() {
    assert_variant_found(Variant::LastReplicaStanding);
}

#[test]
fn ack_before_replication_loses_acknowledged_writes() {
    assert_variant_found(Variant::AckBeforeReplication);
}

#[test]
fn stale_broker_epoch_loses_acknowledged_writes() {
    assert_variant_found(Variant::StaleBrokerEpoch);
}

#[test]
fn every_variant_has_a_test_and_a_name_that_parses() {
    for v in Variant::ALL {
        assert_eq!(v.name().parse::<Variant>().unwrap(), v);
    }
    assert!("no-such-flaw".parse::<Variant>().is_err());
}

/// The reductions hide no flaw: the depth-first search with the canonical form, symmetry and
/// eager steps finds a counterexample for every variant, as the breadth-first search does.
#[test]
fn the_reduced_search_finds_every_variant() {
    for v in Variant::ALL {
        let report = check::<Replication>(
            v.small_config(),
            &CheckOptions {
                engine: Engine::DfsSymmetry,
                ..opts()
            },
            |_| {},
        );
        assert_eq!(report.verdict, "violation", "{v}: no counterexample found");
    }
}
