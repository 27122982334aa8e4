//! The production `EventStore` on MongoDB (a replica set or Atlas; tested against SecantusDB,
//! a MongoDB wire-protocol server). Several stateless hob nodes share one database.
//!
//! Collections, with their indexes created at `connect` (idempotently):
//! - `events`: one document per event (`mongo_codec`), `_id` the event id (so a reused event
//!   id is a duplicate key), unique `(stream, version)`.
//! - `idempotency`: `_id` the key; the original append's result.
//! - `outbox`: one document per record, `_id` its u64 id; index `(published, _id)` serves
//!   the relay's "unpublished after id" range.
//! - `counters`: the `outbox` document hands out outbox ids.
//! - `processed_events`: unique `(consumer, stream, version)`.
//! - `snapshots`: unique `(stream, version)`.
//! - `leases`: `_id` the lease name (`lock:<stream>` style), a TTL index on `reap_at`.
//!
//! An append is ONE multi-document transaction (majority write concern, snapshot reads): it
//! reads the idempotency key and the stream's head, checks the expected version and the event
//! ids, inserts the events, the idempotency row and the outbox records, and commits. Conflicts
//! abort it (`TransientTransactionError`) and it runs again; a lost race on `(stream,
//! version)` therefore ends as the typed `VersionConflict` the rerun's head check returns.
//!
//! Outbox ids follow commit order because they come from one counter document incremented
//! inside the appending transaction: two transactions that both write it conflict, and the
//! second only proceeds after the first committed, so a later id is never visible before an
//! earlier one, which is what `fetch_unpublished_after` relies on. The price is that appends
//! carrying outbox records are serialised (appends without records are not); the per-stream
//! version check serialises appends to one stream anyway.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{FindOneAndUpdateOptions, IndexOptions, ReturnDocument};
use mongodb::{ClientSession, Collection, Database, IndexModel};

use crate::events::envelope::{EventEnvelope, StreamId, GENESIS_HASH};
use crate::events::store::{AppendRequest, AppendResult, EventStore, OutboxEntry, RawEvent, Snapshot, StoreError};
use crate::store::mongo_codec::{
    bytes_bson, decode_event, decode_outbox, decode_raw, decode_snapshot, encode_event, encode_outbox, encode_snapshot,
    to_i64, uuid_bson, Fields,
};
use crate::store::mongo_tx::{self, Failure};
use crate::store::mongo_views::MongoViewStore;

pub(crate) fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// How long after its expiry an abandoned lease document is deleted by the TTL monitor. The
/// lease logic never relies on the deletion (an expired lease is free whether or not its
/// document is still there); the grace keeps a node with a slow clock from seeing its
/// still-valid lease vanish.
const LEASE_REAP_GRACE: Duration = Duration::from_secs(3_600);

/// Most documents one read asks the server for at once.
const READ_BATCH: u32 = 1_000;

#[derive(Clone)]
pub struct MongoEventStore {
    client: mongodb::Client,
    db: Database,
}

/// What one attempt of an append decided.
enum Settled {
    /// Everything is written in the transaction: commit it.
    Written(AppendResult),
    /// Nothing to write: the stored result of an earlier append with the same key, or a typed
    /// refusal (version conflict, reused event id or key). The transaction is aborted.
    Answer(Result<AppendResult, StoreError>),
}

impl MongoEventStore {
    /// Connects to `uri` (e.g. `mongodb://host/?replicaSet=rs0`, or an Atlas `mongodb+srv://`
    /// URI) and uses database `database`, creating collections and indexes if missing. A
    /// standalone server is refused: appends need transactions.
    pub async fn connect(uri: &str, database: &str) -> Result<MongoEventStore, StoreError> {
        let client = mongodb::Client::with_uri_str(uri).await.map_err(backend)?;
        mongo_tx::require_transactions(&client).await.map_err(StoreError::Backend)?;
        let store = MongoEventStore { db: client.database(database), client };
        store.create_indexes().await?;
        Ok(store)
    }

    /// The view store in the same database, sharing this store's connection pool.
    pub async fn view_store(&self) -> Result<MongoViewStore, StoreError> {
        MongoViewStore::open(self.client.clone(), self.db.clone()).await.map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// The database, for operators' tools and tests that inspect the stored documents.
    pub fn database(&self) -> &Database {
        &self.db
    }

    fn events(&self) -> Collection<Document> {
        self.db.collection("events")
    }

    fn outbox(&self) -> Collection<Document> {
        self.db.collection("outbox")
    }

    fn idempotency(&self) -> Collection<Document> {
        self.db.collection("idempotency")
    }

    fn leases(&self) -> Collection<Document> {
        self.db.collection("leases")
    }

    async fn create_indexes(&self) -> Result<(), StoreError> {
        let unique = |name: &str| IndexOptions::builder().unique(true).name(name.to_owned()).build();
        let index = |keys: Document, options: IndexOptions| IndexModel::builder().keys(keys).options(options).build();
        let db = &self.db;
        let plan: [(&str, IndexModel); 5] = [
            ("events", index(doc! { "stream": 1, "version": 1 }, unique("stream_version"))),
            (
                "outbox",
                index(
                    doc! { "published": 1, "_id": 1 },
                    IndexOptions::builder().name("unpublished".to_owned()).build(),
                ),
            ),
            (
                "processed_events",
                index(doc! { "consumer": 1, "stream": 1, "version": 1 }, unique("consumer_stream_version")),
            ),
            ("snapshots", index(doc! { "stream": 1, "version": 1 }, unique("stream_version"))),
            (
                "leases",
                index(
                    doc! { "reap_at": 1 },
                    IndexOptions::builder().name("reap_at_ttl".to_owned()).expire_after(Duration::ZERO).build(),
                ),
            ),
        ];
        // `idempotency` and `counters` need only their `_id` index; creating them up front
        // matters because a transaction cannot create a collection on every server version.
        let existing = db.list_collection_names().await.map_err(backend)?;
        for name in ["events", "idempotency", "outbox", "counters", "processed_events", "snapshots", "leases"] {
            if !existing.iter().any(|c| c == name) {
                if let Err(e) = db.create_collection(name).await {
                    // Another node may have created it in between (NamespaceExists, 48).
                    if !matches!(e.kind.as_ref(), mongodb::error::ErrorKind::Command(c) if c.code == 48) {
                        return Err(backend(e));
                    }
                }
            }
        }
        for (collection, model) in plan {
            db.collection::<Document>(collection).create_index(model).await.map_err(backend)?;
        }
        Ok(())
    }

    /// One attempt of an append inside `session`'s transaction.
    async fn append_attempt(
        &self,
        s: &mut ClientSession,
        req: &AppendRequest,
    ) -> Result<Settled, mongodb::error::Error> {
        if let Some(key) = &req.idempotency_key {
            if let Some(found) = self.idempotency().find_one(doc! { "_id": key }).session(&mut *s).await? {
                return Ok(Settled::Answer(stored_result(key, &found, &req.stream)));
            }
        }
        let head = self
            .events()
            .find_one(doc! { "stream": req.stream.as_str() })
            .sort(doc! { "version": -1 })
            .projection(doc! { "version": 1, "hash": 1 })
            .session(&mut *s)
            .await?;
        let (actual, prev_hash) = match &head {
            None => (0, GENESIS_HASH),
            Some(d) => {
                let f = Fields(d);
                let head = f.u64("version").and_then(|v| Ok((v, f.hash("hash")?)));
                match head {
                    Ok(head) => head,
                    Err(reason) => {
                        let version = f.u64("version").unwrap_or(0);
                        let stream = req.stream.to_string();
                        return Ok(Settled::Answer(Err(StoreError::Corrupt { stream, version, reason })));
                    }
                }
            }
        };
        if actual != req.expected_version {
            return Ok(Settled::Answer(Err(StoreError::VersionConflict {
                stream: req.stream.clone(),
                expected: req.expected_version,
                actual,
            })));
        }
        let ids: Vec<Bson> = req.events.iter().map(|e| uuid_bson(e.event_id)).collect();
        if let Some(taken) = self.events().find_one(doc! { "_id": { "$in": ids } }).session(&mut *s).await? {
            let event_id = Fields(&taken).uuid("_id").unwrap_or_default();
            return Ok(Settled::Answer(Err(StoreError::DuplicateEventId { event_id })));
        }

        let mut docs = Vec::with_capacity(req.events.len());
        let mut last_hash = prev_hash;
        let first_version = actual + 1;
        for (version, event) in (first_version..).zip(req.events.iter().cloned()) {
            match encode_event(&req.stream, version, last_hash, &req.idempotency_key, event) {
                Ok((doc, hash)) => {
                    docs.push(doc);
                    last_hash = hash;
                }
                Err(e) => return Ok(Settled::Answer(Err(e))),
            }
        }
        let last_version = actual + req.events.len() as u64;
        self.events().insert_many(docs).session(&mut *s).await?;
        if let Some(key) = &req.idempotency_key {
            let row = doc! {
                "_id": key,
                "stream": req.stream.as_str(),
                "first_version": to_i64_or_max(first_version),
                "last_version": to_i64_or_max(last_version),
                "last_hash": bytes_bson(&last_hash),
            };
            self.idempotency().insert_one(row).session(&mut *s).await?;
        }
        if !req.outbox.is_empty() {
            // Last, so the counter (which every such append writes) is held for the shortest time.
            let count = req.outbox.len() as i64;
            let options =
                FindOneAndUpdateOptions::builder().upsert(true).return_document(ReturnDocument::After).build();
            let counter = self
                .db
                .collection::<Document>("counters")
                .find_one_and_update(doc! { "_id": "outbox" }, doc! { "$inc": { "next": count } })
                .with_options(options)
                .session(&mut *s)
                .await?;
            let last_id = counter.as_ref().map(|c| Fields(c).u64("next"));
            let last_id = match last_id {
                Some(Ok(id)) => id,
                other => {
                    let reason = format!("outbox counter: {other:?}");
                    return Ok(Settled::Answer(Err(StoreError::Corrupt {
                        stream: "counters".into(),
                        version: 0,
                        reason,
                    })));
                }
            };
            let first_id = last_id + 1 - req.outbox.len() as u64;
            let mut records = Vec::with_capacity(req.outbox.len());
            for (id, record) in (first_id..).zip(&req.outbox) {
                match encode_outbox(id, &req.stream, last_version, record) {
                    Ok(doc) => records.push(doc),
                    Err(e) => return Ok(Settled::Answer(Err(e))),
                }
            }
            self.outbox().insert_many(records).session(&mut *s).await?;
        }
        Ok(Settled::Written(AppendResult {
            stream: req.stream.clone(),
            first_version,
            last_version,
            last_hash,
            deduplicated: false,
        }))
    }

    /// Events of `stream` from `from_version`, at most `limit`, in version order, decoded by
    /// `decode` and checked gapless: a removed event is `Corrupt` naming the version that is
    /// missing.
    async fn read_with<T>(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
        projection: Option<Document>,
        decode: impl Fn(&StreamId, &Document) -> Result<T, StoreError>,
        version_of: impl Fn(&T) -> u64,
    ) -> Result<Vec<T>, StoreError> {
        let from = from_version.max(1);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let events = self.events();
        let mut find = events
            .find(doc! { "stream": stream.as_str(), "version": { "$gte": to_i64_or_max(from) } })
            .sort(doc! { "version": 1 })
            .batch_size(READ_BATCH.min(u32::try_from(limit).unwrap_or(u32::MAX)));
        if let Ok(limit) = i64::try_from(limit) {
            find = find.limit(limit);
        }
        if let Some(p) = projection {
            find = find.projection(p);
        }
        let mut cursor = find.await.map_err(backend)?;
        let mut out = Vec::new();
        let mut expected = None;
        while let Some(doc) = cursor.try_next().await.map_err(backend)? {
            let item = decode(stream, &doc)?;
            let version = version_of(&item);
            // The first event read must be `from` itself unless the stream ends before it.
            let want = expected.unwrap_or(from);
            if version != want {
                return Err(StoreError::Corrupt {
                    stream: stream.to_string(),
                    version: want,
                    reason: format!("version gap: found {version} where {want} should be"),
                });
            }
            expected = Some(version + 1);
            out.push(item);
        }
        if expected.is_none() && from > 1 {
            // Nothing at or after `from`: fine if the stream is shorter, a gap if it is not.
            let head = self.head_version(stream).await?;
            if head >= from {
                return Err(StoreError::Corrupt {
                    stream: stream.to_string(),
                    version: from,
                    reason: format!("version gap: stream is at {head} but {from} is missing"),
                });
            }
        }
        Ok(out)
    }

    async fn head_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let head = self
            .events()
            .find_one(doc! { "stream": stream.as_str() })
            .sort(doc! { "version": -1 })
            .projection(doc! { "version": 1 })
            .await
            .map_err(backend)?;
        match head {
            None => Ok(0),
            Some(d) => Fields(&d).u64("version").map_err(|reason| StoreError::Corrupt {
                stream: stream.to_string(),
                version: 0,
                reason,
            }),
        }
    }
}

fn to_i64_or_max(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The stored result of an earlier append with the same idempotency key.
fn stored_result(key: &str, row: &Document, stream: &StreamId) -> Result<AppendResult, StoreError> {
    let f = Fields(row);
    let original = f.str("stream").unwrap_or("?").to_owned();
    let last = f.u64("last_version").unwrap_or(0);
    let corrupt = |reason: String| StoreError::Corrupt {
        stream: original.clone(),
        version: last,
        reason: format!("idempotency row {key:?}: {reason}"),
    };
    let original_stream = StreamId::parse(&original).map_err(|e| corrupt(e.to_string()))?;
    if &original_stream != stream {
        return Err(StoreError::IdempotencyKeyReused { key: key.to_owned(), original_stream, stream: stream.clone() });
    }
    Ok(AppendResult {
        stream: original_stream,
        first_version: f.u64("first_version").map_err(&corrupt)?,
        last_version: f.u64("last_version").map_err(&corrupt)?,
        last_hash: f.hash("last_hash").map_err(&corrupt)?,
        deduplicated: true,
    })
}

fn reap_at(ttl: Duration) -> Bson {
    // The TTL monitor works on the server's wall clock, so the deletion time is on the real
    // clock, not the caller's (possibly simulated) `now`.
    let reap = Utc::now() + TimeDelta::from_std(ttl + LEASE_REAP_GRACE).unwrap_or(TimeDelta::MAX);
    Bson::DateTime(mongodb::bson::DateTime::from_millis(reap.timestamp_millis()))
}

fn expiry_us(now: DateTime<Utc>, ttl: Duration) -> i64 {
    now.timestamp_micros().saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX))
}

impl EventStore for MongoEventStore {
    async fn append(&self, request: AppendRequest) -> Result<AppendResult, StoreError> {
        request.validate()?;
        let mut seen = std::collections::HashSet::with_capacity(request.events.len());
        if let Some(e) = request.events.iter().find(|e| !seen.insert(e.event_id)) {
            return Err(StoreError::DuplicateEventId { event_id: e.event_id });
        }
        let mut last_error = None;
        for attempt in 0..mongo_tx::MAX_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(mongo_tx::backoff(attempt)).await;
            }
            let mut session = mongo_tx::begin(&self.client).await.map_err(backend)?;
            let outcome = self.append_attempt(&mut session, &request).await;
            let error = match outcome {
                Ok(Settled::Written(result)) => match mongo_tx::commit(&mut session).await {
                    Ok(()) => return Ok(result),
                    Err(e) => e,
                },
                Ok(Settled::Answer(answer)) => {
                    mongo_tx::abort(session).await;
                    return answer;
                }
                Err(e) => {
                    mongo_tx::abort(session).await;
                    e
                }
            };
            if mongo_tx::classify(&error) == Failure::Fatal {
                return Err(backend(error));
            }
            tracing::debug!(stream = %request.stream, attempt, %error, "append retried");
            last_error = Some(error);
        }
        Err(StoreError::Backend(format!(
            "append to {} gave up after {} attempts: {}",
            request.stream,
            mongo_tx::MAX_ATTEMPTS,
            last_error.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    async fn read_stream(&self, stream: &StreamId, from_version: u64) -> Result<Vec<EventEnvelope>, StoreError> {
        self.read_with(stream, from_version, usize::MAX, None, decode_event, |e| e.version).await
    }

    async fn read_stream_page(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.read_with(stream, from_version, limit, None, decode_event, |e| e.version).await
    }

    async fn read_stream_raw(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let projection = doc! { "version": 1, "event_type": 1, "schema_version": 1, "payload": 1 };
        self.read_with(stream, from_version, limit, Some(projection), decode_raw, |e| e.version).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.head_version(stream).await
    }

    async fn list_streams(&self) -> Result<Vec<StreamId>, StoreError> {
        let names = self.events().distinct("stream", doc! {}).await.map_err(backend)?;
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let Bson::String(name) = name else {
                return Err(StoreError::Corrupt {
                    stream: format!("{name}"),
                    version: 0,
                    reason: "stream is not a string".into(),
                });
            };
            let id = StreamId::parse(&name).map_err(|e| StoreError::Corrupt {
                stream: name.clone(),
                version: 0,
                reason: e.to_string(),
            })?;
            out.push(id);
        }
        out.sort();
        Ok(out)
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let doc = encode_snapshot(&snapshot)?;
        let filter = doc! { "stream": snapshot.stream.as_str(), "version": to_i64(snapshot.version)? };
        self.db
            .collection::<Document>("snapshots")
            .replace_one(filter, doc)
            .upsert(true)
            .write_concern(mongodb::options::WriteConcern::majority())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn load_latest_snapshot(&self, stream: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let found = self
            .db
            .collection::<Document>("snapshots")
            .find_one(doc! { "stream": stream.as_str() })
            .sort(doc! { "version": -1 })
            .await
            .map_err(backend)?;
        found.map(|d| decode_snapshot(stream, &d)).transpose()
    }

    async fn fetch_unpublished(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.fetch_unpublished_after(0, limit).await
    }

    async fn fetch_unpublished_after(&self, after: u64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // One snapshot read: the relay numbers an append's records by their position among
        // those it reads, so it must never see part of a committed append (a plain cursor
        // may, batch by batch, while appends commit), or it would send the rest under dedup
        // ids their siblings already used.
        let mut session = mongo_tx::begin(&self.client).await.map_err(backend)?;
        let found = self
            .outbox()
            .find(doc! { "published": false, "_id": { "$gt": to_i64_or_max(after) } })
            .sort(doc! { "_id": 1 })
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .batch_size(READ_BATCH.min(u32::try_from(limit).unwrap_or(u32::MAX)))
            .session(&mut session)
            .await;
        let mut cursor = match found {
            Ok(cursor) => cursor,
            Err(e) => {
                mongo_tx::abort(session).await;
                return Err(backend(e));
            }
        };
        let mut out = Vec::new();
        loop {
            match cursor.next(&mut session).await {
                Some(Ok(doc)) => out.push(decode_outbox(&doc)?),
                Some(Err(e)) => {
                    drop(cursor);
                    mongo_tx::abort(session).await;
                    return Err(backend(e));
                }
                None => break,
            }
        }
        drop(cursor);
        mongo_tx::commit(&mut session).await.map_err(backend)?;
        Ok(out)
    }

    async fn mark_published(&self, ids: &[u64]) -> Result<(), StoreError> {
        // Ids beyond i64 were never handed out; skipping them is "unknown ids are ignored".
        let ids: Vec<i64> = ids.iter().filter_map(|&id| i64::try_from(id).ok()).collect();
        if ids.is_empty() {
            return Ok(());
        }
        // Published records are deleted, so the collection holds only what is in transit. In
        // one transaction: the relay numbers an append's records by their position among the
        // unpublished ones it reads, so half an append deleted (a crash between documents)
        // would renumber the rest under dedup ids their siblings already used.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut session = mongo_tx::begin(&self.client).await.map_err(backend)?;
            let deleted = self.outbox().delete_many(doc! { "_id": { "$in": &ids } }).session(&mut session).await;
            let result = match deleted {
                Ok(_) => mongo_tx::commit(&mut session).await,
                Err(e) => {
                    mongo_tx::abort(session).await;
                    Err(e)
                }
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) if mongo_tx::classify(&e) == mongo_tx::Failure::Retry && attempt < mongo_tx::MAX_ATTEMPTS => {
                    tokio::time::sleep(mongo_tx::backoff(attempt)).await;
                }
                Err(e) => return Err(backend(e)),
            }
        }
    }

    async fn mark_processed(&self, consumer: &str, stream: &StreamId, version: u64) -> Result<bool, StoreError> {
        let row = doc! { "consumer": consumer, "stream": stream.as_str(), "version": to_i64(version)? };
        let inserted = self
            .db
            .collection::<Document>("processed_events")
            .insert_one(row)
            .write_concern(mongodb::options::WriteConcern::majority())
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if mongo_tx::is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Matches only a lease that is ours or expired; if none matches, the upsert inserts,
        // which fails on `_id` exactly when someone else holds it: check and write are atomic.
        let filter = doc! {
            "_id": name,
            "$or": [ { "owner": owner }, { "expires_at_us": { "$lte": now.timestamp_micros() } } ],
        };
        let update = doc! {
            "$set": { "owner": owner, "expires_at_us": expiry_us(now, ttl), "reap_at": reap_at(ttl) },
            "$unset": { "asked_by": "" },
        };
        let result = self
            .leases()
            .update_one(filter, update)
            .upsert(true)
            .write_concern(mongodb::options::WriteConcern::majority())
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if mongo_tx::is_duplicate_key(&e) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    async fn renew_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let live = doc! { "_id": name, "owner": owner, "expires_at_us": { "$gt": now.timestamp_micros() } };
        let mut renew = live.clone();
        renew.insert("asked_by", doc! { "$exists": false });
        let update = doc! { "$set": { "expires_at_us": expiry_us(now, ttl), "reap_at": reap_at(ttl) } };
        let result = self
            .leases()
            .update_one(renew, update)
            .write_concern(mongodb::options::WriteConcern::majority())
            .await
            .map_err(backend)?;
        if result.matched_count == 1 {
            return Ok(true);
        }
        // Not renewed: not ours, or another node asked for it. Then hand it over to the asker
        // read here (named in the filter: if another ask replaced it meanwhile, nothing is
        // written, the lease is no longer renewed and runs out within its ttl).
        let Some(lease) = self.leases().find_one(live.clone()).await.map_err(backend)? else { return Ok(false) };
        let Ok(asker) = lease.get_str("asked_by") else { return Ok(false) };
        let mut handover = live;
        handover.insert("asked_by", asker);
        let update = doc! {
            "$set": { "owner": asker, "expires_at_us": expiry_us(now, ttl), "reap_at": reap_at(ttl) },
            "$unset": { "asked_by": "" },
        };
        self.leases()
            .update_one(handover, update)
            .write_concern(mongodb::options::WriteConcern::majority())
            .await
            .map_err(backend)?;
        Ok(false)
    }

    async fn request_lease(&self, name: &str, by: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let filter = doc! { "_id": name, "owner": { "$ne": by }, "expires_at_us": { "$gt": now.timestamp_micros() } };
        self.leases()
            .update_one(filter, doc! { "$set": { "asked_by": by } })
            .write_concern(mongodb::options::WriteConcern::majority())
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
        let result = self
            .leases()
            .delete_one(doc! { "_id": name, "owner": owner })
            .write_concern(mongodb::options::WriteConcern::majority())
            .await
            .map_err(backend)?;
        Ok(result.deleted_count == 1)
    }

    async fn lease_owner(&self, name: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        let filter = doc! { "_id": name, "expires_at_us": { "$gt": now.timestamp_micros() } };
        let found = self.leases().find_one(filter).await.map_err(backend)?;
        Ok(found.and_then(|lease| lease.get_str("owner").ok().map(str::to_owned)))
    }
}
