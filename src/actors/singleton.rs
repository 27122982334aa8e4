//! Cluster singletons: the settlement operator, the admin operator and the chain watcher. Each
//! is the only writer of its stream, and the two operators are the only senders from their
//! wallets, so among several nodes on one store exactly one node runs each: the holder of its
//! stream's lease (`lock:operator:0x…`, `lock:admin-operator:0x…`, `lock:chain:<id>`, the
//! same `lock:<stream>` naming as the market and user actors). The others stand by and ask
//! for the lease every renewal period; the node's renewal loop (`Registry::run_lease_renewal`)
//! renews it with the rest, and a lost lease stops the singleton here.
//!
//! As for the actors, the lease is the traffic rule and the append's expected version the
//! safety net: the settlement operator stores every transaction before sending it, so a node
//! that lost the lease mid-step fails its next append and can never hand a nonce out twice.
//! Without leases (one node on SQLite) a singleton always runs here.

use std::sync::Arc;
use std::time::Duration;

use super::deps::ActorError;
use super::leases::{lease_name, Leases};
use crate::events::{EventStore, StreamId};

/// How often a running singleton looks whether its lease is still held: the renewal loop
/// gives a lease up a third of the ttl before it can expire, so this only has to be well
/// under that.
const LOST_CHECK_EVERY: Duration = Duration::from_millis(100);

/// Where a singleton runs, as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// This node runs it (always, without leases).
    Here,
    /// This node stands by: another node holds the lease (its id, if one could be read), or
    /// nobody does and this node takes it at its next try.
    Elsewhere { owner: Option<String> },
}

/// The lease of one singleton on this node.
pub struct SingletonLease<S: EventStore + 'static> {
    leases: Option<Arc<Leases<S>>>,
    stream: StreamId,
}

impl<S: EventStore + 'static> SingletonLease<S> {
    /// The lease of the only writer of `stream`; `leases` unset: one node, always here.
    pub fn new(leases: Option<Arc<Leases<S>>>, stream: StreamId) -> SingletonLease<S> {
        SingletonLease { leases, stream }
    }

    pub fn is_leased(&self) -> bool {
        self.leases.is_some()
    }

    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// Whether this node may run the singleton now (as of the last renewal).
    pub fn holds(&self) -> bool {
        match &self.leases {
            Some(leases) => leases.holds(&lease_name(&self.stream)),
            None => true,
        }
    }

    /// Takes the lease if it is free (or already ours); a store that does not answer counts
    /// as not taken, and the next try asks again.
    async fn try_acquire(&self) -> bool {
        let Some(leases) = &self.leases else { return true };
        match leases.acquire_named(&lease_name(&self.stream)).await {
            Ok(taken) => taken,
            Err(e) => {
                tracing::warn!(stream = %self.stream, error = %e, "singleton lease could not be asked for; retrying");
                false
            }
        }
    }

    /// Resolves once this node holds the lease (at once without leases), asking every
    /// renewal period: a standby takes over at most a third of the ttl after the lease
    /// expired or was released.
    pub async fn until_held(&self) {
        let Some(leases) = &self.leases else { return };
        let every = leases.config().renew_every();
        while !self.try_acquire().await {
            actix_rt::time::sleep(every).await;
        }
        tracing::info!(stream = %self.stream, node = %leases.config().node, "this node runs the singleton");
    }

    /// Resolves once the lease is lost (the renewal loop found it taken or could not renew
    /// it in time, or it was released); never without leases.
    pub async fn until_lost(&self) {
        if self.leases.is_none() {
            return std::future::pending().await;
        }
        while self.holds() {
            actix_rt::time::sleep(LOST_CHECK_EVERY).await;
        }
        tracing::warn!(stream = %self.stream, "singleton lease lost; it stops here and runs on its new holder");
    }

    /// Gives the lease up once the singleton stopped here, so a standby takes over at once.
    pub async fn release(&self) {
        if let Some(leases) = &self.leases {
            leases.release_named(&lease_name(&self.stream)).await;
        }
    }

    /// Where the singleton runs.
    pub async fn placement(&self) -> Placement {
        match &self.leases {
            Some(leases) if !self.holds() => {
                // Only to name the holder: a failed read leaves it unnamed, still elsewhere.
                let owner = leases.owner(&lease_name(&self.stream)).await.ok().flatten();
                Placement::Elsewhere { owner }
            }
            _ => Placement::Here,
        }
    }

    /// Why `what` (not running on this node now) cannot answer: it runs on another node, or
    /// it runs here and stopped (between a failure and its restart).
    pub async fn not_running(&self, what: &str) -> ActorError {
        match self.placement().await {
            Placement::Elsewhere { owner } => ActorError::HostedElsewhere { stream: self.stream.clone(), owner },
            Placement::Here => ActorError::Mailbox(format!("the {what} stopped")),
        }
    }
}
