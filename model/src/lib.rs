//! Osprey model.
