//! What each fuzz target checks, kept in a library so that the committed corpora are also
//! replayed by a plain `cargo test` (`tests/corpus.rs`): an input the fuzzer once found
//! stays a regression test.
//!
//! Every decoder Osprey runs on bytes it did not write itself is here: a request frame from a
//! socket, a produced record batch, a partition's files after a crash or a bad disk, a
//! metadata snapshot fetched from another controller. Beyond "never panics", each check
//! asserts what the broker promises about that input: bounded memory, a refusal that is a
//! Kafka error, and, for what is accepted, that a real client can read it back.

pub mod alloc;
pub mod metadata_snapshot;
pub mod partition_log;
pub mod record_batch;
pub mod request;

/// What a target asserts of one input (it panics when the input breaks a promise).
pub type Check = fn(&[u8]);

/// Each target's name, as `cargo fuzz` knows it, and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("request", request::check),
    ("record_batch", record_batch::check),
    ("partition_log", partition_log::check),
    ("metadata_snapshot", metadata_snapshot::check),
];
