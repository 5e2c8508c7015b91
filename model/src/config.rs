//! Bounds and switches of the partition model: what `osprey check` takes on its command line.

use crate::types::{MAX_BROKERS, MAX_EPOCH_BOUND, MAX_RECORDS};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// When a replica fsyncs its log. An unclean crash loses everything after the flushed prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlushPolicy {
    /// Every append is fsynced before it is acknowledged or served to followers.
    Every,
    /// Never fsync explicitly; leave it to the OS (Kafka's default). Modelled as: nothing is
    /// durable until a clean shutdown, so an unclean crash loses the whole unflushed log.
    Never,
}

impl FromStr for FlushPolicy {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "every" => Ok(FlushPolicy::Every),
            "never" => Ok(FlushPolicy::Never),
            other => Err(ConfigError(format!(
                "unknown flush policy '{other}': expected 'every' or 'never'"
            ))),
        }
    }
}

impl fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FlushPolicy::Every => "every",
            FlushPolicy::Never => "never",
        })
    }
}

/// How a follower's fetch is delivered: the grain of the Fetch steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FetchDelivery {
    /// The leader handles the request and the follower its response in one transition, as
    /// the public TLA+ specifications of Kafka replication model a fetch. The transition is
    /// still two named steps (`Fetch`, then `HandleFetchResponse`) in traces, so they replay
    /// step by step.
    #[default]
    Atomic,
    /// The response stays in flight (one per follower) while any other step may run: a
    /// finer model, in which a response can arrive after the follower learned a new leader
    /// epoch (what KIP-320 fences), or be lost to a crash after the leader counted it.
    Split,
}

impl FetchDelivery {
    /// Atomic, but split for the two flaws that show with a response in flight: a late
    /// response applied in a newer epoch (unfenced-truncation), and a follower elected while
    /// the response that carried the advanced high watermark is still on its way, so that it
    /// leads with a lagging one (no-expand-guard; atomic delivery needs more records and
    /// epochs than the default bounds to lag it).
    pub fn default_for(variant: Option<Variant>) -> FetchDelivery {
        match variant {
            Some(Variant::UnfencedTruncation | Variant::NoExpandGuard) => FetchDelivery::Split,
            _ => FetchDelivery::Atomic,
        }
    }
}

impl FromStr for FetchDelivery {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "atomic" => Ok(FetchDelivery::Atomic),
            "split" => Ok(FetchDelivery::Split),
            other => Err(ConfigError(format!(
                "unknown fetch delivery '{other}': expected 'atomic' or 'split'"
            ))),
        }
    }
}

impl fmt::Display for FetchDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FetchDelivery::Atomic => "atomic",
            FetchDelivery::Split => "split",
        })
    }
}

/// A historical Kafka flaw that can be switched on; the checker must find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// unclean.leader.election.enable=true (Jepsen, Kafka 0.8, 2013).
    UncleanElection,
    /// Followers truncate to their high watermark on restart and on becoming follower (before KIP-101).
    HwTruncation,
    /// Truncation by leader epoch with one lookup only (the hole KIP-279 closed).
    SingleEpochTruncation,
    /// Fetches are not fenced by the current leader epoch (before KIP-320).
    UnfencedTruncation,
    /// A new leader admits a replica into the ISR before it reaches the leader's epoch start (KAFKA-7128).
    NoExpandGuard,
    /// The leader uses a proposed ISR shrink for its high watermark before the controller commits it (KIP-497).
    EagerIsrShrink,
    /// No KIP-966: the high watermark advances below min.insync.replicas, no ELR, the last ISR member
    /// stays in the ISR across an unclean shutdown.
    LastReplicaStanding,
    /// acks=all is acknowledged once the leader has appended, before followers replicate
    /// (the durability of acks=1 mistaken for acks=all).
    AckBeforeReplication,
    /// The controller admits a replica into the ISR on the word of a fetch from an earlier
    /// incarnation of its broker (before KIP-903's broker epochs).
    StaleBrokerEpoch,
}

impl Variant {
    pub const ALL: [Variant; 9] = [
        Variant::UncleanElection,
        Variant::HwTruncation,
        Variant::SingleEpochTruncation,
        Variant::UnfencedTruncation,
        Variant::NoExpandGuard,
        Variant::EagerIsrShrink,
        Variant::LastReplicaStanding,
        Variant::AckBeforeReplication,
        Variant::StaleBrokerEpoch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::UncleanElection => "unclean-election",
            Variant::HwTruncation => "hw-truncation",
            Variant::SingleEpochTruncation => "single-epoch-truncation",
            Variant::UnfencedTruncation => "unfenced-truncation",
            Variant::NoExpandGuard => "no-expand-guard",
            Variant::EagerIsrShrink => "eager-isr-shrink",
            Variant::LastReplicaStanding => "last-replica-standing",
            Variant::AckBeforeReplication => "ack-before-replication",
            Variant::StaleBrokerEpoch => "stale-broker-epoch",
        }
    }

    /// What the flaw is, in one line, with where it comes from.
    pub fn description(self) -> &'static str {
        match self {
            Variant::UncleanElection => "unclean.leader.election.enable=true: an out-of-sync replica may be elected (Jepsen, Kafka 0.8)",
            Variant::HwTruncation => "followers truncate to their high watermark on restart and on becoming follower (before KIP-101)",
            Variant::SingleEpochTruncation => "a follower truncates after one epoch lookup, without re-validating (before KIP-279)",
            Variant::UnfencedTruncation => "fetch requests and responses are not fenced by the current leader epoch (before KIP-320)",
            Variant::NoExpandGuard => "a new leader admits replicas into the ISR before they reach its epoch start offset (KAFKA-7128)",
            Variant::EagerIsrShrink => "the leader uses a pending ISR shrink for its high watermark (before KIP-497's maximal ISR)",
            Variant::LastReplicaStanding => "the high watermark advances below min.insync.replicas and the last ISR member survives an unclean shutdown (before KIP-966)",
            Variant::AckBeforeReplication => "acks=all answered once the leader has appended, before the high watermark passes the record",
            Variant::StaleBrokerEpoch => "a restarted replica rejoins the ISR on a fetch from its previous incarnation (before KIP-903)",
        }
    }

    /// The settings a variant needs to show its flaw within small bounds (used by tests and CI).
    pub fn small_config(self) -> ModelConfig {
        let mut c = ModelConfig {
            variant: Some(self),
            fetch: FetchDelivery::default_for(Some(self)),
            ..ModelConfig::default()
        };
        match self {
            Variant::UncleanElection => {
                // With min.insync.replicas=2 one fault cannot lose an acknowledged write even
                // with unclean election on; Jepsen's finding was with Kafka's default of 1.
                c.unclean = true;
                c.min_isr = 1;
                c.records = 1;
                c.max_epoch = 2;
            }
            Variant::LastReplicaStanding => {
                c.flush = FlushPolicy::Never;
                c.records = 1;
                c.max_epoch = 2;
            }
            Variant::SingleEpochTruncation => {
                // Three leaders in a row, two records, no ISR change needed.
                c.records = 2;
                c.max_epoch = 3;
                c.max_isr_changes = 0;
            }
            Variant::UnfencedTruncation => {
                c.records = 2;
                c.max_epoch = 3;
                c.max_isr_changes = 1;
            }
            _ => {
                c.records = 1;
                c.max_epoch = 2;
            }
        }
        c
    }
}

impl FromStr for Variant {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Variant::ALL
            .iter()
            .copied()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Variant::ALL.iter().map(|v| v.name()).collect();
                ConfigError(format!(
                    "unknown variant '{s}': expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which acks settings the producer may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AcksChoice {
    /// Every record is sent with acks=all.
    All,
    /// Each record is sent with acks=all or acks=1, both explored.
    Both,
}

impl FromStr for AcksChoice {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "all" => Ok(AcksChoice::All),
            "both" => Ok(AcksChoice::Both),
            other => Err(ConfigError(format!(
                "unknown acks choice '{other}': expected 'all' or 'both'"
            ))),
        }
    }
}

/// The bounds of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Brokers, each holding a replica of the one partition (the replication factor).
    pub brokers: u8,
    /// Records the producer sends.
    pub records: u8,
    /// The largest leader epoch the controller may reach (the first leader has epoch 0).
    pub max_epoch: u8,
    /// How many broker crashes may happen.
    pub max_crashes: u8,
    /// How many partition changes other than elections may happen (ISR shrinks and expands,
    /// fencing of a follower, ELR changes): bounds the partition epoch with `max_epoch`.
    pub max_isr_changes: u8,
    /// min.insync.replicas.
    pub min_isr: u8,
    /// unclean.leader.election.enable.
    pub unclean: bool,
    pub flush: FlushPolicy,
    pub acks: AcksChoice,
    /// Whether fetch responses travel on their own (absent from older traces: atomic).
    #[serde(default)]
    pub fetch: FetchDelivery,
    pub variant: Option<Variant>,
    /// How many replicas' logs may fail (`LogFails`); 0 by default, so the default bounds
    /// explore what they always did (absent from older traces: 0).
    #[serde(default)]
    pub max_log_failures: u8,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            brokers: 3,
            records: 2,
            max_epoch: 3,
            max_crashes: 1,
            max_isr_changes: 2,
            min_isr: 2,
            unclean: false,
            flush: FlushPolicy::Never,
            acks: AcksChoice::All,
            fetch: FetchDelivery::Atomic,
            variant: None,
            max_log_failures: 0,
        }
    }
}

/// A configuration the model cannot run, with a message that names the setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ModelConfig {
    /// The largest partition epoch the bounds allow: one bump per election, per ISR change
    /// and per failed log.
    pub fn max_partition_epoch(&self) -> u8 {
        self.max_epoch + self.max_isr_changes + self.max_log_failures
    }

    pub fn is(&self, v: Variant) -> bool {
        self.variant == Some(v)
    }

    /// Unclean election is on when asked for, or when the unclean-election variant is chosen.
    pub fn unclean_election(&self) -> bool {
        self.unclean || self.is(Variant::UncleanElection)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.brokers < 1 || self.brokers as usize > MAX_BROKERS {
            return err(format!(
                "--brokers {} is out of range: 1 to {MAX_BROKERS}",
                self.brokers
            ));
        }
        if self.records as usize > MAX_RECORDS {
            return err(format!(
                "--records {} is out of range: 0 to {MAX_RECORDS}",
                self.records
            ));
        }
        if self.max_epoch > MAX_EPOCH_BOUND {
            return err(format!(
                "--max-epoch {} is out of range: 0 to {MAX_EPOCH_BOUND}",
                self.max_epoch
            ));
        }
        if self.min_isr < 1 || self.min_isr > self.brokers {
            return err(format!(
                "--min-isr {} is out of range: 1 to the number of brokers ({})",
                self.min_isr, self.brokers
            ));
        }
        if self.max_log_failures > self.brokers {
            return err(format!(
                "--max-log-failures {} is out of range: 0 to the number of brokers ({})",
                self.max_log_failures, self.brokers
            ));
        }
        if self.max_isr_changes > 20 {
            return err(format!(
                "--max-isr-changes {} is out of range: at most 20",
                self.max_isr_changes
            ));
        }
        Ok(())
    }
}
