//! storage (under construction).
