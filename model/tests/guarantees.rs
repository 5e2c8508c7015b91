//! Spot checks of the guarantee matrix at bounds small enough for CI: for each setting that
//! matters, a cell where the guarantee holds (exhaustively) and the neighbouring cell, one
//! setting changed, where the model finds a counterexample.

use osprey_model::guarantees::{check_cell, story, Cell, GridBounds, Verdict};

const BOUNDS: GridBounds = GridBounds {
    max_epoch: 2,
    max_isr_changes: 2,
};

/// RF 2, min.insync.replicas 1, acks=all, unclean off, flush every, ELR on, 1 crash: the
/// safest two-replica cell.
const BASE: Cell = Cell {
    rf: 2,
    min_isr: 1,
    acks_all: true,
    unclean: false,
    flush_every: true,
    elr: true,
    crashes: 1,
};

fn verdict(cell: Cell) -> Verdict {
    let v = check_cell(cell, BOUNDS, 2);
    assert!(v.exhaustive, "{}: not exhaustive", cell.label());
    v
}

fn assert_safe(cell: Cell) {
    let v = verdict(cell);
    assert!(
        v.acked_never_lost && v.consumed_never_lost && v.counterexample.is_none(),
        "{}: {:?}",
        cell.label(),
        v.violated
    );
}

/// The cell loses `property`, and its counterexample is a valid run of the model that ends
/// in the loss.
fn assert_loses(cell: Cell, property: &str) -> String {
    let v = verdict(cell);
    assert!(
        v.violated.iter().any(|p| p == property),
        "{}: expected {property} violated, got {:?}",
        cell.label(),
        v.violated
    );
    let trace = v
        .counterexample
        .expect("a violated cell has a counterexample");
    trace
        .validate()
        .expect("the counterexample is a run of the model");
    story(&trace)
}

#[test]
fn acks_one_loses_an_acknowledged_write_that_acks_all_keeps() {
    assert_safe(BASE);
    let story = assert_loses(
        Cell {
            acks_all: false,
            ..BASE
        },
        "AckedNeverLost",
    );
    assert!(story.contains("acks=1"), "{story}");
}

#[test]
fn unclean_election_loses_consumed_records() {
    let story = assert_loses(
        Cell {
            unclean: true,
            ..BASE
        },
        "ConsumedNeverLost",
    );
    assert!(story.contains("elected"), "{story}");
}

#[test]
fn without_elr_an_unflushed_tail_is_lost_and_with_elr_it_is_not() {
    // RF 2, min.insync.replicas 2, flush never: Kafka 4.x (ELR) keeps every write; Kafka 3.x
    // elects the last ISR member back after its disk lost the acknowledged record.
    let cell = Cell {
        min_isr: 2,
        flush_every: false,
        ..BASE
    };
    assert_safe(cell);
    let story = assert_loses(Cell { elr: false, ..cell }, "AckedNeverLost");
    assert!(story.contains("unflushed tail"), "{story}");
}

#[test]
fn flushing_every_write_keeps_a_single_replica_through_a_crash() {
    let single = Cell {
        rf: 1,
        elr: false,
        ..BASE
    };
    assert_safe(single);
    assert_loses(
        Cell {
            flush_every: false,
            ..single
        },
        "AckedNeverLost",
    );
}

#[test]
fn a_second_crash_breaks_what_one_crash_does_not() {
    let cell = Cell {
        min_isr: 2,
        unclean: true,
        flush_every: false,
        ..BASE
    };
    assert_safe(cell);
    assert_loses(Cell { crashes: 2, ..cell }, "AckedNeverLost");
}

#[test]
fn acks_all_stays_available_after_a_broker_loss_only_above_min_insync_replicas() {
    assert!(verdict(BASE).available);
    assert!(!verdict(Cell { min_isr: 2, ..BASE }).available);
    assert!(!verdict(Cell { rf: 1, ..BASE }).available);
}
