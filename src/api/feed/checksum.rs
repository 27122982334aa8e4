//! The L2 checksum: CRC32 (IEEE) of the top 10 levels, so a client that applies diffs can
//! prove its book equals the server's. The text hashed is the levels as sent, interleaved best
//! first: `bid0_price:bid0_qty:ask0_price:ask0_qty:bid1_price:...`, a side's entries simply
//! missing once it has no more levels.

use crate::api::wire::Level;

pub const CHECKSUM_LEVELS: usize = 10;

pub fn book_checksum(bids: &[Level], asks: &[Level]) -> u32 {
    let mut parts: Vec<&str> = Vec::with_capacity(4 * CHECKSUM_LEVELS);
    for i in 0..CHECKSUM_LEVELS {
        for side in [bids, asks] {
            if let Some([price, qty]) = side.get(i) {
                parts.push(price);
                parts.push(qty);
            }
        }
    }
    crc32fast::hash(parts.join(":").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(p: &str, q: &str) -> Level {
        [p.to_owned(), q.to_owned()]
    }

    #[test]
    fn the_checksum_covers_the_interleaved_top_levels() {
        let bids = vec![lv("100.00", "1.5"), lv("99.00", "2")];
        let asks = vec![lv("101.00", "0.5")];
        assert_eq!(book_checksum(&bids, &asks), crc32fast::hash(b"100.00:1.5:101.00:0.5:99.00:2"));
        // the CRC32 (IEEE) check value, so clients can test their implementation
        assert_eq!(crc32fast::hash(b"123456789"), 0xCBF4_3926);
        let deep: Vec<Level> = (0..20).map(|i| lv(&i.to_string(), "1")).collect();
        assert_eq!(book_checksum(&deep, &[]), book_checksum(&deep[..10], &[]));
        assert_eq!(book_checksum(&[], &[]), 0);
    }
}
