//! Unit tests of `src/match_tool/grid.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn on_grid_values_convert_both_ways() {
    let g = Grid::new("0.01", "0.001").unwrap();
    assert_eq!(g.price("price", "100.50"), Ok(PriceTicks(10_050)));
    assert_eq!(g.price("price", "100.5"), Ok(PriceTicks(10_050)));
    assert_eq!(g.price_str(PriceTicks(10_050)), "100.50");
    assert_eq!(g.qty("qty", "2"), Ok(QtyLots(2_000)));
    assert_eq!(g.qty_str(QtyLots(2_000)), "2.000");
}

#[test]
fn off_grid_and_nonsense_values_are_refused() {
    let g = Grid::new("0.5", "1").unwrap();
    assert!(matches!(g.price("price", "100.25"), Err(GridError::OffGrid { .. })));
    assert!(matches!(g.price("price", "0"), Err(GridError::NotPositive { .. })));
    assert!(matches!(g.price("price", "-1"), Err(GridError::NotPositive { .. })));
    assert!(matches!(g.price("price", "abc"), Err(GridError::NotDecimal { .. })));
    assert!(matches!(g.qty("qty", "1e400"), Err(GridError::NotDecimal { .. })));
    assert!(matches!(g.qty("qty", "99999999999999999999999"), Err(GridError::TooLarge { .. })));
    assert!(Grid::new("0", "1").is_err());
}
