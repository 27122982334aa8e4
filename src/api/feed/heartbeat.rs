//! The `heartbeat` channel: a message with an increasing counter every period, so a client
//! can tell a quiet market from a dead connection, and a missed beat from a gap.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;

use super::subscribers::{Outlet, Subscribers};
use crate::api::ws::protocol::{self, HeartbeatBody};

#[derive(Default)]
pub struct HeartbeatFeed {
    state: Mutex<(u64, Subscribers<()>)>,
}

impl HeartbeatFeed {
    pub fn subscribe(&self, outlet: Outlet) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1.add((), outlet)
    }

    pub fn unsubscribe(&self, connection: u64) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).1.remove(&(), connection)
    }

    /// Sends the next beat; returns how many subscribers were dropped as slow.
    pub fn beat(&self) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        let body = HeartbeatBody { counter: state.0, time: Utc::now().timestamp_millis() };
        let message = protocol::encode(&protocol::Push { kind: "heartbeat", channel: "heartbeat", body: &body });
        state.1.publish(&(), &message)
    }

    pub fn spawn(self: Arc<Self>, every: Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
        actix_rt::spawn(async move {
            let mut tick = actix_rt::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    _ = tick.tick() => {
                        self.beat();
                    }
                }
            }
        });
    }
}
