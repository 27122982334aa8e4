//! What each generated order is: both sides around a mid price, some resting a few ticks away
//! from it and some crossing it as IOC, so orders trade while the book stays bounded (an IOC
//! never rests, and IOCs outnumber resting orders, so they eat what rests).

use crate::loadgen::schedule::Rng;

/// The shape of the generated flow, on the market's integer grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderMix {
    pub mid_ticks: u64,
    /// Resting orders go 1 ..= this many ticks away from the mid, on their own side.
    pub rest_ticks: u64,
    /// IOC orders reach this many ticks past the mid, into the other side.
    pub cross_ticks: u64,
    /// Percent of the orders that are IOC.
    pub ioc_percent: u64,
    pub min_lots: u64,
    pub max_lots: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GenSide {
    Buy,
    Sell,
}

/// One generated order's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenOrder {
    pub side: GenSide,
    pub price_ticks: u64,
    pub qty_lots: u64,
    pub ioc: bool,
}

impl OrderMix {
    /// The lowest price any order of this mix may carry (what the minimum size is sized for).
    pub fn lowest_price_ticks(&self) -> u64 {
        self.mid_ticks.saturating_sub(self.rest_ticks.max(self.cross_ticks)).max(1)
    }

    pub fn pick(&self, rng: &mut Rng) -> GenOrder {
        let side = if rng.next_u64() & 1 == 0 { GenSide::Buy } else { GenSide::Sell };
        let ioc = rng.between(1, 100) <= self.ioc_percent;
        let away = rng.between(1, self.rest_ticks.max(1));
        let price_ticks = match (side, ioc) {
            (GenSide::Buy, false) => self.mid_ticks.saturating_sub(away),
            (GenSide::Sell, false) => self.mid_ticks + away,
            (GenSide::Buy, true) => self.mid_ticks + self.cross_ticks,
            (GenSide::Sell, true) => self.mid_ticks.saturating_sub(self.cross_ticks),
        };
        GenOrder { side, price_ticks: price_ticks.max(1), qty_lots: rng.between(self.min_lots, self.max_lots), ioc }
    }
}

#[cfg(test)]
mod tests {
    // Test code unwraps because a failure should fail the test.
    use super::*;

    const MIX: OrderMix =
        OrderMix { mid_ticks: 10_000, rest_ticks: 3, cross_ticks: 5, ioc_percent: 60, min_lots: 100, max_lots: 300 };

    #[test]
    fn resting_orders_stay_on_their_side_and_iocs_cross_the_mid() {
        let mut rng = Rng::new(3);
        let orders: Vec<GenOrder> = (0..10_000).map(|_| MIX.pick(&mut rng)).collect();
        for o in &orders {
            assert!((100..=300).contains(&o.qty_lots), "{o:?}");
            match (o.side, o.ioc) {
                (GenSide::Buy, false) => assert!((9_997..10_000).contains(&o.price_ticks), "{o:?}"),
                (GenSide::Sell, false) => assert!((10_001..=10_003).contains(&o.price_ticks), "{o:?}"),
                (GenSide::Buy, true) => assert_eq!(o.price_ticks, 10_005),
                (GenSide::Sell, true) => assert_eq!(o.price_ticks, 9_995),
            }
        }
        let iocs = orders.iter().filter(|o| o.ioc).count();
        assert!((5_500..6_500).contains(&iocs), "{iocs} IOCs of 10,000 at 60%");
        assert_eq!(MIX.lowest_price_ticks(), 9_995);
    }
}
