//! Unit tests of `src/settlement/config.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use std::io::Write;

const KEY: &str = "0x0202020202020202020202020202020202020202020202020202020202020202";

#[test]
fn the_defaults_validate_and_bad_options_are_named() {
    let config = SettlementConfig::new(OperatorKey::from_hex(KEY).unwrap(), Address::ZERO, 56);
    assert!(config.validate().is_ok());
    assert_eq!(config.receipt_timeout, Duration::from_secs(30));
    let mut bad = config.clone();
    bad.confirmations = 0;
    assert!(matches!(bad.validate(), Err(ConfigError::Invalid { option: "confirmations", .. })));
    let mut bad = config.clone();
    bad.batch.max_gas = 16_777_217;
    assert!(matches!(bad.validate(), Err(ConfigError::Invalid { option: "batch.max_gas", .. })));
    assert_eq!(config.max_in_flight, 4);
    for in_flight in [0, 17] {
        let mut bad = config.clone();
        bad.max_in_flight = in_flight;
        assert!(matches!(bad.validate(), Err(ConfigError::Invalid { option: "max_in_flight", .. })));
    }
}

#[test]
fn a_key_file_is_read_with_its_trailing_newline() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    writeln!(file, "{KEY}").unwrap();
    let key = key_from_file(file.path()).unwrap();
    assert_eq!(key.address(), OperatorKey::from_hex(KEY).unwrap().address());
    assert!(matches!(key_from_file(Path::new("/nonexistent/key")), Err(ConfigError::KeyFile { .. })));
}
