//! One module per subcommand.

pub mod broker;
pub mod check;
pub mod cluster;
pub mod topics;
pub mod conformance;
pub mod traces;
