//! Wakes each client at its scheduled send times. tokio's timer has millisecond granularity:
//! clients sleeping on it sent about 1 ms late at the median, which open-loop accounting
//! rightly charges to ack latency but which is the generator's error, not the server's. A
//! thread sleeping on the OS's high-resolution timer wakes within tens of microseconds and
//! pokes the client's `Notify`, which wakes the client's runtime at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The longest single sleep, so a stop request is seen promptly.
const MAX_SLEEP: Duration = Duration::from_millis(20);

/// The pacing thread; stopped and joined on drop.
pub struct Pacer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Pacer {
    /// Starts pacing: for every send time of client `i` in `schedules[i]` (offsets from
    /// `start`), `wakers[i]` is notified at that time (never before).
    pub fn start(start: Instant, schedules: &[Vec<Duration>], wakers: Vec<Arc<Notify>>) -> Pacer {
        let mut times: Vec<(Duration, usize)> =
            schedules.iter().enumerate().flat_map(|(i, due)| due.iter().map(move |d| (*d, i))).collect();
        times.sort_unstable();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::Builder::new()
            .name("loadgen-pacer".into())
            .spawn(move || {
                for (offset, client) in times {
                    let at = start + offset;
                    loop {
                        if stopped.load(Ordering::Relaxed) {
                            return;
                        }
                        let now = Instant::now();
                        if now >= at {
                            break;
                        }
                        std::thread::sleep((at - now).min(MAX_SLEEP));
                    }
                    if let Some(waker) = wakers.get(client) {
                        waker.notify_one();
                    }
                }
            })
            .ok();
        Pacer { stop, handle }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
