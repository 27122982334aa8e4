//! The operator console (`GET /console`) rendered by a real browser: headless Chromium (Debian
//! `chromium`, installed by `make tools`) opens the page served by the real `hob serve` binary,
//! runs its script against the operator API, and the test reads the DOM it leaves
//! (`--dump-dom`) or its screenshot (`--screenshot`), compared with `tests/golden/console.png`.
//!
//! One hob serves the read-only tests (`shared()`); the tests that halt a market or take the
//! server away start their own. Between Chromium and hob, those put a small proxy of the test's
//! own: it sees each request the page makes, so the test can act at an exact point of the
//! page's life (halt a market after the page has seen it open) instead of guessing at time.
//! A watchdog shell kills every hob once this test process is gone.
//!
//! `HOB_UPDATE_GOLDEN=1 cargo test --test console_chromium` rewrites the golden screenshot.

// Test code unwraps: a failure should fail the test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const TOKEN: &str = "operator-token-for-the-console-tests";
const ALICE: &str = "0x0101010101010101010101010101010101010101";
const BOB: &str = "0x0202020202020202020202020202020202020202";
const LIMIT: Duration = Duration::from_secs(90);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;
/// Screenshots are compared in blocks of this many pixels square, by mean brightness, so
/// anti-aliasing and sub-pixel glyph placement (another Chromium, another FreeType) do not
/// count, while a moved, missing or recoloured panel does.
const BLOCK: u32 = 8;
/// A block differs when its mean brightness moved by more than this (of 255).
const BLOCK_TOLERANCE: f64 = 12.0;
/// At most this fraction of blocks may differ: figures that depend on batching (versions,
/// counters) may move a digit, a layout change may not.
const MAX_DIFFERING_BLOCKS: f64 = 0.01;
/// Set to 1 to rewrite the golden screenshot.
const UPDATE_GOLDEN: &str = "HOB_UPDATE_GOLDEN";

// ---------------------------------------------------------------------------------------------
// hob
// ---------------------------------------------------------------------------------------------

struct Hob {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
    /// Held, never waited on: it must outlive this process.
    _watchdog: Child,
}

impl Drop for Hob {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `hob serve` in development mode (user header, faucet) with an operator token, on
/// a fresh data directory and a free port, plus `args`; returns once its banner is complete.
fn spawn_hob(args: &[&str]) -> Hob {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let stderr = std::fs::File::create(dir.path().join("hob.stderr")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hob"))
        .args(["serve", "--workers", "1", "--dev-insecure-user-header", "--dev-faucet"])
        .args(args)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--store")
        .arg(format!("sqlite:{}", dir.path().join("hob.db").display()))
        .arg("--views")
        .arg(format!("sqlite:{}", dir.path().join("views.db").display()))
        .env("HOB_OPERATOR_TOKEN", TOKEN)
        // hob refuses a HOB_* variable it does not know, and this one is the test's.
        .env_remove(UPDATE_GOLDEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("hob starts");
    let watchdog = hob::process::stop_with_this_process(child.id()).unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    // The faucet line is the banner's last.
    let complete = lines.by_ref().map_while(Result::ok).any(|line| {
        banner.push(line.clone());
        line.contains("DEVELOPMENT faucet")
    });
    std::thread::spawn(move || lines.for_each(drop));
    if !complete {
        let _ = child.wait();
    }
    let stderr = std::fs::read_to_string(dir.path().join("hob.stderr")).unwrap_or_default();
    assert!(complete, "hob exited before its banner:\n{}\nstderr:\n{stderr}", banner.join("\n"));
    assert!(banner.iter().any(|l| l.contains("/console")), "the banner names the console: {banner:?}");
    Hob { child, port, _dir: dir, _watchdog: watchdog }
}

/// One HTTP/1.1 request on its own connection; the status and the body.
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&Value>) -> (u16, String) {
    let (status, _, body) = exchange(port, method, path, headers, body);
    (status, body)
}

/// One HTTP/1.1 request on its own connection; the status, the head (lowercase) and the body.
fn exchange(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn ok(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Value {
    let (status, text) = http(port, method, path, headers, body.as_ref());
    assert!((200..300).contains(&status), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn place(hob: &Hob, user: &str, side: &str, price: &str, qty: &str, nonce: u64) {
    let order =
        json!({"market": "BTC-USDT", "side": side, "type": "limit", "price": price, "qty": qty, "nonce": nonce});
    ok(hob.port, "POST", "/api/v1/orders", &[("x-hob-user", user)], Some(order));
}

/// Alice and Bob get funds on the ledger (with a chain too: these tests settle nothing).
fn given_two_funded_users(hob: &Hob) {
    for user in [ALICE, BOB] {
        for (asset, amount) in [("USDT", "100000"), ("BTC", "10")] {
            let funds = json!({"user": user, "asset": asset, "amount": amount, "target": "ledger"});
            ok(hob.port, "POST", "/api/v1/dev/faucet", &[], Some(funds));
        }
    }
}

/// Two funded users, a BTC-USDT book on both sides and one trade (0.1 at 30000.00).
fn given_a_book_and_a_trade(hob: &Hob) {
    given_two_funded_users(hob);
    place(hob, ALICE, "sell", "30100.00", "0.5", 1);
    place(hob, ALICE, "sell", "30000.00", "0.2", 2);
    place(hob, BOB, "buy", "29900.00", "0.3", 1);
    place(hob, BOB, "buy", "30000.00", "0.1", 2);
    eventually("the trade and both sides of the book", || {
        let book = ok(hob.port, "GET", "/api/v1/markets/BTC-USDT/book", &[], None);
        let trades = ok(hob.port, "GET", "/api/v1/markets/BTC-USDT/trades", &[], None);
        book["bids"].as_array().is_some_and(|b| b.len() == 1)
            && book["asks"].as_array().is_some_and(|a| a.len() == 2)
            && trades.as_array().is_some_and(|t| t.len() == 1)
    });
}

/// The hob of the read-only tests: a book and a trade on BTC-USDT, no chain.
fn shared() -> &'static Hob {
    static HOB: OnceLock<Hob> = OnceLock::new();
    HOB.get_or_init(|| {
        let hob = spawn_hob(&[]);
        given_a_book_and_a_trade(&hob);
        hob
    })
}

/// The hob of the settlement tests: on its own anvil, ready (markets registered), with a
/// BTC-USDT book that does not cross, so nothing trades and nothing settles: every figure of
/// the settlement panel is known.
fn on_anvil() -> &'static Hob {
    static HOB: OnceLock<Hob> = OnceLock::new();
    HOB.get_or_init(|| {
        let hob = spawn_hob(&["--chain", "anvil"]);
        eventually("/readyz (the node answers, the markets are registered)", || {
            http(hob.port, "GET", "/readyz", &[], None).0 == 200
        });
        given_two_funded_users(&hob);
        place(&hob, ALICE, "sell", "30100.00", "0.5", 1);
        place(&hob, BOB, "buy", "29900.00", "0.3", 1);
        eventually("both sides of the book", || {
            let book = ok(hob.port, "GET", "/api/v1/markets/BTC-USDT/book", &[], None);
            book["bids"].as_array().is_some_and(|b| b.len() == 1)
                && book["asks"].as_array().is_some_and(|a| a.len() == 1)
        });
        hob
    })
}

// ---------------------------------------------------------------------------------------------
// Chromium
// ---------------------------------------------------------------------------------------------

/// Debian's `chromium`, or `chromium-browser` where an image ships that name.
fn chromium_binary() -> PathBuf {
    let dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    let found = ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|candidate| candidate.is_file());
    found.unwrap_or_else(|| {
        panic!("chromium is missing: run `make tools` (scripts/install-tools.sh installs Debian's chromium)")
    })
}

/// Runs headless Chromium on `url` with `args` (its own profile directory, so tests may run
/// side by side) and returns its stdout. `budget_ms` is virtual time: the page's timers run
/// that far, and virtual time waits while a request is pending, so the count of polls the
/// page makes does not depend on how loaded the machine is.
fn chromium(url: &str, budget_ms: u64, args: &[String]) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut child = Command::new(chromium_binary())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .args(["--disable-dev-shm-usage", "--force-device-scale-factor=1", "--font-render-hinting=none"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(out.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish {url} within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium failed on {url}: {status}");
    std::fs::read_to_string(out.path()).unwrap()
}

fn dump_dom(port: u16, query: &str, token: &str, budget_ms: u64) -> String {
    let url = format!("http://127.0.0.1:{port}/console{query}#token={token}");
    let dom = chromium(&url, budget_ms, &["--dump-dom".to_owned()]);
    assert!(dom.contains("<main id=\"panels\">"), "chromium rendered the console:\n{dom}");
    dom
}

/// The element that opens at `marker` (an attribute), up to the end of its table row.
fn row<'a>(dom: &'a str, marker: &str) -> &'a str {
    let start = dom.find(marker).unwrap_or_else(|| panic!("no {marker} in the console:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

/// The text of the settlement field `name` (`<dd data-field="name">`).
fn field<'a>(dom: &'a str, name: &str) -> &'a str {
    let marker = format!("data-field=\"{name}\">");
    let start = dom.find(&marker).unwrap_or_else(|| panic!("no field {name} in the console:\n{dom}")) + marker.len();
    let rest = &dom[start..];
    &rest[..rest.find("</dd>").unwrap()]
}

fn body_tag(dom: &str) -> &str {
    let start = dom.find("<body").unwrap();
    &dom[start..start + dom[start..].find('>').unwrap()]
}

// ---------------------------------------------------------------------------------------------
// A proxy that sees the page's requests
// ---------------------------------------------------------------------------------------------

enum Pass {
    Forward,
    /// Close the connection without an answer, as a server that is gone.
    Drop,
}

/// Forwards each connection's request to hob on `upstream`, one request per connection
/// (`connection: close` both ways), after asking `decide` with the request line.
fn proxy(upstream: u16, decide: impl Fn(&str) -> Pass + Send + Sync + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let decide = Arc::new(decide);
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let decide = decide.clone();
            std::thread::spawn(move || relay(client, upstream, &*decide));
        }
    });
    port
}

fn relay(mut client: TcpStream, upstream: u16, decide: &(dyn Fn(&str) -> Pass + Send + Sync)) {
    client.set_read_timeout(Some(LIMIT)).unwrap();
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut head = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.push(line);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    if let Pass::Drop = decide(head[0].trim_end()) {
        return;
    }
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    let mut request = head.concat();
    request.push_str("connection: close\r\n\r\n");
    server.write_all(request.as_bytes()).unwrap();
    server.write_all(&body).unwrap();
    let mut response = Vec::new();
    server.read_to_end(&mut response).unwrap();
    let _ = client.write_all(&response);
}

// ---------------------------------------------------------------------------------------------
// Screenshots
// ---------------------------------------------------------------------------------------------

struct Image {
    width: u32,
    height: u32,
    /// RGB, row by row.
    rgb: Vec<[u8; 3]>,
}

fn decode(path: &Path) -> Image {
    let mut decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| match channels {
            1 | 2 => [p[0], p[0], p[0]],
            _ => [p[0], p[1], p[2]],
        })
        .collect();
    Image { width: info.width, height: info.height, rgb }
}

/// Each `BLOCK`-square block's mean brightness, row by row (a partial last row or column
/// is left out).
fn block_means(image: &Image) -> Vec<f64> {
    let (columns, rows) = (image.width / BLOCK, image.height / BLOCK);
    let mut means = Vec::with_capacity((columns * rows) as usize);
    for by in 0..rows {
        for bx in 0..columns {
            let mut sum = 0u64;
            for y in by * BLOCK..(by + 1) * BLOCK {
                for x in bx * BLOCK..(bx + 1) * BLOCK {
                    let [r, g, b] = image.rgb[(y * image.width + x) as usize];
                    sum += u64::from(r) + u64::from(g) + u64::from(b);
                }
            }
            means.push(sum as f64 / f64::from(3 * BLOCK * BLOCK));
        }
    }
    means
}

/// The fraction of blocks whose mean brightness differs beyond the tolerance.
fn differing_blocks(a: &Image, b: &Image) -> f64 {
    let (ours, theirs) = (block_means(a), block_means(b));
    ours.iter().zip(&theirs).filter(|(x, y)| (*x - *y).abs() > BLOCK_TOLERANCE).count() as f64 / ours.len() as f64
}

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/console.png")
}

// ---------------------------------------------------------------------------------------------
// The specification
// ---------------------------------------------------------------------------------------------

#[test]
fn given_no_token_when_the_console_is_fetched_then_the_page_is_served_but_no_data() {
    let hob = shared();

    let (status, head, page) = exchange(hob.port, "GET", "/console", &[], None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(head.contains("content-security-policy: default-src 'none'; script-src 'self'"), "{head}");
    assert!(page.contains("<script src=\"/console/console.js\""), "the page loads its script from hob itself");
    let (status, head, script) = exchange(hob.port, "GET", "/console/console.js", &[], None);
    assert_eq!(status, 200);
    assert!(head.contains("content-type: text/javascript"), "{head}");
    assert!(
        !script.contains("innerHTML") && !script.contains("insertAdjacentHTML"),
        "server text never becomes markup"
    );
    assert!(!page.contains("http://") && !page.contains("https://"), "no CDN: the page names no other origin");
    let (status, _, missing) = exchange(hob.port, "GET", "/console/other.js", &[], None);
    assert_eq!(
        (status, serde_json::from_str::<Value>(&missing).unwrap()["code"].clone()),
        (404, json!("no_such_asset"))
    );

    assert_eq!(http(hob.port, "GET", "/operator/settlement", &[], None).0, 401, "the data needs the token");
    let auth = format!("Bearer {TOKEN}");
    let (status, body) = http(hob.port, "GET", "/operator/settlement", &[("authorization", &auth)], None);
    assert_eq!((status, serde_json::from_str::<Value>(&body).unwrap()["code"].clone()), (409, json!("no_chain")));
}

#[test]
fn given_a_book_and_a_trade_when_the_console_opens_then_it_shows_markets_actors_settlement_and_alerts() {
    let hob = shared();
    let dom = dump_dom(hob.port, "", TOKEN, 3_000);

    assert!(body_tag(&dom).contains("data-state=\"live\""), "the console is live: {}", body_tag(&dom));
    assert!(dom.contains("id=\"login\" class=\"login\" hidden"), "no token is asked for");
    // Markets: status, best bid and ask, the last trade.
    let btc = row(&dom, "data-market=\"BTC-USDT\"");
    assert!(btc.contains("data-status=\"open\""), "{btc}");
    assert!(btc.contains("data-field=\"best-bid\">29900.00<"), "{btc}");
    assert!(btc.contains("data-field=\"best-ask\">30000.00<"), "{btc}");
    assert!(btc.contains("data-field=\"last-trade\">30000.00 × 0.1000 (buy)<"), "{btc}");
    assert!(btc.contains("data-action=\"halt\""), "an open market offers Halt: {btc}");
    assert!(row(&dom, "data-market=\"ETH-USDT\"").contains("data-status=\"open\""));
    // Actors: the market and both users, each with its version.
    for stream in ["market:BTC-USDT", &format!("user:{ALICE}"), &format!("user:{BOB}")] {
        let actor = row(&dom, &format!("data-stream=\"{stream}\""));
        let version = actor.split("data-field=\"version\">").nth(1).unwrap().split('<').next().unwrap();
        assert!(version.parse::<u64>().unwrap() > 0, "{stream} has a version: {actor}");
    }
    assert!(dom.contains("appends "), "the actor counters are shown");
    // Settlement and alerts: without a chain, said plainly.
    assert!(dom.contains("data-chain=\"none\""), "the settlement panel says there is no chain");
    assert!(dom.contains("data-alerts=\"none\""), "no alerts");
}

#[test]
fn given_a_wrong_token_when_the_console_opens_then_it_shows_the_error_state_and_asks_again() {
    let hob = shared();
    let dom = dump_dom(hob.port, "", "not-the-operator-token", 2_000);

    assert!(body_tag(&dom).contains("data-state=\"error\""), "{}", body_tag(&dom));
    assert!(dom.contains("data-state=\"error\">token refused<"), "the status says why");
    assert!(dom.contains("401 unauthorized"), "the error names the refusal:\n{dom}");
    assert!(dom.contains("id=\"login\" class=\"login\">"), "the token form is shown again");
    assert!(!dom.contains("data-market=\"BTC-USDT\""), "nothing is shown without the token");
}

#[test]
fn given_an_open_console_when_an_operator_halts_the_market_then_the_console_shows_it_halted() {
    let hob = spawn_hob(&[]);
    given_a_book_and_a_trade(&hob);
    let hob_port = hob.port;
    let reads = AtomicUsize::new(0);
    let halted = Arc::new(AtomicBool::new(false));
    let halted_by_proxy = halted.clone();
    // The page's second read of the market happens after the halt: its first saw it open.
    let port = proxy(hob.port, move |line| {
        if line.starts_with("GET /operator/markets/BTC-USDT ") && reads.fetch_add(1, Ordering::SeqCst) == 1 {
            let auth = format!("Bearer {TOKEN}");
            let answer = ok(hob_port, "POST", "/operator/markets/BTC-USDT/halt", &[("authorization", &auth)], None);
            halted_by_proxy.store(answer["status"] == "halted", Ordering::SeqCst);
        }
        Pass::Forward
    });

    let dom = dump_dom(port, "", TOKEN, 4_000);

    assert!(halted.load(Ordering::SeqCst), "the operator API halted the market while the page was open");
    let polls: u64 = body_tag(&dom).split("data-polls=\"").nth(1).unwrap().split('"').next().unwrap().parse().unwrap();
    assert!(polls >= 3, "the page kept polling: {polls}");
    let btc = row(&dom, "data-market=\"BTC-USDT\"");
    assert!(btc.contains("data-status=\"halted\""), "{btc}");
    assert!(btc.contains("data-action=\"resume\""), "a halted market offers Resume: {btc}");
    assert!(
        dom.contains("data-market=\"BTC-USDT\" data-to=\"halted\">") && dom.contains("BTC-USDT: open → halted"),
        "the change was seen live and logged:\n{dom}"
    );
    assert!(dom.contains("data-kind=\"halted\""), "the alerts panel names the halted market");
}

#[test]
fn given_an_open_console_when_the_server_goes_away_then_it_says_so_and_keeps_the_last_figures() {
    let hob = shared();
    let actor_reads = AtomicUsize::new(0);
    let gone = AtomicBool::new(false);
    // Everything from the page's second poll on finds no server.
    let port = proxy(hob.port, move |line| {
        if line.starts_with("GET /operator/actors") && actor_reads.fetch_add(1, Ordering::SeqCst) >= 1 {
            gone.store(true, Ordering::SeqCst);
        }
        match gone.load(Ordering::SeqCst) {
            true => Pass::Drop,
            false => Pass::Forward,
        }
    });

    let dom = dump_dom(port, "", TOKEN, 3_000);

    assert!(body_tag(&dom).contains("data-state=\"error\""), "{}", body_tag(&dom));
    assert!(dom.contains("data-state=\"error\">server unreachable<"), "the status says why:\n{dom}");
    assert!(dom.contains("from the last successful poll"), "the figures are marked stale");
    assert!(row(&dom, "data-market=\"BTC-USDT\"").contains("30000.00"), "the last figures stay");
}

#[test]
fn given_the_console_in_stable_mode_when_it_is_screenshot_then_it_matches_the_golden_image() {
    // The settlement panel filled in: the hob on anvil.
    let hob = on_anvil();
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("console.png");
    let url = format!("http://127.0.0.1:{}/console?stable#token={TOKEN}", hob.port);
    chromium(&url, 3_000, &[format!("--screenshot={}", shot.display()), format!("--window-size={WIDTH},{HEIGHT}")]);

    let image = decode(&shot);
    assert_eq!((image.width, image.height), (WIDTH, HEIGHT), "the window's size");
    let mut colours: Vec<[u8; 3]> = image.rgb.clone();
    colours.sort_unstable();
    colours.dedup();
    assert!(colours.len() > 50, "text and panels are drawn (anti-aliased): {} colours", colours.len());
    let background = image.rgb[image.rgb.len() - 1];
    let drawn = image.rgb.iter().filter(|p| **p != background).count() as f64 / image.rgb.len() as f64;
    assert!(drawn > 0.2, "the page is not blank: {:.1}% differs from the background", drawn * 100.0);

    let golden = golden_path();
    if std::env::var(UPDATE_GOLDEN).is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::copy(&shot, &golden).unwrap();
        return;
    }
    assert!(golden.is_file(), "{} is missing: run with HOB_UPDATE_GOLDEN=1 to write it", golden.display());
    let reference = decode(&golden);
    assert_eq!((reference.width, reference.height), (image.width, image.height), "the golden image's size");
    let differing = differing_blocks(&image, &reference);
    eprintln!("console screenshot: {:.3}% of its {BLOCK}px blocks differ from the golden one", differing * 100.0);
    if differing >= MAX_DIFFERING_BLOCKS {
        let kept = std::env::temp_dir().join("hob-console-actual.png");
        std::fs::copy(&shot, &kept).unwrap();
        panic!(
            "the console differs from {} in {:.2}% of its blocks (at most {:.2}%); this run's screenshot is {}; \
             if the change is intended, rerun with HOB_UPDATE_GOLDEN=1",
            golden.display(),
            differing * 100.0,
            MAX_DIFFERING_BLOCKS * 100.0,
            kept.display()
        );
    }
}

#[test]
fn given_hob_on_anvil_when_the_console_opens_then_the_settlement_pipeline_shows_the_operator_and_its_nonces() {
    let hob = on_anvil();
    let operator = ok(hob.port, "GET", "/api/v1/chain", &[], None)["operator"].as_str().unwrap().to_owned();

    let dom = dump_dom(hob.port, "", TOKEN, 3_000);

    assert!(body_tag(&dom).contains("data-state=\"live\""), "{}", body_tag(&dom));
    assert!(!dom.contains("data-chain=\"none\""), "a chain is configured");
    assert!(
        field(&dom, "operator").contains(&operator),
        "the settlement operator's wallet: {}",
        field(&dom, "operator")
    );
    assert!(field(&dom, "running").contains(">running<"), "{}", field(&dom, "running"));
    let btc = row(&dom, "data-market=\"BTC-USDT\"");
    assert!(btc.contains("data-field=\"best-bid\">29900.00<") && btc.contains("data-field=\"best-ask\">30100.00<"));
    assert_eq!(field(&dom, "queued-trades"), "0");
    assert_eq!(field(&dom, "in-flight"), "0");
    assert_eq!(field(&dom, "nonce-next"), "0");
    assert_eq!(field(&dom, "nonce-chain"), "0 / 0", "nothing sent: the node counts no nonce");
    assert_eq!(field(&dom, "nonce-stuck"), "none");
    assert_eq!(field(&dom, "settled"), "0 batches, 0 trades");
    assert_eq!(field(&dom, "contract"), "running (anvil)");
    assert_eq!(field(&dom, "unregistered"), "none");
    assert!(dom.contains("settlement alerts since start: 0"), "the alert counts");
}

#[test]
fn given_the_golden_screenshot_when_its_content_moves_down_by_a_line_then_the_comparison_fails() {
    let golden = decode(&golden_path());
    let line = 16 * golden.width as usize;
    // Everything below the header moves down 16 px, as a new line of content would push it.
    let header = 40 * golden.width as usize;
    let mut moved = Image { width: golden.width, height: golden.height, rgb: golden.rgb.clone() };
    moved.rgb[header + line..].copy_from_slice(&golden.rgb[header..golden.rgb.len() - line]);

    assert_eq!(differing_blocks(&golden, &golden), 0.0, "an image equals itself");
    assert!(
        differing_blocks(&moved, &golden) > MAX_DIFFERING_BLOCKS * 5.0,
        "a moved layout is far outside the tolerance: {:.2}%",
        differing_blocks(&moved, &golden) * 100.0
    );
}
