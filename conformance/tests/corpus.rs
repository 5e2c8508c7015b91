//! The committed corpus (`conformance/traces/`) replays against the broker with no mismatch,
//! and exercises every step kind and every sometimes-property's witness.

use osprey_conformance::report::{load_dir, replay_all};
use std::path::Path;

#[test]
fn the_corpus_replays_without_mismatch_and_covers_every_step_kind() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    let traces = load_dir(&dir).unwrap();
    assert!(traces.len() >= 200, "only {} traces", traces.len());
    for (file, t) in &traces {
        t.validate()
            .unwrap_or_else(|e| panic!("{} is not a run of the model: {e}", file.display()));
    }
    let report = replay_all(&traces);
    assert_eq!(report.mismatches, 0, "{}", report.render());
    assert!(report.steps > 1000, "{} steps", report.steps);
    assert!(
        report.uncovered_kinds().is_empty(),
        "no trace takes {:?}",
        report.uncovered_kinds()
    );
    for (name, n) in &report.witnesses {
        assert!(*n > 0, "no trace witnesses {name}");
    }
}

/// The model keeps an empty epoch in its cache where Kafka (and the broker) drop it, and
/// that is observable (`specs/conformance.md`, "Divergences found"). When the model is fixed
/// this trace no longer replays as a run of it, and belongs in the corpus instead.
#[test]
fn the_model_keeps_an_empty_epoch_that_kafka_drops() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("divergences/model-keeps-empty-epoch.json");
    let trace: osprey_model::trace::Trace =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    trace.validate().unwrap();
    let outcome = osprey_conformance::replay::replay(&trace);
    let m = outcome
        .mismatch
        .expect("the broker answers as Kafka, not as the model");
    assert_eq!(m.step, 20, "{m}");
    assert!(m.diff.iter().any(|d| d.starts_with("broker 1 log:")), "{m}");
}
