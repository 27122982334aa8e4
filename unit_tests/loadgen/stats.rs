//! Unit tests of `src/loadgen/stats.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps because a failure should fail the test.
use super::*;

#[test]
fn an_order_is_answered_once_and_counts_only_after_the_warm_up() {
    let t0 = Instant::now();
    let mut in_flight = InFlight::default();
    let mut recorder = Recorder::default();
    in_flight.sent(0, t0, t0, false);
    in_flight.sent(1, t0, t0, true);
    recorder.sent(false);
    recorder.sent(true);
    let warm = in_flight.answered(0, t0 + Duration::from_millis(1)).unwrap();
    recorder.answered(warm, t0, Ok(()));
    let measured = in_flight.answered(1, t0 + Duration::from_millis(1)).unwrap();
    recorder.answered(measured, t0, Err("rate_limited"));
    assert_eq!(in_flight.answered(1, t0), None, "a second answer to one id is ignored");
    assert_eq!(in_flight.answered(7, t0), None, "an id never sent is ignored");
    assert_eq!((recorder.sent, recorder.acked, recorder.errors_total()), (1, 0, 1));
    assert_eq!(recorder.errors.get("rate_limited"), Some(&1));
    assert_eq!(in_flight.outstanding(), 0);
}
