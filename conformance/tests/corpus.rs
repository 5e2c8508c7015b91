//! The committed corpus (`conformance/traces/`) replays against the broker with no mismatch,
//! and exercises every step kind and every sometimes-property's witness.

use osprey_conformance::report::{load_dir, replay_corpus};
use osprey_model::replication::Replication;
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
    let report = replay_corpus::<Replication>(&traces);
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
