//! Stream leases: with several nodes on one shared store, a node hosts the actor of a stream
//! only while it holds that stream's lease, `lock:<stream>` (the original system's
//! distributed lock), in the store's `leases`.
//!
//! Leases are the traffic rule, not the safety net: an append's expected version is what
//! makes two writers of one stream impossible. A node that lost its lease while a command was
//! in flight fails that append with a version conflict as soon as the new host has written,
//! and its actor stops. Leases make that race rare and tell every node where a stream lives.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};

use super::deps::ActorError;
use crate::events::{Clock, EventStore, StreamId};

/// Renewals sent at once in one pass: a node may hold many users' leases, and a pass must
/// finish well within a third of the ttl.
const RENEW_CONCURRENCY: usize = 32;

/// One node's name in the cluster, the owner written into its leases.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// Printable, no spaces, at most 128 bytes: it is shown in API errors and logs.
    pub fn new(id: &str) -> Result<NodeId, String> {
        let ok = !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic());
        match ok {
            true => Ok(NodeId(id.to_owned())),
            false => Err(format!("node id {id:?}: 1 to 128 printable characters without spaces")),
        }
    }

    /// `hostname-pid-random`: unique per process, readable in an error naming the owner.
    pub fn generate() -> NodeId {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().chars().filter(char::is_ascii_graphic).take(64).collect::<String>())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "node".to_owned());
        let random = uuid::Uuid::new_v4().simple().to_string();
        NodeId(format!("{host}-{}-{}", std::process::id(), &random[..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who this node is and how long its leases last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub node: NodeId,
    /// A lease not renewed for this long is free for another node: the takeover time after a
    /// node dies is this plus one renewal period.
    pub ttl: Duration,
}

impl LeaseConfig {
    /// Every held lease is renewed this often: a third of the ttl, so one or two failed
    /// renewals (a slow store) still leave time before expiry.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 3
    }
}

/// The lease name of `stream`.
pub fn lease_name(stream: &StreamId) -> String {
    format!("lock:{stream}")
}

/// The stream a lease name guards, if it guards one.
pub fn leased_stream(name: &str) -> Option<StreamId> {
    name.strip_prefix("lock:").and_then(|s| StreamId::parse(s).ok())
}

/// Order-id slots a cluster has: each node holds one while it places orders, so the ids two
/// nodes hand out in the same millisecond differ in their low bits (`engine::OrderIds`).
pub const ORDER_ID_SLOTS: u16 = 256;

/// The lease of the one outbox relay of a cluster. Two relays on one MongoDB store would
/// lose records: marking an append published is one `update_many`, not atomic across its
/// records, so a second relay could read an append half marked, number its remaining records
/// from 0 and send them under dedup ids their siblings already used.
pub const RELAY_LEASE: &str = "outbox-relay";

/// The lease of the one projection loop of a cluster: two projectors folding the same views
/// race on their checkpoints, and a view read and saved across two reads can fold an event
/// twice.
pub const PROJECTOR_LEASE: &str = "projector";

/// The lease name of order-id slot `slot`.
pub fn slot_lease_name(slot: u16) -> String {
    format!("order-ids:{slot}")
}

/// One renewal's outcome: the lease, when it was last renewed before, the answer, and when
/// it was asked.
type Renewal = (String, DateTime<Utc>, Result<bool, crate::events::StoreError>, DateTime<Utc>);

/// The leases one node holds, and when each was last renewed.
pub struct Leases<S> {
    store: Arc<S>,
    clock: Arc<dyn Clock>,
    config: LeaseConfig,
    /// Lease name -> when it was last taken or renewed.
    held: Mutex<HashMap<String, DateTime<Utc>>>,
}

impl<S: EventStore> Leases<S> {
    pub fn new(store: Arc<S>, clock: Arc<dyn Clock>, config: LeaseConfig) -> Leases<S> {
        Leases { store, clock, config, held: Mutex::new(HashMap::new()) }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, DateTime<Utc>>> {
        // A poisoned lock means a panic between two map operations; the map is still a map.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes (or keeps) `stream`'s lease for this node; `HostedElsewhere` naming the holder
    /// if another live node has it.
    pub async fn acquire(&self, stream: &StreamId) -> Result<(), ActorError> {
        let name = lease_name(stream);
        let now = self.clock.now();
        if self.store.acquire_lease(&name, self.config.node.as_str(), self.config.ttl, now).await? {
            self.held().insert(name, now);
            return Ok(());
        }
        // Only to name the holder; a failure here must not hide the refusal itself.
        let owner = self.store.lease_owner(&name, now).await.ok().flatten();
        Err(ActorError::HostedElsewhere { stream: stream.clone(), owner })
    }

    /// Asks the node holding `stream`'s lease to hand it to this node at its next renewal
    /// (within a third of the ttl); its actor there stops, and this node hosts the stream at
    /// its next message for it. For the API: a client the load balancer routes here finds its
    /// account here on a retry, wherever queue traffic or an earlier route had placed it.
    pub async fn request(&self, stream: &StreamId) -> Result<(), ActorError> {
        let name = lease_name(stream);
        Ok(self.store.request_lease(&name, self.config.node.as_str(), self.clock.now()).await?)
    }

    /// Takes (or keeps) lease `name` for this node; false if another live node holds it.
    pub async fn acquire_named(&self, name: &str) -> Result<bool, ActorError> {
        let now = self.clock.now();
        let taken = self.store.acquire_lease(name, self.config.node.as_str(), self.config.ttl, now).await?;
        if taken {
            self.held().insert(name.to_owned(), now);
        }
        Ok(taken)
    }

    /// The node holding lease `name` now, if a live one does.
    pub async fn owner(&self, name: &str) -> Result<Option<String>, ActorError> {
        Ok(self.store.lease_owner(name, self.clock.now()).await?)
    }

    /// Gives lease `name` up (what it guarded stopped here), so another node takes it over
    /// at once instead of after the ttl.
    pub async fn release_named(&self, name: &str) {
        self.held().remove(name);
        if let Err(e) = self.store.release_lease(name, self.config.node.as_str()).await {
            tracing::warn!(lease = %name, error = %e, "lease not released; it expires after its ttl");
        }
    }

    /// Whether this node holds lease `name` (as of its last renewal).
    pub fn holds(&self, name: &str) -> bool {
        self.held().contains_key(name)
    }

    /// Takes the first free order-id slot for this node; `None` if all are taken.
    pub async fn acquire_slot(&self) -> Result<Option<u16>, ActorError> {
        for slot in 0..ORDER_ID_SLOTS {
            let name = slot_lease_name(slot);
            let now = self.clock.now();
            if self.store.acquire_lease(&name, self.config.node.as_str(), self.config.ttl, now).await? {
                self.held().insert(name, now);
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }

    /// One renewal pass over every held lease; returns the names of the leases lost (now
    /// someone else's, expired, or not renewable before it could expire): their actors must
    /// stop. They are forgotten here, so their next message acquires again.
    pub async fn renew_all(&self) -> Vec<String> {
        let held: Vec<(String, DateTime<Utc>)> = self.held().iter().map(|(s, t)| (s.clone(), *t)).collect();
        let outcomes: Vec<Renewal> = stream::iter(held)
            .map(|(name, renewed_at)| async move {
                let now = self.clock.now();
                let renewed = self.store.renew_lease(&name, self.config.node.as_str(), self.config.ttl, now).await;
                (name, renewed_at, renewed, now)
            })
            .buffer_unordered(RENEW_CONCURRENCY)
            .collect()
            .await;
        // A store that cannot be reached leaves the lease running out: give the actor up once
        // the next pass could come too late, so it stops before another node may take over.
        let give_up_after = self.config.ttl.saturating_sub(self.config.renew_every());
        let give_up_after = chrono::TimeDelta::from_std(give_up_after).unwrap_or(chrono::TimeDelta::MAX);
        let mut lost = Vec::new();
        let mut held = self.held();
        for (lease, renewed_at, renewed, now) in outcomes {
            match renewed {
                // Unless released meanwhile (shutdown): a renewal must not resurrect it here.
                Ok(true) => {
                    if let Some(at) = held.get_mut(&lease) {
                        *at = now;
                    }
                }
                Ok(false) => {
                    tracing::warn!(%lease, "lease lost; what it guarded stops here and moves to its new holder");
                    held.remove(&lease);
                    lost.push(lease);
                }
                Err(e) if now - renewed_at >= give_up_after => {
                    tracing::warn!(%lease, error = %e, "lease not renewable before it expires; giving it up");
                    held.remove(&lease);
                    lost.push(lease);
                }
                Err(e) => tracing::warn!(%lease, error = %e, "lease renewal failed; retried next pass"),
            }
        }
        lost
    }

    /// Gives every held lease up (graceful shutdown): other nodes take the streams over at
    /// once instead of after the ttl.
    pub async fn release_all(&self) {
        let held: Vec<String> = self.held().drain().map(|(s, _)| s).collect();
        let node = self.config.node.as_str();
        let releases = stream::iter(held)
            .map(|lease| async move { (self.store.release_lease(&lease, node).await, lease) })
            .buffer_unordered(RENEW_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        for (result, lease) in releases {
            if let Err(e) = result {
                tracing::warn!(%lease, error = %e, "lease not released; it expires after its ttl");
            }
        }
    }

    /// The names of the leases this node holds.
    pub fn held_leases(&self) -> Vec<String> {
        self.held().keys().cloned().collect()
    }
}
