//! Two nodes' registries on one store, with leases (`actors::leases`): a node hosts an actor
//! only while it holds the stream's lease, another node is refused with `HostedElsewhere`,
//! an expired lease moves, and a node that lost its lease while still holding the actor in
//! memory can never commit (the append's expected version refuses it).
//!
//! Test code unwraps: a failure should fail the test.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, TimeZone, Utc};
use tokio::sync::Notify;
use uuid::Uuid;

use hob::actors::leases::{LeaseConfig, Leases, NodeId};
use hob::actors::{ActorDeps, ActorError, Counters, Registry, UserError, UserOp, UserRequest};
use hob::domain::{Amount, AssetId, UserId};
use hob::events::{EventStore, ManualClock, StreamId};
use hob::store::MemoryEventStore;

const TTL: Duration = Duration::from_secs(3);

struct Node {
    registry: Registry<MemoryEventStore>,
}

fn node(name: &str, store: &Arc<MemoryEventStore>, clock: &Arc<ManualClock>) -> Node {
    let deps = Arc::new(ActorDeps {
        store: store.clone(),
        clock: clock.clone(),
        outbox_wake: Arc::new(Notify::new()),
        settlement_group: "operator".to_owned(),
        snapshot_every: 0,
        counters: Arc::new(Counters::default()),
    });
    let config = LeaseConfig { node: NodeId::new(name).unwrap(), ttl: TTL };
    let leases = Leases::new(store.clone(), clock.clone(), config);
    Node { registry: Registry::new(deps, Arc::new(BTreeMap::new())).with_leases(leases) }
}

fn alice() -> UserId {
    UserId([1; 20])
}

fn deposit(amount: u128) -> UserRequest {
    let op = UserOp::Deposit { asset: AssetId::new("USDT").unwrap(), amount: Amount(amount) };
    UserRequest { op, source: None, correlation_id: Uuid::now_v7() }
}

fn setup() -> (Arc<MemoryEventStore>, Arc<ManualClock>, Node, Node) {
    let store = Arc::new(MemoryEventStore::new());
    let clock = Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()));
    let (a, b) = (node("node-a", &store, &clock), node("node-b", &store, &clock));
    (store, clock, a, b)
}

fn after(clock: &ManualClock, by: Duration) {
    clock.advance(TimeDelta::from_std(by).unwrap());
}

#[actix_rt::test]
async fn given_node_a_hosts_a_user_when_node_b_sends_to_it_then_b_is_refused_naming_a() {
    let (store, _clock, a, b) = setup();
    a.registry.send_user(alice(), deposit(100)).await.unwrap().unwrap();

    let refused = b.registry.send_user(alice(), deposit(5)).await.unwrap_err();

    match refused {
        ActorError::HostedElsewhere { stream, owner } => {
            assert_eq!(stream, StreamId::user(alice()));
            assert_eq!(owner.as_deref(), Some("node-a"));
        }
        other => panic!("expected HostedElsewhere, got {other}"),
    }
    assert_eq!(store.stream_version(&StreamId::user(alice())).await.unwrap(), 1, "B wrote nothing");
}

#[actix_rt::test]
async fn given_node_a_renews_its_leases_when_more_than_a_ttl_passes_then_b_is_still_refused() {
    let (_store, clock, a, b) = setup();
    a.registry.send_user(alice(), deposit(100)).await.unwrap().unwrap();

    for _ in 0..6 {
        after(&clock, TTL / 3);
        assert!(a.registry.renew_leases().await.is_empty(), "A keeps its lease");
    }

    let refused = b.registry.send_user(alice(), deposit(5)).await;
    assert!(matches!(refused, Err(ActorError::HostedElsewhere { .. })), "{refused:?}");
}

#[actix_rt::test]
async fn given_node_a_stopped_renewing_when_its_lease_expires_then_b_takes_over_and_a_can_never_commit() {
    let (store, clock, a, b) = setup();
    let user = StreamId::user(alice());
    a.registry.send_user(alice(), deposit(100)).await.unwrap().unwrap();

    // A is frozen (no renewal) past the ttl: its lease is free, B takes the user over.
    after(&clock, TTL + Duration::from_millis(1));
    b.registry.send_user(alice(), deposit(10)).await.unwrap().unwrap();
    assert_eq!(store.stream_version(&user).await.unwrap(), 2);

    // A still holds the actor in memory with the old version: its command must not commit.
    let stale = a.registry.send_user(alice(), deposit(1_000)).await.unwrap();
    assert!(matches!(stale, Err(UserError::Actor(ActorError::Conflict(_)))), "{stale:?}");
    assert_eq!(store.stream_version(&user).await.unwrap(), 2, "the stale node wrote nothing");

    // A's next renewal pass finds the lease gone and forgets the actor; it is then refused.
    assert_eq!(a.registry.renew_leases().await, vec![format!("lock:{user}")]);
    let refused = a.registry.send_user(alice(), deposit(1_000)).await;
    assert!(
        matches!(refused, Err(ActorError::HostedElsewhere { ref owner, .. }) if owner.as_deref() == Some("node-b"))
    );

    // What B replays is the truth: the first deposit and its own, nothing of the stale node.
    let view = b.registry.send_user(alice(), hob::actors::InspectUser).await.unwrap();
    let usdt = AssetId::new("USDT").unwrap();
    assert_eq!(view.state.account().balance(usdt).available, Amount(110));
}

#[actix_rt::test]
async fn given_node_a_shuts_down_gracefully_when_b_asks_then_b_hosts_at_once() {
    let (_store, _clock, a, b) = setup();
    a.registry.send_user(alice(), deposit(100)).await.unwrap().unwrap();

    a.registry.release_leases().await;

    b.registry.send_user(alice(), deposit(10)).await.unwrap().unwrap();
    let (_, users) = a.registry.running().await;
    assert!(users.is_empty(), "A stopped its actors");
}

#[actix_rt::test]
async fn given_node_a_hosts_a_user_when_b_asks_for_it_then_a_hands_it_over_at_its_next_renewal() {
    let (_store, clock, a, b) = setup();
    let user = StreamId::user(alice());
    a.registry.send_user(alice(), deposit(100)).await.unwrap().unwrap();

    // B is refused, and asks for the lease (what the engine does for an API request);
    let refused = b.registry.send_user(alice(), deposit(5)).await;
    assert!(matches!(refused, Err(ActorError::HostedElsewhere { .. })), "{refused:?}");
    b.registry.request_lease(&user).await;
    // A keeps serving until its next renewal, which hands the lease over and stops its actor.
    a.registry.send_user(alice(), deposit(1)).await.unwrap().unwrap();
    after(&clock, TTL / 3);
    assert_eq!(a.registry.renew_leases().await, vec![format!("lock:{user}")]);
    let (_, users) = a.registry.running().await;
    assert!(users.is_empty(), "A stopped the user's actor");

    // Then B hosts the user at once, with everything A stored, and A is refused naming B.
    b.registry.send_user(alice(), deposit(10)).await.unwrap().unwrap();
    let view = b.registry.send_user(alice(), hob::actors::InspectUser).await.unwrap();
    assert_eq!(view.state.account().balance(AssetId::new("USDT").unwrap()).available, Amount(111));
    let refused = a.registry.send_user(alice(), deposit(1)).await;
    assert!(
        matches!(refused, Err(ActorError::HostedElsewhere { ref owner, .. }) if owner.as_deref() == Some("node-b"))
    );
    // The ask was used up: B keeps the lease at its renewals.
    after(&clock, TTL / 3);
    assert!(b.registry.renew_leases().await.is_empty());
}
