//! Two `hob serve` nodes sharing one MongoDB (SecantusDB) and the SQS FIFO queues (moto),
//! with short leases. Users are pinned to a node (a sticky load balancer), the market is hosted
//! by whichever node took its lease, and orders of one node's users cross with the other's
//! through the SQS market queue. Mid-load the node hosting the market is killed with SIGKILL;
//! the survivor takes its market and users over after the lease ttl, its users' commands then
//! succeed there, and in the end: every acknowledged order is stored once and reached the
//! market once, the audit (hash chains, no overfill, conservation, fills match trades) passes,
//! no record was dead-lettered, and the views equal a rebuild from the events.
//!
//! Test code unwraps: a failure should fail the test.

#[path = "support/servers.rs"]
mod servers;

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use awc::http::{Method, StatusCode};
use futures_util::future::join_all;
use serde_json::{json, Value};

use hob::events::EventEnvelope;
use hob::events::{EventStore, StreamId};
use hob::projections::{diff_views, MemoryViewStore, Projector};
use hob::queue::{Queue, SqsConfig, SqsCredentials, SqsQueue, SqsQueueNames, MARKET_QUEUE, USER_QUEUE};
use hob::store::{MongoEventStore, MongoViewStore};

const LEASE_TTL_MS: u64 = 2_000;
const PREFIX: &str = "two-";
const MARKET: &str = "BTC-USDT";
/// Users pinned to the first node, then to the second: the first only buy, the second only
/// sell, so every trade crosses one node's user with the other's.
const BUYERS: [&str; 2] = ["0x1111111111111111111111111111111111111111", "0x1212121212121212121212121212121212121212"];
const SELLERS: [&str; 2] = ["0x2121212121212121212121212121212121212121", "0x2222222222222222222222222222222222222222"];
const ROUNDS_BEFORE_KILL: usize = 6;
const ROUNDS_AFTER_KILL: usize = 6;
/// A lease was renewed at most a third of its ttl before the kill, so it runs out no sooner
/// than two thirds of the ttl after it.
/// How long the store keeps a dead client's transaction (and its write locks) open.
const TRANSACTION_LIFETIME: Duration = Duration::from_secs(60);
const EARLIEST_TAKEOVER: Duration = Duration::from_millis(LEASE_TTL_MS * 2 / 3 - 50);

struct Hob {
    name: &'static str,
    base: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Hob {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Hob {
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(80).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

fn db(mongo: u16, name: &str) -> String {
    format!("mongodb://127.0.0.1:{mongo}/{name}?replicaSet=secantus")
}

fn start_hob(name: &'static str, mongo: u16, moto: u16, dir: &std::path::Path) -> Hob {
    let port = servers::free_port();
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hob"))
        .args(["serve", "--workers", "1", "--dev-insecure-user-header", "--dev-faucet"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--store", &db(mongo, "two_events"), "--views", &db(mongo, "two_views")])
        .env("HOB_NODE_ID", name)
        .env("HOB_LEASE_TTL_MS", LEASE_TTL_MS.to_string())
        .env("HOB_QUEUE", "sqs")
        .env("HOB_SQS_ENDPOINT", format!("http://127.0.0.1:{moto}"))
        .env("HOB_SQS_CREATE_QUEUES", "true")
        .env("HOB_SQS_QUEUE_PREFIX", PREFIX)
        // A dead node's held messages come back after this; a receive of another node's
        // record counts towards the dead-letter limit, so a cluster raises it.
        .env("HOB_SQS_VISIBILITY_TIMEOUT_MS", "2000")
        .env("HOB_SQS_MAX_RECEIVE_COUNT", "100")
        // moto serves one request at a time here (see `servers::moto_serial`): no long polls.
        .env("HOB_SQS_WAIT_TIME_MS", "0")
        .env("HOB_LOG_LEVEL", "info")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    Hob { name, base: format!("http://127.0.0.1:{port}"), child, log }
}

async fn call(hob: &Hob, method: Method, path: &str, user: Option<&str>, body: Option<Value>) -> (StatusCode, Value) {
    servers::call_as(&hob.base, method, path, user, body).await
}

async fn ok(hob: &Hob, method: Method, path: &str, user: Option<&str>, body: Option<Value>) -> Value {
    let (status, body) = call(hob, method, path, user, body).await;
    assert!(status.is_success(), "{} {path}: {status} {body}\n{}", hob.name, hob.log());
    body
}

async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn ready(hob: &Hob) {
    eventually(&format!("{} is ready", hob.name), Duration::from_secs(60), || async {
        call(hob, Method::GET, "/readyz", None, None).await.0 == StatusCode::OK
    })
    .await;
}

/// What one order request got back.
enum Placed {
    Acked(u64),
    /// The node answered `hosted_elsewhere` naming this owner.
    Elsewhere(String),
    Failed,
}

async fn place(hob: &Hob, user: &str, side: &str, nonce: u64) -> Placed {
    let body = json!({ "market": MARKET, "side": side, "price": "100.00", "qty": "0.01", "nonce": nonce });
    let (status, body) = call(hob, Method::POST, "/api/v1/orders", Some(user), Some(body)).await;
    if status.is_success() {
        return Placed::Acked(body["order_id"].as_str().unwrap().parse().unwrap());
    }
    if status == StatusCode::SERVICE_UNAVAILABLE && body["code"] == "hosted_elsewhere" {
        return Placed::Elsewhere(body["message"].as_str().unwrap_or_default().to_owned());
    }
    Placed::Failed
}

type Nonces = BTreeMap<&'static str, Cell<u64>>;

fn next_nonce(nonces: &Nonces, user: &str) -> u64 {
    let nonce = &nonces[user];
    nonce.set(nonce.get() + 1);
    nonce.get()
}

/// One order from every user at once, each sent to its user's node (the survivor once the
/// other is gone): buyers buy, sellers sell, at one price, so they cross.
async fn round(nodes: &[Option<Hob>; 2], nonces: &Nonces) -> Vec<(&'static str, Placed)> {
    let mut sends = Vec::new();
    for (i, (users, side)) in [(BUYERS, "buy"), (SELLERS, "sell")].into_iter().enumerate() {
        let hob = nodes[i].as_ref().or(nodes[1 - i].as_ref()).unwrap();
        for user in users {
            let nonce = next_nonce(nonces, user);
            sends.push(async move { (user, place(hob, user, side, nonce).await) });
        }
    }
    join_all(sends).await
}

fn record(acked: &mut BTreeMap<u64, &'static str>, placed: Vec<(&'static str, Placed)>) {
    for (user, placed) in placed {
        if let Placed::Acked(id) = placed {
            acked.insert(id, user);
        }
    }
}

async fn market_events(store: &MongoEventStore) -> Vec<EventEnvelope> {
    store.read_stream(&StreamId::parse(&format!("market:{MARKET}")).unwrap(), 1).await.unwrap()
}

fn order_ids_of(events: &[EventEnvelope], event_type: &str, field: &[&str]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .filter_map(|e| field.iter().try_fold(&e.payload, |v, f| v.get(*f)).and_then(Value::as_u64))
        .collect()
}

#[actix_rt::test]
async fn given_two_nodes_when_the_market_host_is_killed_mid_load_then_the_survivor_takes_over_and_nothing_is_lost_or_doubled(
) {
    let (mongo, moto) = (servers::secantus(), servers::moto_serial());
    let logs = tempfile::tempdir().unwrap();
    let first = start_hob("node-a", mongo.port, moto.port, logs.path());
    ready(&first).await;
    let second = start_hob("node-b", mongo.port, moto.port, logs.path());
    ready(&second).await;
    let mut nodes = [Some(first), Some(second)];

    // given: each user funded through its own node, which takes the user's lease
    for (i, users) in [BUYERS, SELLERS].iter().enumerate() {
        let hob = nodes[i].as_ref().unwrap();
        for user in users {
            for (asset, amount) in [("USDT", "100000"), ("BTC", "10")] {
                let body = json!({ "user": user, "asset": asset, "amount": amount });
                ok(hob, Method::POST, "/api/v1/dev/faucet", None, Some(body)).await;
            }
        }
    }
    // a user's command on the other node is refused with a typed error naming its host
    let refused = place(nodes[1].as_ref().unwrap(), BUYERS[0], "buy", 1).await;
    assert!(matches!(&refused, Placed::Elsewhere(m) if m.contains("node-a")), "node-b refuses node-a's user");
    // ... and asks for the user's lease, which node-a hands over at its next renewal
    let store = MongoEventStore::connect(&db(mongo.port, "two_events"), "two_events").await.unwrap();
    let lease = format!("lock:user:{}", BUYERS[0]);
    let owner = || async { store.lease_owner(&lease, chrono::Utc::now()).await.unwrap() };
    eventually("node-a hands the user to node-b", Duration::from_secs(30), || async {
        owner().await.as_deref() == Some("node-b")
    })
    .await;
    // the user's client stays with node-a, whose next requests ask for it back: the account
    // follows its client
    let faucet = json!({ "user": BUYERS[0], "asset": "USDT", "amount": "1" });
    eventually("node-a serves its user again", Duration::from_secs(30), || async {
        let (status, _) =
            call(nodes[0].as_ref().unwrap(), Method::POST, "/api/v1/dev/faucet", None, Some(faucet.clone())).await;
        status.is_success()
    })
    .await;
    assert_eq!(owner().await.as_deref(), Some("node-a"));

    let nonces: Nonces = BUYERS.iter().chain(&SELLERS).map(|u| (*u, Cell::new(1))).collect();
    let mut acked: BTreeMap<u64, &'static str> = BTreeMap::new();

    // when: trading through both nodes
    for _ in 0..ROUNDS_BEFORE_KILL {
        record(&mut acked, round(&nodes, &nonces).await);
    }
    eventually("the orders cross through the SQS market queue", Duration::from_secs(60), || async {
        !order_ids_of(&market_events(&store).await, "market.Traded", &["taker_order"]).is_empty()
    })
    .await;

    // ... and the node hosting the market is killed with SIGKILL while a round is in flight
    let market_lease = format!("lock:market:{MARKET}");
    let host = store.lease_owner(&market_lease, chrono::Utc::now()).await.unwrap().unwrap();
    let victim = if host == "node-a" { 0 } else { 1 };
    let survivor = 1 - victim;
    let pid = nodes[victim].as_ref().unwrap().child.id().to_string();
    let kill = async {
        actix_rt::time::sleep(Duration::from_millis(5)).await;
        assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
        Instant::now()
    };
    let (placed, killed_at) = futures_util::future::join(round(&nodes, &nonces), kill).await;
    record(&mut acked, placed);
    nodes[victim].as_mut().unwrap().child.wait().unwrap();
    nodes[victim] = None;
    let hob = nodes[survivor].as_ref().unwrap();

    // then: the dead node's users are refused on the survivor, naming the dead owner, until
    // their leases expire ...
    let (victims_user, victims_side) = if victim == 0 { (BUYERS[0], "buy") } else { (SELLERS[0], "sell") };
    match place(hob, victims_user, victims_side, next_nonce(&nonces, victims_user)).await {
        Placed::Elsewhere(message) => assert!(message.contains(["node-a", "node-b"][victim]), "{message}"),
        Placed::Acked(id) => {
            // The lease ran out between the kill and this request: the takeover came first.
            assert!(killed_at.elapsed() >= EARLIEST_TAKEOVER);
            acked.insert(id, victims_user);
        }
        // The survivor took the user over and its append conflicted with the killed node's
        // open transaction (see TRANSACTION_LIFETIME): not acknowledged, the client retries.
        // Only a node that may host the user gets that far.
        Placed::Failed => assert!(
            killed_at.elapsed() >= EARLIEST_TAKEOVER,
            "before the lease could expire: neither acknowledged nor hosted_elsewhere\n{}",
            hob.log()
        ),
    }
    // ... then their commands succeed there: the survivor took them over (once the killed
    // node's transaction no longer holds what the append writes)
    let deadline = Instant::now() + TRANSACTION_LIFETIME + Duration::from_secs(30);
    loop {
        if let Placed::Acked(id) = place(hob, victims_user, victims_side, next_nonce(&nonces, victims_user)).await {
            acked.insert(id, victims_user);
            break;
        }
        assert!(Instant::now() < deadline, "the survivor never took the dead node's user over\n{}", hob.log());
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let takeover = killed_at.elapsed();
    assert!(takeover >= EARLIEST_TAKEOVER, "not before the lease could expire: {takeover:?}");

    // every user trades on the survivor now; a request the store could not take (a write
    // conflict retried too long) is not acknowledged, and the client retries it
    for _ in 0..ROUNDS_AFTER_KILL {
        for (user, placed) in round(&nodes, &nonces).await {
            match placed {
                Placed::Acked(id) => {
                    acked.insert(id, user);
                }
                Placed::Elsewhere(message) => panic!("after the takeover: {message}\n{}", hob.log()),
                Placed::Failed => {}
            }
        }
    }

    // every acknowledged order reaches the market (the survivor hosts it now) exactly once
    let deadline = Instant::now() + TRANSACTION_LIFETIME + Duration::from_secs(30);
    loop {
        let accepted: BTreeSet<u64> =
            order_ids_of(&market_events(&store).await, "market.Accepted", &["order_id"]).into_iter().collect();
        let missing: Vec<(&u64, &&str)> = acked.iter().filter(|(id, _)| !accepted.contains(id)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "acknowledged orders never reached the market: {missing:?}\n{}", hob.log());
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let events = market_events(&store).await;
    let mut accepted: BTreeMap<u64, usize> = BTreeMap::new();
    for id in order_ids_of(&events, "market.Accepted", &["order_id"]) {
        *accepted.entry(id).or_default() += 1;
    }
    assert!(accepted.values().all(|n| *n == 1), "no order accepted twice: {accepted:?}");
    let traded = order_ids_of(&events, "market.Traded", &["taker_order"]);
    assert!(!traded.is_empty());
    // ... and was stored once in its user's stream
    for user in BUYERS.iter().chain(&SELLERS) {
        let stream = StreamId::parse(&format!("user:{user}")).unwrap();
        let placed =
            order_ids_of(&store.read_stream(&stream, 1).await.unwrap(), "user.OrderPlaced", &["order", "order_id"]);
        let unique: BTreeSet<u64> = placed.iter().copied().collect();
        assert_eq!(unique.len(), placed.len(), "{user}: no order placed twice");
        for (id, _) in acked.iter().filter(|(_, u)| *u == user) {
            assert!(unique.contains(id), "{user}: acknowledged order {id} is in its stream");
        }
    }

    // nothing was dead-lettered on the way (a bounced record is handed back, not failed)
    let mut sqs = SqsConfig::aws("us-east-1");
    sqs.endpoint = Some(format!("http://127.0.0.1:{}", moto.port));
    sqs.credentials =
        Some(SqsCredentials { access_key_id: "test".into(), secret_access_key: "test".into(), session_token: None });
    sqs.queue_names = SqsQueueNames::with_prefix(PREFIX);
    sqs.max_receive_count = 100;
    sqs.visibility_timeout = Duration::from_secs(2);
    let queue = SqsQueue::connect(sqs).await.unwrap();
    for destination in [MARKET_QUEUE, USER_QUEUE] {
        assert!(queue.dead_letters(destination).await.unwrap().is_empty(), "no dead letters in {destination}");
    }

    // the views the survivor projected equal a rebuild from the events alone
    let live = MongoViewStore::connect(&db(mongo.port, "two_views"), "two_views").await.unwrap();
    // A transaction the killed node left open holds its documents until the server aborts it
    // (MongoDB's transactionLifetimeLimitSeconds, 60 s by default): saves conflict until then.
    let deadline = Instant::now() + TRANSACTION_LIFETIME + Duration::from_secs(30);
    loop {
        let rebuilt = MemoryViewStore::new();
        Projector::new().catch_up(&store, &rebuilt).await.unwrap();
        let diffs = diff_views(&rebuilt, &live).await.unwrap();
        if diffs.is_empty() {
            break;
        }
        let named: Vec<String> = diffs.iter().map(|d| format!("{}/{}", d.kind, d.key)).collect();
        let first = diffs.first().map(|d| format!("{:?}\n{:?}", d.left, d.right)).unwrap_or_default();
        assert!(Instant::now() < deadline, "views differ from a rebuild: {named:?}\n{first}\n{}", hob.log());
        actix_rt::time::sleep(Duration::from_millis(300)).await;
    }
    // the auditor (hash chains, no overfill, conservation, fills match trades) passes once
    // the survivor has delivered the last fills: the market's outcomes reach the users'
    // streams through the user queue a little after the trades
    // (a user's append can wait for the killed node's open transaction to be aborted, as above)
    let deadline = Instant::now() + TRANSACTION_LIFETIME + Duration::from_secs(30);
    loop {
        let audit = Command::new(env!("CARGO_BIN_EXE_hob"))
            .args(["audit", "--json", "--store", &db(mongo.port, "two_events")])
            .output()
            .unwrap();
        if audit.status.code() == Some(0) {
            break;
        }
        if Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let report: Value = serde_json::from_slice(&audit.stdout).unwrap_or(Value::Null);
        let failed: Vec<&Value> =
            report["checks"].as_array().map(|c| c.iter().filter(|c| c["ok"] != true).collect()).unwrap_or_default();
        dump_state(&store, &queue).await;
        panic!("{failed:?} {}\n{}", String::from_utf8_lossy(&audit.stderr), hob.log());
    }
    drop(nodes);
}

/// What a failed run leaves behind: every user's and the market's events, the outbox records
/// not yet published and the dead letters.
async fn dump_state(store: &MongoEventStore, queue: &SqsQueue) {
    for user in SELLERS.iter().chain(&BUYERS) {
        let stream = StreamId::parse(&format!("user:{user}")).unwrap();
        for e in store.read_stream(&stream, 1).await.unwrap() {
            let payload = e.payload.to_string().chars().take(300).collect::<String>();
            eprintln!("{user} v{} {} {payload}", e.version, e.event_type);
        }
    }
    for e in market_events(store).await {
        let payload = e.payload.to_string().chars().take(200).collect::<String>();
        eprintln!("market v{} {} {payload}", e.version, e.event_type);
    }
    for entry in store.fetch_unpublished(10_000).await.unwrap() {
        eprintln!(
            "unpublished #{} {}:{} -> {}/{}",
            entry.id, entry.stream, entry.version, entry.record.destination, entry.record.group
        );
    }
    for destination in [MARKET_QUEUE, USER_QUEUE] {
        eprintln!("{destination} dead letters: {:?}", queue.dead_letters(destination).await.map(|d| d.len()));
    }
}
