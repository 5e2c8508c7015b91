//! The committed KRaft corpus (`conformance/traces/kraft/`) replays against the quorum core
//! with no mismatch and exercises every step kind and every sometimes-property's witness;
//! the flawed model's counterexample (`vote-without-log-check`) does not: the correct core
//! refuses the vote the flawed model grants.

use osprey_conformance::kraft_explore::explore;
use osprey_conformance::kraft_replay::replay;
use osprey_conformance::kraft_report::load_kraft;
use osprey_conformance::report::replay_corpus;
use osprey_model::check::{check, CheckOptions, Engine};
use osprey_model::kraft::trace::{KraftTrace, VoterRole};
use osprey_model::kraft::Quorum;
use osprey_model::kraft::{KraftAction, KraftConfig, KraftVariant};
use osprey_model::FlushPolicy;
use std::path::Path;

fn corpus() -> Vec<(std::path::PathBuf, KraftTrace)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("traces");
    load_kraft(&dir).unwrap()
}

#[test]
fn the_kraft_corpus_replays_without_mismatch_and_covers_every_step_kind() {
    let traces = corpus();
    assert!(traces.len() >= 100, "only {} traces", traces.len());
    for (file, t) in &traces {
        // The correct protocol, with Pre-Vote or (as Kafka before KIP-996) without it.
        assert!(
            matches!(t.config.variant, None | Some(KraftVariant::NoPreVote)),
            "{}",
            file.display()
        );
        t.validate()
            .unwrap_or_else(|e| panic!("{} is not a run of the model: {e}", file.display()));
    }
    let report = replay_corpus::<Quorum>(&traces);
    assert_eq!(report.mismatches, 0, "{}", report.render());
    assert!(report.steps > 1000, "{} steps", report.steps);
    assert_eq!(report.coverage.len(), 11);
    assert!(
        report.uncovered_kinds().is_empty(),
        "no trace takes {:?}",
        report.uncovered_kinds()
    );
    assert_eq!(report.witnesses.len(), 3);
    for (name, n) in &report.witnesses {
        assert!(*n > 0, "no trace witnesses {name}");
    }
}

#[test]
fn a_recorded_state_the_core_does_not_reach_is_reported_at_its_step() {
    let (_, trace) = corpus()
        .into_iter()
        .find(|(_, t)| {
            t.steps
                .iter()
                .any(|s| s.state.voters.iter().any(|v| v.high_watermark > 0))
        })
        .expect("a corpus trace where a high watermark advances");
    let at = trace
        .steps
        .iter()
        .position(|s| s.state.voters.iter().any(|v| v.high_watermark > 0))
        .unwrap();
    let mut tampered = trace.clone();
    let voter = tampered.steps[at]
        .state
        .voters
        .iter_mut()
        .find(|v| v.high_watermark > 0)
        .unwrap();
    voter.high_watermark -= 1;
    let id = voter.id;
    let outcome = replay(&tampered);
    let m = outcome.mismatch.expect("the tampered state is caught");
    assert_eq!(m.step, at);
    assert_eq!(outcome.steps, at - 1);
    assert_eq!(m.diff.len(), 1, "{m}");
    assert!(
        m.diff[0].starts_with(&format!("voter {id} high_watermark")),
        "{m}"
    );
    assert!(replay(&trace).mismatch.is_none());
}

#[test]
fn the_vote_without_log_check_counterexample_diverges_where_the_flawed_model_grants() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kraft-vote-without-log-check.json");
    let trace: KraftTrace = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    trace.validate().unwrap();
    assert_eq!(trace.violated, vec!["LeaderCompleteness".to_string()]);
    diverges_at_the_flawed_vote(&trace);
}

#[test]
fn the_checkers_current_counterexample_diverges_too() {
    let config = KraftConfig {
        variant: Some(KraftVariant::VoteWithoutLogCheck),
        ..KraftConfig::default()
    };
    let opts = CheckOptions {
        threads: 1,
        engine: Engine::Bfs,
        stop_at_first_violation: true,
    };
    let report = check::<Quorum>(config, &opts, |_| {});
    let trace = report.counterexample.expect("the flaw is found");
    assert!(!trace.violated.is_empty());
    diverges_at_the_flawed_vote(&trace);
}

/// The replay of a `vote-without-log-check` trace agrees with the model up to a HandleVote
/// where the model grants a vote to a candidate whose log is behind the voter's, and the
/// core refuses it.
fn diverges_at_the_flawed_vote(trace: &KraftTrace) {
    assert_eq!(
        trace.config.variant,
        Some(KraftVariant::VoteWithoutLogCheck)
    );
    let outcome = replay(trace);
    let m = outcome
        .mismatch
        .expect("the correct core diverges from the flawed model");
    // Every step before it agrees.
    assert_eq!(outcome.steps, m.step - 1);
    assert!(
        m.step < trace.steps.len() - 1,
        "diverges before the violation"
    );
    let Some(KraftAction::HandleVote { candidate, voter }) = m.action else {
        panic!("diverges at {m}");
    };
    let (model, core) = (m.model.clone().unwrap(), m.implementation.clone().unwrap());
    let (mv, cv) = (&model.voters[voter as usize], &core.voters[voter as usize]);
    // The flawed model grants the vote to a candidate whose log is behind the voter's ...
    assert_eq!((mv.role, mv.voted_for), (VoterRole::Voted, Some(candidate)));
    let c = &model.voters[candidate as usize];
    let last = |log: &[(u8, u8)]| log.last().map_or(0, |e| e.1);
    assert!(
        (last(&c.log), c.log_end_offset) < (last(&mv.log), mv.log_end_offset),
        "{m}"
    );
    // ... the core moves to the candidate's epoch and refuses it.
    assert_eq!(
        (cv.role, cv.epoch, cv.voted_for),
        (VoterRole::Unattached, mv.epoch, None)
    );
    assert_eq!(
        m.diff,
        vec![
            format!("voter {voter} role: model Voted, core Unattached"),
            format!("voter {voter} voted_for: model Some({candidate}), core None"),
        ]
    );
}

fn config(voters: u8, max_epoch: u8, max_crashes: u8, flush: FlushPolicy) -> KraftConfig {
    KraftConfig {
        voters,
        records: 1,
        max_epoch,
        max_crashes,
        flush,
        variant: None,
    }
}

fn explores_completely(c: KraftConfig, at_least: usize) {
    let e = explore(c, 10_000_000).unwrap();
    if let Some((trace, m)) = &e.mismatch {
        panic!("{c:?}: {m}\n{}", trace.table());
    }
    assert!(e.complete, "{c:?}");
    assert!(e.states >= at_least, "{c:?}: only {} states", e.states);
}

#[test]
fn every_reachable_state_of_small_quorums_conforms() {
    // Sizes as measured; a much smaller count would mean the exploration lost states.
    explores_completely(config(3, 1, 1, FlushPolicy::Every), 46_831);
    explores_completely(config(2, 2, 1, FlushPolicy::Every), 4_988);
}

/// Larger bounds, minutes each: 3 voters over 2 epochs (1,555,770 states) and 4 voters over
/// 1 epoch with a crash (1,742,536). Flush every only: Kafka's raft client fsyncs a voter's
/// log before it fetches again, and the core relies on it.
/// `cargo test -p osprey-conformance --test kraft_corpus -- --ignored`
#[test]
#[ignore = "minutes; run with --ignored"]
fn every_reachable_state_of_larger_quorums_conforms() {
    explores_completely(config(3, 2, 1, FlushPolicy::Every), 1_555_770);
    explores_completely(config(4, 1, 1, FlushPolicy::Every), 1_742_536);
}

#[test]
fn the_exploration_finds_the_flawed_vote() {
    let c = KraftConfig {
        variant: Some(KraftVariant::VoteWithoutLogCheck),
        ..config(3, 2, 0, FlushPolicy::Every)
    };
    let e = explore(c, 1_000_000).unwrap();
    let (trace, m) = e.mismatch.expect("the flawed vote is found");
    assert!(
        matches!(m.action, Some(KraftAction::HandleVote { .. })),
        "{m}"
    );
    // The trace reaching it replays to the same divergence.
    let replayed = replay(&trace).mismatch.expect("replays to the divergence");
    assert_eq!((replayed.step, replayed.diff), (m.step, m.diff));
}
