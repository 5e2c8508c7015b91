//! Osprey conformance.
