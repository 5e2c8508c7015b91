//! Broker → model with the correct broker: every run of the broker is a run of the model
//! ([`osprey_conformance::explore`]). Failures shrink to a short schedule.

use osprey_conformance::explore::{config, run};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn broker_runs_are_model_runs(
        choices in prop::collection::vec((any::<u16>(), any::<bool>()), 1..60),
        flush_every in any::<bool>(),
        min_isr in 1u8..=2,
    ) {
        run(config(flush_every, min_isr), None, &choices)?;
    }
}
