//! Test-only faults that put historical Kafka flaws back into the broker, one per bug
//! variant of the model (`osprey_model::Variant`), so the conformance suite can show that it
//! catches each of them from both sides (`specs/conformance.md`).
//!
//! The checks are compiled only with the `faults` cargo feature: without it every [`fault!`]
//! is the constant `false` (the names below still exist, so a driver can name a fault, but
//! switching one on does nothing; [`ENABLED`] tells which build this is). Faults are
//! chosen at run time ([`crate::replication::Replica::set_faults`], or `faults` in
//! [`crate::replication::ReplicaConfig`] and [`crate::controller::ControllerConfig`]) so one
//! test binary runs the correct and the faulty broker side by side. Each fault is checked
//! exactly where the flaw lived:
//!
//! | fault | where |
//! |---|---|
//! | `UncleanElection` | controller: elections treat `unclean.leader.election.enable` as true |
//! | `HwTruncation` | replica: `become_follower` and `restart` truncate to the high watermark |
//! | `SingleEpochTruncation` | replica: a diverging epoch is trusted as is, with no own lookup, and the follower stops sending its last fetched epoch |
//! | `UnfencedTruncation` | replica: fetches and fetch responses are not checked against the current leader epoch, no re-validation |
//! | `NoExpandGuard` | replica: `may_join_isr` forgets the leader epoch start offset |
//! | `EagerIsrShrink` | replica: the high watermark reads the pending shrunk ISR |
//! | `LastReplicaStanding` | replica: the high watermark advances below min ISR; controller: no ELR, the last ISR member stays in the ISR |
//! | `AckBeforeReplication` | replica: acks=all is answered at the append |
//! | `StaleBrokerEpoch` | controller: AlterPartition ignores the members' broker epochs |

/// Whether this build checks faults (the `faults` feature).
pub const ENABLED: bool = cfg!(feature = "faults");

/// One historical flaw (named as the model's variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    UncleanElection,
    HwTruncation,
    SingleEpochTruncation,
    UnfencedTruncation,
    NoExpandGuard,
    EagerIsrShrink,
    LastReplicaStanding,
    AckBeforeReplication,
    StaleBrokerEpoch,
}

/// The fault a replica or controller runs with (none by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    active: Option<Fault>,
}

impl Faults {
    pub fn new(active: Option<Fault>) -> Self {
        Faults { active }
    }

    /// Whether `f` is switched on.
    pub fn is(&self, f: Fault) -> bool {
        self.active == Some(f)
    }
}

/// Without the `faults` feature no fault acts (a function rather than a literal `false`, so
/// that lints do not read the checks as constant conditions).
#[cfg(not(feature = "faults"))]
#[inline(always)]
pub fn never(_: &Faults) -> bool {
    false
}

/// `fault!(faults, Name)`: whether fault `Name` is switched on; `false` without the feature.
#[macro_export]
macro_rules! fault {
    ($faults:expr, $f:ident) => {{
        #[cfg(feature = "faults")]
        let on = $faults.is($crate::faults::Fault::$f);
        #[cfg(not(feature = "faults"))]
        let on = $crate::faults::never(&$faults);
        on
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_acts_only_in_builds_with_the_feature() {
        let on = Faults::new(Some(Fault::HwTruncation));
        assert!(on.is(Fault::HwTruncation));
        assert!(!on.is(Fault::NoExpandGuard));
        assert_eq!(fault!(on, HwTruncation), ENABLED);
        assert!(!fault!(on, NoExpandGuard));
        assert!(!fault!(Faults::default(), HwTruncation));
    }
}
