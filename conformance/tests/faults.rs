//! Proof that the conformance suite catches bugs: for each bug variant of the model, the
//! matching broker fault (`osprey-broker`'s `faults` feature) is caught both ways.
//!
//! 1. The variant's counterexample (`conformance/counterexamples/`), replayed on the correct
//!    broker, diverges at the step where the flaw first acts.
//! 2. Replayed on the broker with the fault, it matches the model step by step, and the
//!    broker's own state loses data.
//! 3. The broker → model property test, with the fault on, fails on its own; the shrunk
//!    schedule is printed.

use std::path::Path;

use osprey_conformance::controller::kafka_takes;
use osprey_conformance::explore::{config, run, run_recording};
use osprey_conformance::variants::{fault_for, replay_faulty, where_the_flaw_acts};
use osprey_model::trace::Trace;
use osprey_model::{PartitionModel, Variant};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};

fn counterexample(v: Variant) -> Trace {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("counterexamples")
        .join(format!("{}.json", v.name()));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let trace: Trace = serde_json::from_str(&text).expect("a trace");
    assert_eq!(trace.config.variant, Some(v));
    trace
        .validate()
        .expect("the counterexample is a run of the flawed model");
    assert!(!trace.violated.is_empty(), "{v}: violates nothing");
    // Every step is one Kafka's controller takes the same way.
    let model = PartitionModel::new(trace.config);
    let mut s = model.initial_state();
    for a in trace.actions() {
        let n = model.step(&s, a).expect("a model step");
        assert!(
            kafka_takes(&model, &s, a, &n),
            "{v}: {} is not Kafka's choice",
            a.describe()
        );
        s = n;
    }
    trace
}

/// The broker → model property test with `v`'s fault on must fail. Returns the length of
/// the shrunk schedule (choices, and the steps the broker took in it) and why it failed.
fn property_test_finds(v: Variant) -> (usize, usize, String) {
    // A fixed seed, so that CI finds the same failure every time.
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 20_000,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    let fault = fault_for(v);
    let strategy = (
        prop::collection::vec((any::<u16>(), any::<bool>()), 1..60),
        any::<bool>(),
        1u8..=2,
    );
    let result = runner.run(&strategy, |(choices, flush_every, min_isr)| {
        run(config(flush_every, min_isr), Some(fault), &choices)
    });
    match result {
        Err(TestError::Fail(why, (choices, flush_every, min_isr))) => {
            let mut steps = Vec::new();
            let again = run_recording(
                config(flush_every, min_isr),
                Some(fault),
                &choices,
                &mut steps,
            );
            assert!(
                again.is_err(),
                "{v}: the shrunk schedule passes when run again"
            );
            (choices.len(), steps.len(), why.to_string())
        }
        other => panic!("{v}: the property test did not find the fault: {other:?}"),
    }
}

fn caught_both_ways(v: Variant) {
    const {
        assert!(
            osprey_broker::faults::ENABLED,
            "built without osprey-broker's faults feature"
        )
    };
    let trace = counterexample(v);
    let acts = where_the_flaw_acts(&trace).expect("the flaw acts somewhere");

    let correct = replay_faulty(&trace, None);
    let (step, why) = correct
        .mismatch
        .unwrap_or_else(|| panic!("{v}: the correct broker followed the counterexample"));
    assert_eq!(
        step, acts,
        "{v}: the correct broker diverged at step {step} ({why}), the flaw acts at step {acts}"
    );

    let faulty = replay_faulty(&trace, Some(fault_for(v)));
    assert!(
        faulty.mismatch.is_none(),
        "{v}: the faulty broker diverged from the counterexample: {:?}",
        faulty.mismatch
    );
    // The broker's own state breaks each data-loss property the model reports.
    for p in trace
        .violated
        .iter()
        .filter(|p| ["NoCommittedWriteLoss", "ConsumedNeverLost"].contains(&p.as_str()))
    {
        assert!(
            faulty.losses.iter().any(|(_, l)| l.starts_with(p.as_str())),
            "{v}: the model reports {p}, the faulty broker's state shows {:?}",
            faulty.losses
        );
    }
    assert!(
        !faulty.losses.is_empty(),
        "{v}: the faulty broker loses nothing"
    );

    let (len, steps, why) = property_test_finds(v);
    eprintln!(
        "{v}: counterexample of {} steps; correct broker diverges at step {step}; faulty broker loses data at step {} ({}); property test shrinks to {len} choices, {steps} broker steps: {why}",
        trace.steps.len() - 1,
        faulty.losses[0].0,
        faulty.losses[0].1,
    );
    assert!(len > 0);
}

#[test]
fn unclean_election() {
    caught_both_ways(Variant::UncleanElection);
}

#[test]
fn hw_truncation() {
    caught_both_ways(Variant::HwTruncation);
}

#[test]
fn no_expand_guard() {
    caught_both_ways(Variant::NoExpandGuard);
}

#[test]
fn eager_isr_shrink() {
    caught_both_ways(Variant::EagerIsrShrink);
}

#[test]
fn last_replica_standing() {
    caught_both_ways(Variant::LastReplicaStanding);
}

#[test]
fn ack_before_replication() {
    caught_both_ways(Variant::AckBeforeReplication);
}

#[test]
fn stale_broker_epoch() {
    caught_both_ways(Variant::StaleBrokerEpoch);
}

#[test]
fn unfenced_truncation() {
    caught_both_ways(Variant::UnfencedTruncation);
}

#[test]
fn single_epoch_truncation() {
    caught_both_ways(Variant::SingleEpochTruncation);
}
