//! `examples/trader.rs` against the real `hob serve` on its own anvil, as the README's quick
//! start runs it: the compiled example deposits on-chain, trades two wallets against each
//! other over the WebSocket with signed orders, and exits 0 once the trade settled on-chain.
//! The test reads the example's output and the exchange's vault balances on the chain.
//!
//! The example binary is built by `cargo test` (examples are built with the tests) or by
//! `cargo build --example trader`; `cargo test --test example_trader` alone does not build it.

// Test code unwraps: a failure should fail the test.

#[path = "support/hob_serve.rs"]
mod hob_serve;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use alloy::primitives::Address;
use hob::client::dev_accounts::dev_account;
use hob::client::{Deployment, Rest};

use hob_serve::HobServe;

/// One hob per test binary, as `make run` starts it but with a block every 200 ms and
/// settlement batches that close after 100 ms; its watchdog stops it when the tests end.
fn shared() -> &'static HobServe {
    static HOB: OnceLock<HobServe> = OnceLock::new();
    HOB.get_or_init(|| {
        HobServe::spawn_on_anvil(
            &["--anvil-block-time-ms", "200"],
            &[("HOB_CHAIN_BATCH_WINDOW_MS", "100".into()), ("HOB_OPERATOR_TOKEN", "example-trader-test-token".into())],
        )
    })
}

/// target/debug/examples/trader, beside this test's own binary in target/debug/deps.
fn example_binary() -> PathBuf {
    let me = std::env::current_exe().unwrap();
    let profile_dir = me.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join(format!("trader{}", std::env::consts::EXE_SUFFIX));
    assert!(path.is_file(), "{} is missing: build it with `cargo build --examples` (`make test` does)", path.display());
    path
}

/// Runs the example against `hob`; its exit status and stdout, stderr appended.
fn run_trader(hob: &HobServe, args: &[&str]) -> (Option<i32>, String) {
    let output =
        Command::new(example_binary()).args(["--api", &hob.base]).args(args).stdin(Stdio::null()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code(), text)
}

fn lines_with<'a>(output: &'a str, role: &str, what: &str) -> Vec<&'a str> {
    output.lines().filter(|l| l.contains(&format!("[{role}")) && l.contains(what)).collect()
}

async fn vault(chain: &Deployment, user: Address, asset: &str) -> u128 {
    chain.vault_balance(user, asset).await.unwrap()
}

#[actix_rt::test]
async fn given_make_runs_hob_on_anvil_when_the_trader_example_runs_then_it_deposits_trades_and_exits_once_settled_on_chain(
) {
    // Given hob on a local anvil.
    let hob = shared();
    let chain = Deployment::from_info(&Rest::new(&hob.base).chain().await.unwrap()).unwrap();
    // The example's default wallets: dev accounts 4 (seller) and 5 (buyer), untouched so far.
    let (seller, buyer) = (dev_account(4).unwrap().address(), dev_account(5).unwrap().address());
    assert_eq!(vault(&chain, seller, "BTC").await, 0);
    assert_eq!(vault(&chain, buyer, "USDT").await, 0);

    // When the trader sells 0.01 BTC at 100 USDT from one wallet to the other.
    let (code, output) = run_trader(hob, &["--price", "100", "--qty", "0.01", "--timeout-secs", "90"]);

    // Then it exits 0, having seen each step happen.
    assert_eq!(code, Some(0), "the trader failed:\n{output}\nhob's log:\n{}", hob.stderr());
    for role in ["seller", "buyer"] {
        assert_eq!(lines_with(&output, role, "deposit credited by hob").len(), 1, "{role}:\n{output}");
        assert_eq!(lines_with(&output, role, "FILL trade").len(), 1, "{role}:\n{output}");
        assert_eq!(lines_with(&output, role, "settlement confirmed").len(), 1, "{role}:\n{output}");
        assert_eq!(lines_with(&output, role, "settled on-chain: batch #").len(), 1, "{role}:\n{output}");
    }
    assert!(lines_with(&output, "seller", "FILL trade")[0].contains("sold 0.01"), "{output}");
    assert!(lines_with(&output, "buyer", "FILL trade")[0].contains("bought 0.01"), "{output}");
    assert!(output.contains("done: 0.01 BTC traded at 100 and settled on-chain"), "{output}");

    // And the vault moved on-chain: 0.01 BTC from the seller to the buyer, who paid 1 USDT
    // plus the taker fee (20 bps) out of the 2 USDT it deposited.
    let btc_traded = 1_000_000; // 0.01 BTC in satoshis
    assert_eq!(vault(&chain, seller, "BTC").await, 0);
    assert_eq!(vault(&chain, buyer, "BTC").await, btc_traded);
    assert_eq!(vault(&chain, buyer, "USDT").await, 2_000_000 - 1_000_000 - 2_000);
    assert!(vault(&chain, seller, "USDT").await > 0, "the seller was paid on-chain");
}

#[actix_rt::test]
async fn given_no_hob_when_the_trader_example_runs_then_it_exits_1_saying_what_it_could_not_reach() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = Command::new(example_binary())
        .args(["--api", &format!("http://127.0.0.1:{port}"), "--timeout-secs", "5"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FAILED") && stderr.contains("/api/v1/chain (is hob running?)"), "{stderr}");
}

#[actix_rt::test]
async fn given_a_trade_that_cannot_settle_in_time_when_the_trader_example_runs_then_it_exits_1_saying_it_timed_out() {
    // Given hob on anvil, and no time at all to settle in (dev accounts 6 and 7, so the
    // trading test's wallets are left alone, on the other market: an order this run rests
    // before it gives up must not cross the trading test's orders, which run at the same time).
    let hob = shared();
    // When the trader runs.
    let (code, output) = run_trader(hob, &["--account", "6", "--market", "ETH-USDT", "--timeout-secs", "0"]);
    // Then it gives up, saying so.
    assert_eq!(code, Some(1), "{output}");
    assert!(output.contains("trader: FAILED") && output.contains("timed out"), "{output}");
    assert!(!output.contains("done:"), "{output}");
}
