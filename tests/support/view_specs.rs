//! The view-store specification, generic over the `ViewStore` port: every adapter runs these
//! same checks (`projections.rs` on SQLite, `event_store_mongo.rs` on MongoDB), on events
//! produced by the real domain through `exchange.rs`.
//!
//! Test code unwraps: a failure should fail the test.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use hob::events::{EventStore, StreamId};
use hob::projections::{
    diff_views, CheckpointMove, MemoryViewStore, Projector, StoredView, ViewBatch, ViewStore, ViewStoreError,
};
use serde_json::json;

use crate::exchange::{step, Exchange, STEPS};
use crate::scenario::spec;

/// Given a live projector folding after every step in small saves, then its views equal a
/// rebuild from the events alone, and every stored event was folded exactly once.
pub async fn live_views_in_increments_equal_a_rebuild_from_events_alone<S: EventStore>(
    ex: &mut Exchange<S>,
    live: &impl ViewStore,
) {
    // Small save chunks so catch-ups also stop and resume inside a stream.
    let projector = Projector::with_save_every_events(3);
    let mut folded = 0;
    for n in 0..STEPS {
        step(ex, n).await;
        folded += projector.catch_up(&ex.store, live).await.unwrap().events_folded;
    }
    let total: u64 = ex.versions.values().sum();
    assert_eq!(folded, total, "every stored event folded exactly once");

    let rebuilt = MemoryViewStore::new();
    let report = Projector::new().catch_up(&ex.store, &rebuilt).await.unwrap();
    assert_eq!(report.events_folded, total);
    assert_eq!(diff_views(live, &rebuilt).await.unwrap(), vec![]);
    assert_eq!(live.checkpoints().await.unwrap(), rebuilt.checkpoints().await.unwrap());
    // 3 market views + 3 views for each of 3 users.
    assert_eq!(rebuilt.list().await.unwrap().len(), 12);
}

/// Given views caught up with every event, when the projector catches up again, then it folds
/// and saves nothing and the store is unchanged.
pub async fn catch_up_is_idempotent<S: EventStore>(ex: &mut Exchange<S>, views: &impl ViewStore) {
    for n in 0..STEPS {
        step(ex, n).await;
    }
    let first = Projector::new().catch_up(&ex.store, views).await.unwrap();
    assert!(first.events_folded > 0);
    let before = (views.list().await.unwrap(), views.checkpoints().await.unwrap());
    let second = Projector::new().catch_up(&ex.store, views).await.unwrap();
    assert_eq!((second.events_folded, second.saves, second.streams_advanced), (0, 0, 0));
    assert_eq!((views.list().await.unwrap(), views.checkpoints().await.unwrap()), before);
}

/// Given a checkpoint moved to 3, when a save still expects 0, then it is refused whole: the
/// checkpoint and the view keep what the first save wrote.
pub async fn a_save_from_a_stale_checkpoint_is_refused_whole(views: &impl ViewStore) {
    let stream = StreamId::market(spec().id);
    let batch = |from, to| ViewBatch {
        views: vec![StoredView { kind: "depth".into(), key: "BTC-USDT".into(), json: json!({ "v": to }) }],
        checkpoints: vec![CheckpointMove { projection: "depth".into(), stream: stream.clone(), from, to }],
    };
    views.save(batch(0, 3)).await.unwrap();
    let err = views.save(batch(0, 5)).await.unwrap_err();
    assert!(matches!(err, ViewStoreError::CheckpointConflict { expected: 0, actual: 3, .. }), "{err}");
    assert_eq!(views.checkpoint("depth", &stream).await.unwrap(), 3);
    assert_eq!(views.load("depth", "BTC-USDT").await.unwrap(), Some(json!({ "v": 3 })));
}
