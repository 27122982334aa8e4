//! Unit tests of `src/client/dev_accounts.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use super::*;

#[test]
fn given_the_dev_accounts_when_derived_then_their_addresses_are_those_anvil_prints() {
    let address = |n| dev_account(n).unwrap().address().to_checksum(None);
    assert_eq!(address(0), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    assert_eq!(address(1), "0x70997970C51812dc3A010C7d01b50e0d17dc79C8");
    assert_eq!(address(4), "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65");
    assert_eq!(address(5), "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc");
    assert_eq!(address(9), "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720");
    assert!(matches!(dev_account(10), Err(ClientError::Invalid(_))));
}

#[test]
fn given_key_text_when_parsed_then_hex_with_or_without_0x_is_a_key_and_anything_else_is_refused() {
    let with = parse_key("0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a").unwrap();
    let without = parse_key("47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a").unwrap();
    assert_eq!(with.address(), without.address());
    assert!(parse_key("0x1234").is_err());
    assert!(parse_key("not hex").is_err());
}
