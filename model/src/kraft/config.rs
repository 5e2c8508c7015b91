//! Bounds and switches of the KRaft quorum model: what `osprey check --protocol kraft` takes.

use super::state::{MAX_LOG, MAX_VOTERS};
use crate::config::{ConfigError, FlushPolicy};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The largest `max_epoch` the model accepts (the ghost history has one slot per epoch).
pub const MAX_EPOCH_BOUND: u8 = 6;

/// A flaw that can be switched on; the checker must find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KraftVariant {
    /// Voters grant their vote without comparing the candidate's last log epoch and end
    /// offset with their own (Raft's election restriction, KIP-595's Vote check, removed).
    VoteWithoutLogCheck,
    /// KIP-595 alone, without Pre-Vote (KIP-996): a timeout starts an election in the next
    /// epoch at once, and a voter that hears from a live leader still moves to a higher
    /// epoch on a Vote, so a voter that was cut off deposes a healthy leader.
    NoPreVote,
}

impl KraftVariant {
    pub const ALL: [KraftVariant; 2] = [KraftVariant::VoteWithoutLogCheck, KraftVariant::NoPreVote];

    pub fn name(self) -> &'static str {
        match self {
            KraftVariant::VoteWithoutLogCheck => "vote-without-log-check",
            KraftVariant::NoPreVote => "no-pre-vote",
        }
    }

    /// What the flaw is, in one line.
    pub fn description(self) -> &'static str {
        match self {
            KraftVariant::VoteWithoutLogCheck => {
                "voters grant a Vote without checking that the candidate's log is at least as up to date (KIP-595)"
            }
            KraftVariant::NoPreVote => {
                "no Pre-Vote (KIP-996): a timeout starts an election at once and a live leader's voters move to a higher epoch on a Vote"
            }
        }
    }
}

impl FromStr for KraftVariant {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KraftVariant::ALL
            .iter()
            .copied()
            .find(|v| v.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = KraftVariant::ALL.iter().map(|v| v.name()).collect();
                ConfigError(format!(
                    "unknown kraft variant '{s}': expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for KraftVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The bounds of one check of the quorum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KraftConfig {
    /// Voters in the controller quorum (controller.quorum.voters).
    pub voters: u8,
    /// Metadata records the active controller appends.
    pub records: u8,
    /// The largest epoch a candidate may start (every voter starts in epoch 0, leaderless).
    pub max_epoch: u8,
    /// How many voter crashes may happen.
    pub max_crashes: u8,
    /// Whether log appends are fsynced. The quorum-state file (epoch, vote, leader) always is.
    pub flush: FlushPolicy,
    pub variant: Option<KraftVariant>,
}

impl Default for KraftConfig {
    fn default() -> Self {
        KraftConfig {
            voters: 3,
            records: 2,
            max_epoch: 3,
            max_crashes: 1,
            // Kafka's raft client flushes the metadata log on every append.
            flush: FlushPolicy::Every,
            variant: None,
        }
    }
}

impl KraftConfig {
    pub fn is(&self, v: KraftVariant) -> bool {
        self.variant == Some(v)
    }

    /// The number of voters that make a majority.
    /// Whether voters run Pre-Vote (KIP-996): all but the `no-pre-vote` variant.
    pub fn pre_vote(&self) -> bool {
        !self.is(KraftVariant::NoPreVote)
    }

    pub fn majority(&self) -> usize {
        self.voters as usize / 2 + 1
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.voters < 1 || self.voters as usize > MAX_VOTERS {
            return err(format!(
                "--voters {} is out of range: 1 to {MAX_VOTERS}",
                self.voters
            ));
        }
        if self.max_epoch > MAX_EPOCH_BOUND {
            return err(format!(
                "--max-epoch {} is out of range: 0 to {MAX_EPOCH_BOUND}",
                self.max_epoch
            ));
        }
        // Each epoch's leader appends one LeaderChange control record, then the client records.
        if self.records as usize + self.max_epoch as usize > MAX_LOG {
            return err(format!(
                "--records {} with --max-epoch {} can exceed the modelled log of {MAX_LOG} entries (records + max epoch <= {MAX_LOG})",
                self.records, self.max_epoch
            ));
        }
        Ok(())
    }
}
