//! The KRaft quorum model: the default protocol holds exhaustively within small bounds, the
//! Vote without its log check loses a committed record, and random walks under larger bounds
//! never break an always-property.

use osprey_model::check::{check, CheckOptions, Engine};
use osprey_model::kraft::properties::violated;
use osprey_model::kraft::{KraftConfig, KraftModel, KraftTrace, KraftVariant, Quorum};
use osprey_model::FlushPolicy;
use proptest::prelude::*;

fn opts(engine: Engine) -> CheckOptions {
    CheckOptions {
        threads: 2,
        engine,
        stop_at_first_violation: true,
    }
}

fn small() -> KraftConfig {
    KraftConfig {
        records: 1,
        max_epoch: 2,
        ..KraftConfig::default()
    }
}

#[test]
fn default_protocol_holds_exhaustively_within_small_bounds() {
    let report = check::<Quorum>(small(), &opts(Engine::DfsSymmetry), |_| {});
    assert_eq!(report.verdict, "ok", "{:?}", report.counterexample);
    assert!(report.complete);
    assert!(report.unique_states > 100_000, "{}", report.unique_states);
    for p in &report.properties {
        assert!(p.holds, "{} ({}) does not hold", p.name, p.expectation);
    }
}

#[test]
fn symmetry_reduction_agrees_and_explores_fewer_states() {
    let config = KraftConfig {
        max_crashes: 0,
        ..small()
    };
    let plain = check::<Quorum>(config, &opts(Engine::Bfs), |_| {});
    let reduced = check::<Quorum>(config, &opts(Engine::DfsSymmetry), |_| {});
    assert_eq!(plain.verdict, "ok");
    assert_eq!(reduced.verdict, "ok");
    assert!(reduced.properties.iter().all(|p| p.holds));
    assert!(reduced.unique_states < plain.unique_states);
}

#[test]
fn vote_without_log_check_loses_a_committed_record() {
    let config = KraftConfig {
        variant: Some(KraftVariant::VoteWithoutLogCheck),
        ..small()
    };
    let report = check::<Quorum>(config, &opts(Engine::Bfs), |_| {});
    assert_eq!(report.verdict, "violation");
    let trace = report.counterexample.expect("a counterexample");
    assert!(
        trace
            .violated
            .iter()
            .any(|p| p == "LeaderCompleteness" || p == "CommittedRecordNeverLost"),
        "{:?}",
        trace.violated
    );
    trace.validate().expect("the counterexample replays");
    // It survives a JSON round trip as a kraft trace.
    let json = serde_json::to_string(&trace).unwrap();
    assert!(json.contains("\"protocol\":\"kraft\""));
    let back: KraftTrace = serde_json::from_str(&json).unwrap();
    assert_eq!(back, trace);
}

#[test]
fn without_pre_vote_a_returning_voter_disrupts_a_stable_leader() {
    let config = KraftConfig {
        variant: Some(KraftVariant::NoPreVote),
        ..small()
    };
    let report = check::<Quorum>(config, &opts(Engine::Bfs), |_| {});
    assert_eq!(report.verdict, "violation");
    let trace = report.counterexample.expect("a counterexample");
    assert_eq!(trace.violated, vec!["StableLeaderNotDisrupted".to_string()]);
    trace.validate().expect("the counterexample replays");
    // The shortest: elect, a follower times out into the next epoch, its Vote deposes.
    assert!(trace.steps.len() <= 8, "{} steps", trace.steps.len());
}

#[test]
fn unflushed_logs_lose_committed_records() {
    // Raft needs durable logs. With nothing flushed the leader counts no entry of its own,
    // so a commit needs every follower of three: one crash cannot lose it, two can.
    let config = KraftConfig {
        flush: FlushPolicy::Never,
        max_crashes: 2,
        ..small()
    };
    let report = check::<Quorum>(config, &opts(Engine::Bfs), |_| {});
    assert_eq!(report.verdict, "violation");
    let trace = report.counterexample.expect("a counterexample");
    assert!(trace
        .violated
        .iter()
        .any(|p| p == "CommittedRecordNeverLost"));
    let once = check::<Quorum>(
        KraftConfig {
            max_crashes: 1,
            ..config
        },
        &opts(Engine::DfsSymmetry),
        |_| {},
    );
    assert_eq!(once.verdict, "ok");
}

fn walk(config: KraftConfig, choices: &[u16]) -> Result<(), String> {
    let model = KraftModel::new(config);
    let mut state = model.initial_state();
    let mut actions = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        actions.clear();
        model.enabled_actions(&state, &mut actions);
        if actions.is_empty() {
            break;
        }
        let action = actions[*c as usize % actions.len()];
        state = model.step(&state, action).expect("enabled");
        let broken = violated(&model, &state);
        if !broken.is_empty() {
            return Err(format!("step {i}: {} broke {broken:?}", action.describe()));
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_walks_keep_every_property(
        voters in 1u8..=5,
        records in 1u8..=3,
        max_crashes in 0u8..=3,
        choices in proptest::collection::vec(any::<u16>(), 1..150),
    ) {
        let config = KraftConfig {
            voters,
            records,
            max_epoch: 5,
            max_crashes,
            flush: FlushPolicy::Every,
            variant: None,
        };
        prop_assert!(walk(config, &choices).is_ok(), "{}", walk(config, &choices).unwrap_err());
    }
}
