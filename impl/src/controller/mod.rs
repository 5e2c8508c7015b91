//! controller (under construction).
