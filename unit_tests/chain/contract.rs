//! Unit tests of `src/chain/contract.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;
use alloy::primitives::U256;
use alloy::sol_types::SolInterface;

#[test]
fn errors_name_what_to_void() {
    let cases = [
        (
            HobExchangeErrors::BadSignature(HobExchange::BadSignature { order: U256::from(3) }),
            SettlementBlame::Order(3),
        ),
        (HobExchangeErrors::Overfill(HobExchange::Overfill { trade: U256::from(9) }), SettlementBlame::Trade(9)),
        (
            HobExchangeErrors::BadBatchIndex(HobExchange::BadBatchIndex { expected: 4, got: 3 }),
            SettlementBlame::BatchIndex { expected: 4, got: 3 },
        ),
        (HobExchangeErrors::IsPaused(HobExchange::IsPaused {}), SettlementBlame::Batch),
    ];
    for (error, expected) in cases {
        assert_eq!(blame(&error), expected, "{error:?}");
    }
}

#[test]
fn revert_data_decodes_to_the_named_error() {
    let error = HobExchangeErrors::PriceNotHonoured(HobExchange::PriceNotHonoured { trade: U256::from(2) });
    let data = error.abi_encode();
    assert_eq!(HobExchangeErrors::abi_decode(&data).unwrap(), error);
}

#[test]
fn the_artifacts_carry_deployable_bytecode() {
    assert!(HobExchange::BYTECODE.len() > 1_000);
    assert!(TestToken::BYTECODE.len() > 100);
}
