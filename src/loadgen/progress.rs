//! The progress line on stderr while a run goes: sent, acked, errors and the p99 of the
//! answers since the last line. Redrawn in place on a terminal, one line a second otherwise.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::loadgen::stats::Recorder;

/// Draws the line every `period` until `done` is set.
pub async fn show(recorder: Rc<RefCell<Recorder>>, done: Rc<Cell<bool>>, label: String, started: Instant) {
    let terminal = std::io::stderr().is_terminal();
    let period = if terminal { Duration::from_millis(250) } else { Duration::from_secs(1) };
    while !done.get() {
        tokio::time::sleep(period).await;
        let line = {
            let mut r = recorder.borrow_mut();
            let p99_us = r.take_window_p99_us();
            format!(
                "{label} {:>5.1}s  sent {:>9}  acked {:>9}  errors {:>7}  p99 {:>8.3} ms",
                started.elapsed().as_secs_f64(),
                r.sent,
                r.acked,
                r.errors_total(),
                p99_us as f64 / 1_000.0
            )
        };
        let mut err = std::io::stderr().lock();
        let _ = if terminal { write!(err, "\r{line}\x1b[K") } else { writeln!(err, "{line}") };
        let _ = err.flush();
    }
    if terminal {
        let _ = writeln!(std::io::stderr());
    }
}
