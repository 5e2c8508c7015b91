//! Osprey benches.
