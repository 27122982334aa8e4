//! Unit tests of `src/chain/config.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

const EXCHANGE: Address = Address::repeat_byte(0x11);

fn rpc() -> ChainConfig {
    let mut tokens = BTreeMap::new();
    tokens.insert("BTC".to_owned(), format!("{}", Address::repeat_byte(0x22)));
    tokens.insert("USDT".to_owned(), format!("{}", Address::repeat_byte(0x33)));
    ChainConfig { mode: ChainMode::Rpc, rpc_url: "http://127.0.0.1:8545".to_owned(), tokens, ..ChainConfig::default() }
}

#[test]
fn the_default_is_no_chain_and_valid() {
    let config = ChainConfig::default();
    assert_eq!(config.mode, ChainMode::None);
    assert_eq!(config.block_time_ms, 1_000);
    assert!(config.validate(["BTC"], Address::ZERO).is_ok());
}

#[test]
fn given_rpc_mode_when_a_traded_asset_has_no_token_then_the_option_is_named() {
    let err = rpc().validate(["BTC", "USDT", "ETH"], EXCHANGE).unwrap_err();
    assert_eq!(err.option, "chain.tokens.ETH");
    assert!(rpc().validate(["BTC", "USDT"], EXCHANGE).is_ok());
}

#[test]
fn given_rpc_mode_when_the_url_or_exchange_or_a_token_is_bad_then_it_is_refused() {
    let mut config = rpc();
    config.rpc_url = "ws://node".to_owned();
    assert_eq!(config.validate(["BTC"], EXCHANGE).unwrap_err().option, "chain.rpc_url");
    config.rpc_url = String::new();
    assert_eq!(config.validate(["BTC"], EXCHANGE).unwrap_err().option, "chain.rpc_url");
    assert_eq!(rpc().validate(["BTC"], Address::ZERO).unwrap_err().option, "auth.exchange_address");
    let mut config = rpc();
    config.tokens.insert("BTC".to_owned(), "0x1234".to_owned());
    assert_eq!(config.validate(["BTC"], EXCHANGE).unwrap_err().option, "chain.tokens.BTC");
}

#[test]
fn given_anvil_mode_when_rpc_options_are_given_then_they_are_refused() {
    let mut config = ChainConfig { mode: ChainMode::Anvil, ..ChainConfig::default() };
    assert!(config.validate(["BTC"], Address::ZERO).is_ok());
    config.block_time_ms = 0;
    assert!(config.validate(["BTC"], Address::ZERO).is_ok(), "0 mines a block per transaction");
    config.block_time_ms = 50;
    assert_eq!(config.validate(["BTC"], Address::ZERO).unwrap_err().option, "chain.block_time_ms");
    let mut config = ChainConfig { mode: ChainMode::Anvil, ..rpc() };
    config.tokens.clear();
    assert_eq!(config.validate(["BTC"], Address::ZERO).unwrap_err().option, "chain.mode");
}

#[test]
fn settlement_options_are_bounded() {
    let config = ChainConfig { confirmations: 0, ..ChainConfig::default() };
    assert_eq!(config.validate([], Address::ZERO).unwrap_err().option, "chain.confirmations");
    let config = ChainConfig { batch_max_trades: 0, ..ChainConfig::default() };
    assert_eq!(config.validate([], Address::ZERO).unwrap_err().option, "chain.batch_max_trades");
    let config = ChainConfig { alert_webhook: Some("not a url".to_owned()), ..ChainConfig::default() };
    assert_eq!(config.validate([], Address::ZERO).unwrap_err().option, "chain.alert_webhook");
}

#[test]
fn modes_parse_from_their_names_only() {
    assert_eq!(ChainMode::parse("anvil"), Ok(ChainMode::Anvil));
    assert_eq!(ChainMode::parse(" rpc "), Ok(ChainMode::Rpc));
    assert!(ChainMode::parse("geth").is_err());
    let config: ChainConfig = toml::from_str("mode = \"anvil\"\nblock_time_ms = 500\n").unwrap();
    assert_eq!((config.mode, config.block_time_ms), (ChainMode::Anvil, 500));
}
