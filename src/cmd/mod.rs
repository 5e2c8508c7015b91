//! One module per subcommand.

pub mod broker;
pub mod check;
pub mod cluster;
pub mod conformance;
pub mod kraft;
pub mod metadata_quorum;
pub mod topics;
pub mod traces;
