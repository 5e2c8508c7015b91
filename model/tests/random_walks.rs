//! Property tests: random walks of the default protocol, under larger bounds than the
//! exhaustive tests reach, never break an always-property.

use osprey_model::trace::violated_properties;
use osprey_model::{AcksChoice, FlushPolicy, ModelConfig, PartitionModel};
use proptest::prelude::*;

fn walk(config: ModelConfig, choices: &[u16]) -> Result<(), String> {
    let model = PartitionModel::new(config);
    let mut state = model.initial_state();
    let mut actions = Vec::new();
    for (i, c) in choices.iter().enumerate() {
        actions.clear();
        model.enabled_actions(&state, &mut actions);
        let enabled: Vec<_> = actions
            .iter()
            .filter_map(|a| model.step(&state, *a).map(|s| (*a, s)))
            .collect();
        if enabled.is_empty() {
            break;
        }
        let (action, next) = enabled[*c as usize % enabled.len()];
        state = next;
        let broken = violated_properties(&model, &state);
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
        brokers in 3u8..=5,
        min_isr in 1u8..=3,
        records in 1u8..=4,
        flush_every in any::<bool>(),
        acks_both in any::<bool>(),
        choices in proptest::collection::vec(any::<u16>(), 1..120),
    ) {
        let config = ModelConfig {
            brokers,
            records,
            max_epoch: 5,
            // Kafka's promise covers min.insync.replicas - 1 unclean shutdowns (KIP-966).
            max_crashes: if flush_every { 2 } else { min_isr.min(brokers) - 1 },
            max_isr_changes: 6,
            min_isr: min_isr.min(brokers),
            flush: if flush_every { FlushPolicy::Every } else { FlushPolicy::Never },
            acks: if acks_both { AcksChoice::Both } else { AcksChoice::All },
            ..ModelConfig::default()
        };
        prop_assert!(walk(config, &choices).is_ok(), "{:?}", walk(config, &choices));
    }
}
