//! One module per subcommand.

pub mod broker;
pub mod check;
pub mod kraft;
pub mod topics;
