//! `hob serve`'s configuration: the documented example is the defaults, the layers override in
//! order, and a bad configuration is one readable error naming the option, at start.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hob::config::{Config, ConfigError, ServeFlags};

fn load(toml: &str, env: &[(&str, &str)], flags: &ServeFlags) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hob.toml");
    std::fs::write(&path, toml).unwrap();
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    Config::load(Some(&path), env, flags)
}

#[test]
fn the_example_file_documents_exactly_the_defaults() {
    let example = Config::from_file(Path::new("examples/hob.toml")).unwrap();
    assert_eq!(example, Config::default());
    assert_eq!(example.validate().unwrap().len(), 2, "two demo markets");
}

#[test]
fn file_then_environment_then_flags() {
    let toml = "[server]\nlisten = \"127.0.0.1:9000\"\nworkers = 3\n[limits]\nmax_batch = 5\n";
    let env = [("HOB_WORKERS", "4"), ("HOB_OPERATOR_TOKEN", "a-token-of-sixteen+"), ("PATH", "/bin")];
    let flags = ServeFlags { workers: Some(6), dev_faucet: true, ..ServeFlags::default() };
    let config = load(toml, &env, &flags).unwrap();
    assert_eq!(config.server.listen.port(), 9000, "from the file");
    assert_eq!(config.limits.max_batch, 5, "from the file");
    assert_eq!(config.operator.token.as_deref(), Some("a-token-of-sixteen+"), "from the environment");
    assert_eq!(config.server.workers, 6, "the flag wins");
    assert!(config.server.dev_faucet && !config.server.dev_insecure_user_header);
    assert_eq!(config.markets.len(), 2, "the demo markets stay when the file gives none");
}

#[test]
fn a_bad_configuration_is_one_readable_error_naming_the_option() {
    let market = |extra: &str| {
        format!(
            "[[assets]]\nsymbol = \"BTC\"\ndecimals = 8\n[[assets]]\nsymbol = \"USDT\"\ndecimals = 6\n\
             [[markets]]\nid = \"BTC-USDT\"\nbase = \"BTC\"\nquote = \"USDT\"\nbase_lot = 10000\nquote_tick = 1\n\
             chain_market_id = 1\n{extra}"
        )
    };
    // (file, environment, what the error must name)
    type Case = (String, Vec<(&'static str, &'static str)>, &'static str);
    let cases: Vec<Case> = vec![
        ("[server]\nlisten = \"nowhere\"\n".into(), vec![], "listen"),
        ("[server]\nlistn = \"127.0.0.1:1\"\n".into(), vec![], "unknown field `listn`"),
        ("[limits]\nmax_open_orders = 5000\n".into(), vec![], "limits.max_open_orders"),
        ("[limits]\nip_burst = 0\n".into(), vec![], "limits.ip_burst"),
        ("[operator]\ntoken = \"short\"\n".into(), vec![], "operator.token"),
        ("[store]\nevents = \"postgres://db\"\n".into(), vec![], "store.events"),
        ("[auth]\nexchange_address = \"0x12\"\n".into(), vec![], "auth.exchange_address"),
        ("[auth]\nsession_ttl_ms = 0\n".into(), vec![], "auth.session_ttl_ms"),
        (String::new(), vec![("HOB_CHAIN_ID", "mainnet")], "HOB_CHAIN_ID"),
        ("[store]\nqueue = \"kafka\"\n".into(), vec![], "store.queue"),
        ("[store]\nevents = \"mongodb://db1,db2/?replicaSet=rs\"\n".into(), vec![], "store.events"),
        ("[websocket]\nping_interval_ms = 5000\nidle_timeout_ms = 5000\n".into(), vec![], "websocket.idle_timeout_ms"),
        (market("").replace("quote = \"USDT\"", "quote = \"EUR\""), vec![], "markets[0].quote"),
        (market("").replace("base_lot = 10000", "base_lot = 3"), vec![], "markets[0].quote_tick"),
        (market("min_notional = \"0.0000001\"\n"), vec![], "markets[0].min_notional"),
        (market("[[markets]]\nid = \"BTC-USDT\"\nbase = \"BTC\"\nquote = \"USDT\"\nbase_lot = 1\nquote_tick = 1\nchain_market_id = 2\n"), vec![], "listed twice"),
        (market("maker_fee_bps = 20000\n"), vec![], "markets[0]"),
        (String::new(), vec![("HOB_LISTEN", "localhost")], "HOB_LISTEN"),
        (String::new(), vec![("HOB_LISTN", "127.0.0.1:1")], "HOB_LISTN"),
    ];
    for (toml, env, needle) in cases {
        let error = load(&toml, &env, &ServeFlags::default()).expect_err(needle).to_string();
        assert!(error.contains(needle), "{needle:?} not in {error:?}");
    }
}

#[test]
fn hob_serve_refuses_a_bad_configuration_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[limits]\nmax_batch = 0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hob"))
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("limits.max_batch") && stderr.contains("1 to 1000"), "{stderr}");
    assert!(!dir.path().join("data").exists(), "nothing was opened");
}

#[actix_rt::test]
async fn hob_serve_starts_from_flags_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite:{}", dir.path().join("events.db").display());
    let views = format!("sqlite:{}", dir.path().join("views.db").display());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hob"))
        .args(["serve", "--listen", "127.0.0.1:0", "--store", &store, "--views", &views, "--workers", "1"])
        .env("HOB_FEED_POLL_MS", "20")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kept open until the end: the server prints more than the line read here.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let addr = first.trim().rsplit("http://").next().unwrap().to_owned();
    let client = awc::Client::builder().timeout(Duration::from_secs(10)).finish();
    let health = client.get(format!("http://{addr}/readyz")).send().await;
    let markets = client.get(format!("http://{addr}/api/v1/markets")).send().await;
    let private = client.get(format!("http://{addr}/api/v1/balances")).send().await;
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
    assert_eq!(health.unwrap().status(), 200, "{first}");
    assert_eq!(markets.unwrap().status(), 200);
    assert_eq!(private.unwrap().status(), 401, "by default private routes need a signed-in session");
    assert!(dir.path().join("events.db").exists());
}
