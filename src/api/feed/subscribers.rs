//! Who receives what. Every WebSocket connection has one bounded buffer of messages waiting
//! to be written (`Outlet`); feeds put messages into it without ever waiting. A connection
//! that lets its buffer fill up is a slow consumer: it is told why and disconnected, and the
//! feed goes on for everyone else. Nothing a client does can stall a feed, let alone the
//! engine behind it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use bytestring::ByteString;
use prometheus::IntCounter;
use tokio::sync::{mpsc, watch};

/// WebSocket close codes the server uses (RFC 6455, 7.4.1).
pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_POLICY: u16 = 1008;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Why and how a connection is being closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closing {
    pub code: u16,
    pub reason: String,
}

/// One connection's way out: its bounded buffer and the switch that disconnects it.
#[derive(Clone, Debug)]
pub struct Outlet {
    pub id: u64,
    tx: mpsc::Sender<ByteString>,
    kill: Arc<watch::Sender<Option<Closing>>>,
    sent: IntCounter,
}

/// Why a message was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The buffer was full: the connection is being dropped as a slow consumer.
    Slow,
    /// The connection is gone.
    Closed,
}

/// The receiving half, owned by the connection's task.
pub struct Inlet {
    pub rx: mpsc::Receiver<ByteString>,
    pub kill: watch::Receiver<Option<Closing>>,
}

impl Outlet {
    /// A connection's outlet with room for `buffer` messages, and its inlet.
    /// `sent` counts the messages queued.
    pub fn new(id: u64, buffer: usize, sent: IntCounter) -> (Outlet, Inlet) {
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let (kill, kill_rx) = watch::channel(None);
        (Outlet { id, tx, kill: Arc::new(kill), sent }, Inlet { rx, kill: kill_rx })
    }

    /// Queues `message` without waiting. A full buffer disconnects the connection.
    pub fn send(&self, message: ByteString) -> Result<(), Refused> {
        match self.tx.try_send(message) {
            Ok(()) => {
                self.sent.inc();
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.disconnect(format!("slow consumer: {} messages waiting, limit reached", self.tx.max_capacity()));
                Err(Refused::Slow)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Refused::Closed),
        }
    }

    /// Asks the connection to close with `reason` (policy violation; the first reason wins).
    pub fn disconnect(&self, reason: String) {
        self.close(CLOSE_POLICY, reason);
    }

    /// Asks the connection to close with `code` and `reason` (the first reason wins).
    pub fn close(&self, code: u16, reason: String) {
        self.kill.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(Closing { code, reason });
                true
            } else {
                false
            }
        });
    }

    /// Watches for the connection being asked to close.
    pub fn closing(&self) -> watch::Receiver<Option<Closing>> {
        self.kill.subscribe()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.kill.borrow().is_some()
    }
}

/// The connections subscribed to each topic of one feed.
#[derive(Debug)]
pub struct Subscribers<T> {
    by_topic: HashMap<T, HashMap<u64, Outlet>>,
}

impl<T> Default for Subscribers<T> {
    fn default() -> Self {
        Subscribers { by_topic: HashMap::new() }
    }
}

impl<T: Hash + Eq + Clone> Subscribers<T> {
    /// False if the connection was already subscribed.
    pub fn add(&mut self, topic: T, outlet: Outlet) -> bool {
        self.by_topic.entry(topic).or_default().insert(outlet.id, outlet).is_none()
    }

    /// False if the connection was not subscribed.
    pub fn remove(&mut self, topic: &T, connection: u64) -> bool {
        let Some(subs) = self.by_topic.get_mut(topic) else { return false };
        let removed = subs.remove(&connection).is_some();
        if subs.is_empty() {
            self.by_topic.remove(topic);
        }
        removed
    }

    pub fn remove_connection(&mut self, connection: u64) {
        self.by_topic.retain(|_, subs| {
            subs.remove(&connection);
            !subs.is_empty()
        });
    }

    pub fn has(&self, topic: &T) -> bool {
        self.by_topic.contains_key(topic)
    }

    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Asks every subscribed connection to close with `reason`.
    pub fn disconnect_all(&self, reason: &str) {
        for outlet in self.by_topic.values().flat_map(|subs| subs.values()) {
            outlet.disconnect(reason.to_owned());
        }
    }

    /// Sends `message` to every subscriber of `topic`; connections that are gone or too slow
    /// are unsubscribed from everything here. Returns how many were dropped as slow.
    pub fn publish(&mut self, topic: &T, message: &ByteString) -> usize {
        let Some(subs) = self.by_topic.get(topic) else { return 0 };
        let mut gone = Vec::new();
        let mut slow = 0;
        for (id, outlet) in subs {
            match outlet.send(message.clone()) {
                Ok(()) => {}
                Err(Refused::Slow) => {
                    slow += 1;
                    gone.push(*id);
                }
                Err(Refused::Closed) => gone.push(*id),
            }
        }
        for id in gone {
            self.remove_connection(id);
        }
        slow
    }
}

#[cfg(test)]
#[path = "../../../unit_tests/api/feed/subscribers.rs"]
mod tests;
