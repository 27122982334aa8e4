//! Unit tests of `src/config.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn price_steps_are_exact_decimals_or_refused() {
    assert_eq!(tick_size(10_000, 1, 8, 6).unwrap().to_string(), "0.01");
    assert_eq!(tick_size(100_000_000_000_000, 1, 18, 6).unwrap().to_string(), "0.01");
    assert_eq!(tick_size(1_000, 10, 0, 0).unwrap().to_string(), "0.01");
    assert_eq!(tick_size(1, 5, 2, 2).unwrap().to_string(), "5");
    assert!(tick_size(3, 1, 0, 0).unwrap_err().contains("not a finite decimal"));
}

#[test]
fn the_demo_configuration_is_valid() {
    let defs = Config::default().validate().unwrap();
    assert_eq!(defs.len(), 2);
    assert_eq!(defs[0].tick_size.to_string(), "0.01");
    assert_eq!(defs[0].lot_size.to_string(), "0.0001");
}

#[test]
fn layers_override_in_order_and_bad_values_name_the_option() {
    let mut config = Config::from_toml("[server]\nlisten = \"127.0.0.1:9000\"\nworkers = 3\n").unwrap();
    assert_eq!(config.server.workers, 3);
    assert_eq!(config.markets.len(), 2, "the demo markets stay when the file gives none");
    config.apply_env("HOB_WORKERS", "4").unwrap();
    config.apply_flags(&ServeFlags { workers: Some(5), ..ServeFlags::default() });
    assert_eq!(config.server.workers, 5);
    let e = config.apply_env("HOB_WORKRES", "4").unwrap_err();
    assert!(e.to_string().contains("HOB_WORKRES"), "{e}");
    let e = config.apply_env("HOB_WORKERS", "many").unwrap_err();
    assert!(e.to_string().contains("HOB_WORKERS"), "{e}");
    let e = Config::from_toml("[server]\nlisten = 5\n").unwrap_err();
    assert!(e.contains("listen"), "{e}");
    let e = Config::from_toml("[sever]\n").unwrap_err();
    assert!(e.contains("sever"), "{e}");
}

#[test]
fn json_logs_are_chosen_by_file_or_environment_and_a_bad_level_names_the_option() {
    let mut config = Config::from_toml("[log]\nformat = \"json\"\nlevel = \"hob=debug\"\n").unwrap();
    assert_eq!(config.log.format, LogFormat::Json);
    config.apply_env("HOB_LOG_FORMAT", "text").unwrap();
    assert_eq!(config.log.format, LogFormat::Text);
    assert!(config.apply_env("HOB_LOG_FORMAT", "xml").unwrap_err().to_string().contains("HOB_LOG_FORMAT"));
    config.apply_env("HOB_LOG_LEVEL", "hob=loud").unwrap();
    let e = config.validate().unwrap_err();
    assert!(e.to_string().contains("log.level"), "{e}");
}

#[test]
fn given_a_chain_section_when_loaded_then_env_and_flags_override_it_in_order() {
    let mut config = Config::from_toml("[chain]\nmode = \"anvil\"\nblock_time_ms = 2000\n").unwrap();
    assert_eq!((config.chain.mode, config.chain.block_time_ms), (ChainMode::Anvil, 2_000));
    config.apply_env("HOB_CHAIN_BLOCK_TIME_MS", "500").unwrap();
    config.apply_flags(&ServeFlags { chain_block_time_ms: Some(0), ..ServeFlags::default() });
    assert_eq!(config.chain.block_time_ms, 0);
    config.validate().unwrap();
    let e = config.apply_env("HOB_CHAIN_MODE", "geth").unwrap_err();
    assert!(e.to_string().contains("HOB_CHAIN_MODE"), "{e}");
}

#[test]
fn given_rpc_mode_when_an_option_is_missing_then_start_is_refused_naming_it() {
    let mut config = Config::default();
    config.apply_env("HOB_CHAIN_MODE", "rpc").unwrap();
    config.apply_env("HOB_CHAIN_RPC_URL", "http://127.0.0.1:8545").unwrap();
    let e = config.validate().unwrap_err();
    assert!(e.to_string().contains("auth.exchange_address"), "{e}");
    config.auth.exchange_address = "0x5FbDB2315678afecb367f032d93F642f64180aa3".to_owned();
    let e = config.validate().unwrap_err();
    assert!(e.to_string().contains("chain.tokens.BTC"), "{e}");
    for (i, symbol) in ["BTC", "ETH", "USDT"].into_iter().enumerate() {
        config.chain.tokens.insert(symbol.to_owned(), format!("0x{:040x}", i + 1));
    }
    config.validate().unwrap();
    config.server.dev_faucet = true;
    let e = config.validate().unwrap_err();
    assert!(e.to_string().contains("server.dev_faucet"), "{e}");
}

#[test]
fn key_variables_are_accepted_but_never_copied_into_the_configuration() {
    let mut config = Config::default();
    let key = "0x0202020202020202020202020202020202020202020202020202020202020202";
    config.apply_env("HOB_OPERATOR_KEY", key).unwrap();
    config.apply_env("HOB_ADMIN_KEY_FILE", "/run/secrets/admin").unwrap();
    assert!(!format!("{config:?}").contains("0202020202"));
    assert_eq!(config, Config::default());
}
