//! The MongoDB `ViewStore`: collections `views` (unique `(kind, key)`, the view as JSON text)
//! and `view_checkpoints` (unique `(projection, stream)`), in the event store's database or
//! any other. A save is one multi-document transaction (majority write concern, snapshot
//! reads, retried on the driver's transient labels, as appends are): every checkpoint is read
//! and compared with the move's `from`, then views and checkpoints are written, so two
//! projectors racing on one database cannot both fold the same events: the loser's rerun sees
//! the winner's checkpoint and gets `CheckpointConflict`.
//!
//! Views are stored as JSON text, not BSON sub-documents, so a view reads back exactly as it
//! was written (key order, and numbers BSON has no type for).

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::options::IndexOptions;
use mongodb::{Client, ClientSession, Collection, Database, IndexModel};
use serde_json::Value;

use crate::events::StreamId;
use crate::projections::view_store::{Checkpoint, StoredView, ViewBatch, ViewStore, ViewStoreError};
use crate::store::mongo_codec::Fields;
use crate::store::mongo_tx::{self, Failure};

fn backend(e: impl std::fmt::Display) -> ViewStoreError {
    ViewStoreError::Backend(e.to_string())
}

#[derive(Clone)]
pub struct MongoViewStore {
    client: Client,
    db: Database,
}

impl MongoViewStore {
    /// Connects to `uri` and keeps views in database `database`, creating the collections and
    /// indexes if missing.
    pub async fn connect(uri: &str, database: &str) -> Result<MongoViewStore, ViewStoreError> {
        let client = Client::with_uri_str(uri).await.map_err(backend)?;
        mongo_tx::require_transactions(&client).await.map_err(ViewStoreError::Backend)?;
        let db = client.database(database);
        MongoViewStore::open(client, db).await
    }

    /// The view store in `db`, on an existing client (see `MongoEventStore::view_store`).
    pub async fn open(client: Client, db: Database) -> Result<MongoViewStore, ViewStoreError> {
        let store = MongoViewStore { client, db };
        store.create_indexes().await?;
        Ok(store)
    }

    fn views(&self) -> Collection<Document> {
        self.db.collection("views")
    }

    fn checkpoints_coll(&self) -> Collection<Document> {
        self.db.collection("view_checkpoints")
    }

    async fn create_indexes(&self) -> Result<(), ViewStoreError> {
        let existing = self.db.list_collection_names().await.map_err(backend)?;
        for (name, keys, index) in [
            ("views", doc! { "kind": 1, "key": 1 }, "kind_key"),
            ("view_checkpoints", doc! { "projection": 1, "stream": 1 }, "projection_stream"),
        ] {
            // Created before first use: a transaction cannot create a collection on every
            // server version.
            if !existing.iter().any(|c| c == name) {
                if let Err(e) = self.db.create_collection(name).await {
                    // Another node may have created it in between (NamespaceExists, 48).
                    if !matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 48) {
                        return Err(backend(e));
                    }
                }
            }
            let options = IndexOptions::builder().unique(true).name(index.to_owned()).build();
            let model = IndexModel::builder().keys(keys).options(options).build();
            self.db.collection::<Document>(name).create_index(model).await.map_err(backend)?;
        }
        Ok(())
    }

    /// One attempt of a save inside `s`'s transaction: `Ok(Err(conflict))` writes nothing.
    async fn save_attempt(
        &self,
        s: &mut ClientSession,
        batch: &ViewBatch,
    ) -> Result<Result<(), ViewStoreError>, mongodb::error::Error> {
        for m in &batch.checkpoints {
            let filter = doc! { "projection": m.projection.as_str(), "stream": m.stream.as_str() };
            let found = self.checkpoints_coll().find_one(filter.clone()).session(&mut *s).await?;
            let actual = match found.as_ref().map(|d| checkpoint_version(&m.projection, m.stream.as_str(), d)) {
                None => 0,
                Some(Ok(v)) => v,
                Some(Err(e)) => return Ok(Err(e)),
            };
            if actual != m.from {
                return Ok(Err(ViewStoreError::CheckpointConflict {
                    projection: m.projection.clone(),
                    stream: m.stream.clone(),
                    expected: m.from,
                    actual,
                }));
            }
            let Ok(to) = i64::try_from(m.to) else {
                return Ok(Err(backend(format!("checkpoint {} does not fit a stored integer", m.to))));
            };
            self.checkpoints_coll()
                .update_one(filter, doc! { "$set": { "version": to } })
                .upsert(true)
                .session(&mut *s)
                .await?;
        }
        for v in &batch.views {
            let json = match serde_json::to_string(&v.json) {
                Ok(json) => json,
                Err(e) => return Ok(Err(backend(e))),
            };
            self.views()
                .update_one(doc! { "kind": v.kind.as_str(), "key": v.key.as_str() }, doc! { "$set": { "json": json } })
                .upsert(true)
                .session(&mut *s)
                .await?;
        }
        Ok(Ok(()))
    }
}

fn checkpoint_version(projection: &str, stream: &str, doc: &Document) -> Result<u64, ViewStoreError> {
    Fields(doc)
        .u64("version")
        .map_err(|reason| ViewStoreError::Corrupt { what: format!("checkpoint {projection} / {stream}"), reason })
}

fn view_json(kind: &str, key: &str, doc: &Document) -> Result<Value, ViewStoreError> {
    let corrupt = |reason: String| ViewStoreError::Corrupt { what: format!("view {kind} / {key}"), reason };
    let text = Fields(doc).str("json").map_err(corrupt)?;
    serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))
}

impl ViewStore for MongoViewStore {
    async fn load(&self, kind: &str, key: &str) -> Result<Option<Value>, ViewStoreError> {
        let found = self.views().find_one(doc! { "kind": kind, "key": key }).await.map_err(backend)?;
        found.map(|d| view_json(kind, key, &d)).transpose()
    }

    async fn checkpoint(&self, projection: &str, stream: &StreamId) -> Result<u64, ViewStoreError> {
        let filter = doc! { "projection": projection, "stream": stream.as_str() };
        let found = self.checkpoints_coll().find_one(filter).await.map_err(backend)?;
        found.map_or(Ok(0), |d| checkpoint_version(projection, stream.as_str(), &d))
    }

    async fn save(&self, batch: ViewBatch) -> Result<(), ViewStoreError> {
        if batch.views.is_empty() && batch.checkpoints.is_empty() {
            return Ok(());
        }
        let mut last_error = None;
        for attempt in 0..mongo_tx::MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(mongo_tx::backoff(attempt)).await;
            }
            let mut session = mongo_tx::begin(&self.client).await.map_err(backend)?;
            let error = match self.save_attempt(&mut session, &batch).await {
                Ok(Ok(())) => match mongo_tx::commit(&mut session).await {
                    Ok(()) => return Ok(()),
                    Err(e) => e,
                },
                Ok(Err(refused)) => {
                    mongo_tx::abort(session).await;
                    return Err(refused);
                }
                Err(e) => {
                    mongo_tx::abort(session).await;
                    e
                }
            };
            if mongo_tx::classify(&error) == Failure::Fatal {
                return Err(backend(error));
            }
            last_error = Some(error);
        }
        Err(backend(format!(
            "view save gave up after {} attempts: {}",
            mongo_tx::MAX_ATTEMPTS,
            last_error.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    async fn list(&self) -> Result<Vec<StoredView>, ViewStoreError> {
        let mut cursor = self.views().find(doc! {}).sort(doc! { "kind": 1, "key": 1 }).await.map_err(backend)?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(backend)? {
            let f = Fields(&d);
            let bad = |reason: String| ViewStoreError::Corrupt { what: format!("view {:?}", d.get("_id")), reason };
            let kind = f.str("kind").map_err(bad)?.to_owned();
            let key = f.str("key").map_err(bad)?.to_owned();
            let json = view_json(&kind, &key, &d)?;
            out.push(StoredView { kind, key, json });
        }
        Ok(out)
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, ViewStoreError> {
        let mut cursor =
            self.checkpoints_coll().find(doc! {}).sort(doc! { "projection": 1, "stream": 1 }).await.map_err(backend)?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(backend)? {
            let f = Fields(&d);
            let bad =
                |reason: String| ViewStoreError::Corrupt { what: format!("checkpoint {:?}", d.get("_id")), reason };
            let projection = f.str("projection").map_err(bad)?.to_owned();
            let stream = f.str("stream").map_err(bad)?.to_owned();
            let version = checkpoint_version(&projection, &stream, &d)?;
            let stream = StreamId::parse(&stream).map_err(|e| ViewStoreError::Corrupt {
                what: format!("checkpoint {projection} / {stream}"),
                reason: e.to_string(),
            })?;
            out.push(Checkpoint { projection, stream, version });
        }
        Ok(out)
    }
}
