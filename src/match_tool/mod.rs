//! `hob match`: the matching core as a filter. Orders as JSON lines in, events as JSON lines
//! out, then the final book; no server, no balances, no clock (time comes from optional `ts`
//! fields). Users replay order files with it for backtests and dispute checks, so its format
//! is a public interface (README.md, "hob match").

pub mod grid;
pub mod input;

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::ops::ControlFlow;

use serde_json::{json, Map, Value};

use crate::domain::{
    Amount, AssetId, Bps, ClientOrderId, Market, MarketCommand, MarketEvent, MarketId, MarketSpec, NewOrder, OrderId,
    OrderType, QtyLots, RejectReason, Side, SpecError, StpMode, TimeInForce, TimestampMs, UserId,
};
use grid::{Grid, GridError};
use input::{Line, Malformed, PlaceLine, SideField, StpField, TifField, TypeField, MAX_LINE_BYTES};

/// The market the tool simulates: the grid, and optionally fees and size bounds in lots.
#[derive(Clone, Debug)]
pub struct MatchConfig {
    pub tick: String,
    pub lot: String,
    pub maker_fee_bps: u16,
    pub taker_fee_bps: u16,
    pub min_qty_lots: u64,
    pub max_qty_lots: u64,
}

impl MatchConfig {
    pub fn new(tick: &str, lot: &str) -> MatchConfig {
        MatchConfig {
            tick: tick.into(),
            lot: lot.into(),
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            min_qty_lots: 1,
            max_qty_lots: u64::MAX,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MatchToolError {
    #[error("grid: {0}")]
    Grid(#[from] GridError),
    #[error("market: {0}")]
    Spec(#[from] SpecError),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Reads every line of `input`, writes the events to `output`, then the final book.
pub fn run(config: &MatchConfig, mut input: impl BufRead, mut output: impl Write) -> Result<(), MatchToolError> {
    let mut session = Session::new(config)?;
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        buf.clear();
        let n = io::Read::take(&mut input, MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let events = if buf.len() > MAX_LINE_BYTES && !buf.ends_with(b"\n") {
            skip_rest_of_line(&mut input)?;
            vec![malformed(line_no, None, format!("line longer than {MAX_LINE_BYTES} bytes"))]
        } else {
            match std::str::from_utf8(&buf) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => session.line(line_no, text.trim()),
                Err(_) => vec![malformed(line_no, None, "line is not UTF-8".into())],
            }
        };
        for event in events {
            serde_json::to_writer(&mut output, &event).map_err(io::Error::from)?;
            output.write_all(b"\n")?;
        }
    }
    serde_json::to_writer(&mut output, &session.book()).map_err(io::Error::from)?;
    output.write_all(b"\n")?;
    output.flush()?;
    Ok(())
}

fn skip_rest_of_line(input: &mut impl BufRead) -> io::Result<()> {
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            return Ok(());
        }
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                input.consume(i + 1);
                return Ok(());
            }
            None => {
                let len = chunk.len();
                input.consume(len);
            }
        }
    }
}

fn malformed(line: u64, id: Option<String>, reason: String) -> Value {
    let mut event = json!({"event": "rejected", "line": line, "reason": "malformed", "detail": reason});
    if let Some(id) = id {
        event["id"] = Value::String(id);
    }
    event
}

/// The tool's state: the market, and the names users gave their orders and themselves.
struct Session {
    grid: Grid,
    market: Market,
    order_ids: HashMap<String, OrderId>,
    order_names: Vec<String>,
    users: HashMap<String, UserId>,
    now: TimestampMs,
    events: Vec<MarketEvent>,
    /// The name the current line used for an order that was never placed.
    unknown_name: String,
    /// Client order ids given on place lines, echoed on `accepted`.
    client_ids: HashMap<OrderId, String>,
}

/// An order id no name ever maps to, for commands about names never placed.
const NO_ORDER: OrderId = OrderId(0);

impl Session {
    fn new(config: &MatchConfig) -> Result<Session, MatchToolError> {
        let grid = Grid::new(&config.tick, &config.lot)?;
        // The tool has no assets: amounts are counted in (tick x lot) units.
        let spec = MarketSpec {
            id: MarketId::new("MATCH").map_err(|_| SpecError::SameAsset)?,
            base: AssetId::new("BASE").map_err(|_| SpecError::SameAsset)?,
            quote: AssetId::new("QUOTE").map_err(|_| SpecError::SameAsset)?,
            base_lot: Amount(1),
            quote_tick: Amount(1),
            min_qty: QtyLots(config.min_qty_lots),
            max_qty: QtyLots(config.max_qty_lots),
            min_notional: Amount(0),
            maker_fee: Bps(config.maker_fee_bps),
            taker_fee: Bps(config.taker_fee_bps),
        };
        spec.validate()?;
        Ok(Session {
            grid,
            market: Market::new(spec),
            order_ids: HashMap::new(),
            order_names: vec![String::new()], // index 0 is NO_ORDER
            users: HashMap::new(),
            now: TimestampMs(0),
            events: Vec::new(),
            unknown_name: String::new(),
            client_ids: HashMap::new(),
        })
    }

    fn line(&mut self, line_no: u64, text: &str) -> Vec<Value> {
        let command = match input::parse(text) {
            Ok(line) => self.command(line),
            Err(Malformed { id, reason }) => return vec![malformed(line_no, id, reason)],
        };
        let command = match command {
            Ok(command) => command,
            Err(rejection) => return vec![rejection.into_event(line_no)],
        };
        self.events.clear();
        self.market.execute(command, self.now, &mut self.events);
        self.events.iter().filter_map(|e| self.render(line_no, e)).collect()
    }

    fn advance(&mut self, ts: Option<u64>) {
        // Time never runs backwards: a late `ts` is read as "now".
        if let Some(ts) = ts {
            self.now = self.now.max(TimestampMs(ts));
        }
    }

    fn order_id(&mut self, name: &str) -> OrderId {
        let id = self.order_ids.get(name).copied().unwrap_or(NO_ORDER);
        if id == NO_ORDER {
            self.unknown_name = name.to_owned();
        }
        id
    }

    fn user_id(&mut self, name: &str) -> UserId {
        let next = self.users.len() as u64 + 1;
        *self.users.entry(name.to_owned()).or_insert_with(|| {
            let mut bytes = [0u8; 20];
            bytes[12..].copy_from_slice(&next.to_be_bytes());
            UserId(bytes)
        })
    }

    fn command(&mut self, line: Line) -> Result<MarketCommand, LineRejection> {
        match line {
            Line::Place(place) => self.place(place),
            Line::Cancel(cancel) => {
                self.advance(cancel.ts);
                let order = self.order_id(&cancel.id);
                Ok(MarketCommand::Cancel { order, user: self.user_id(&cancel.user) })
            }
            Line::Amend(amend) => {
                self.advance(amend.ts);
                let reject = |reason, e: GridError| LineRejection::new(&amend.id, reason, e.to_string());
                let price =
                    self.grid.price("price", &amend.price).map_err(|e| reject(RejectReason::OffGridPrice, e))?;
                let qty = self.grid.qty("qty", &amend.qty).map_err(|e| reject(RejectReason::OffGridSize, e))?;
                let order = self.order_id(&amend.id);
                Ok(MarketCommand::Amend { order, user: self.user_id(&amend.user), price, qty })
            }
            Line::Halt(t) => {
                self.advance(t.ts);
                Ok(MarketCommand::Halt)
            }
            Line::Resume(t) => {
                self.advance(t.ts);
                Ok(MarketCommand::Resume)
            }
        }
    }

    fn place(&mut self, p: PlaceLine) -> Result<MarketCommand, LineRejection> {
        self.advance(p.ts);
        let malformed = |detail: &str| LineRejection::malformed(&p.id, detail);
        if self.order_ids.contains_key(&p.id) {
            return Err(LineRejection::new(
                &p.id,
                RejectReason::DuplicateOrderId,
                "order ids are unique in a file".into(),
            ));
        }
        if let Some(client_id) = &p.client_order_id {
            ClientOrderId::new(client_id).map_err(|e| malformed(&e.to_string()))?;
        }
        let price_of = |field, value: &str| {
            self.grid
                .price(field, value)
                .map_err(|e| LineRejection::new(&p.id, RejectReason::OffGridPrice, e.to_string()))
        };
        let order_type = match (p.order_type, &p.price, &p.worst_price) {
            (TypeField::Limit, Some(price), None) => OrderType::Limit { price: price_of("price", price)? },
            (TypeField::Limit, None, _) => return Err(malformed("a limit order needs \"price\"")),
            (TypeField::Limit, Some(_), Some(_)) => return Err(malformed("\"worst_price\" is for market orders")),
            (TypeField::Market, None, worst) => {
                OrderType::Market { worst_price: worst.as_deref().map(|w| price_of("worst_price", w)).transpose()? }
            }
            (TypeField::Market, Some(_), _) => {
                return Err(malformed("a market order has no \"price\"; bound it with \"worst_price\""))
            }
        };
        let qty = self
            .grid
            .qty("qty", &p.qty)
            .map_err(|e| LineRejection::new(&p.id, RejectReason::OffGridSize, e.to_string()))?;
        let tif = match (p.order_type, p.tif, p.expires_at) {
            (_, Some(TifField::Gtd), Some(at)) => TimeInForce::Gtd(TimestampMs(at)),
            (_, Some(TifField::Gtd), None) => return Err(malformed("a gtd order needs \"expires_at\"")),
            (_, _, Some(_)) => return Err(malformed("\"expires_at\" is only for gtd orders")),
            (TypeField::Limit, None | Some(TifField::Gtc), None) => TimeInForce::Gtc,
            (TypeField::Market, None | Some(TifField::Ioc), None) => TimeInForce::Ioc,
            (TypeField::Market, Some(TifField::Gtc), None) => {
                return Err(malformed("a market order cannot rest: use ioc or fok"))
            }
            (_, Some(TifField::Ioc), None) => TimeInForce::Ioc,
            (_, Some(TifField::Fok), None) => TimeInForce::Fok,
        };
        if p.order_type == TypeField::Market && matches!(tif, TimeInForce::Gtd(_)) {
            return Err(malformed("a market order cannot rest: use ioc or fok"));
        }
        let id = OrderId(self.order_names.len() as u64);
        if let Some(client_id) = &p.client_order_id {
            self.client_ids.insert(id, client_id.clone());
        }
        self.order_ids.insert(p.id.clone(), id);
        self.order_names.push(p.id.clone());
        Ok(MarketCommand::Place(NewOrder {
            id,
            user: self.user_id(&p.user),
            side: match p.side {
                SideField::Buy => Side::Buy,
                SideField::Sell => Side::Sell,
            },
            order_type,
            qty,
            tif,
            post_only: p.post_only,
            stp: match p.stp {
                StpField::ExpireMaker => StpMode::ExpireMaker,
                StpField::ExpireTaker => StpMode::ExpireTaker,
                StpField::ExpireBoth => StpMode::ExpireBoth,
            },
        }))
    }

    fn name(&self, order: OrderId) -> &str {
        self.order_names.get(order.0 as usize).map_or("", String::as_str)
    }

    /// The wire form of a domain event; `filled` is implied by trades and not written.
    fn render(&self, line_no: u64, event: &MarketEvent) -> Option<Value> {
        let g = &self.grid;
        Some(match event {
            MarketEvent::Accepted(order) => match self.client_ids.get(&order.id) {
                Some(client_id) => {
                    json!({"event": "accepted", "id": self.name(order.id), "client_order_id": client_id})
                }
                None => json!({"event": "accepted", "id": self.name(order.id)}),
            },
            MarketEvent::Rested { order, price, qty, .. } => {
                json!({"event": "rested", "id": self.name(*order), "price": g.price_str(*price), "qty": g.qty_str(*qty)})
            }
            MarketEvent::Traded(t) => json!({
                "event": "trade",
                "id": self.name(t.taker_order),
                "trade_id": t.id.0,
                "maker": self.name(t.maker_order),
                "taker": self.name(t.taker_order),
                "side": side_str(t.taker_side),
                "price": g.price_str(t.price),
                "qty": g.qty_str(t.qty),
                "maker_fee": g.quote_str(t.maker_fee.0),
                "taker_fee": g.quote_str(t.taker_fee.0),
            }),
            MarketEvent::Filled { .. } => return None,
            MarketEvent::Expired { order, remaining, reason } => json!({
                "event": "expired", "id": self.name(*order), "qty": g.qty_str(*remaining), "reason": reason.code()
            }),
            MarketEvent::Cancelled { order, remaining, reason } => json!({
                "event": "cancelled", "id": self.name(*order), "qty": g.qty_str(*remaining), "reason": reason.code()
            }),
            MarketEvent::Amended { order, price, qty, keeps_priority } => json!({
                "event": "amended", "id": self.name(*order), "price": g.price_str(*price), "qty": g.qty_str(*qty),
                "keeps_priority": keeps_priority
            }),
            MarketEvent::Rejected { order, reason } => {
                // A command about an order name never placed maps to NO_ORDER; name it anyway.
                let id = if *order == NO_ORDER { self.unknown_name.as_str() } else { self.name(*order) };
                json!({"event": "rejected", "id": id, "line": line_no, "reason": reason.code()})
            }
            MarketEvent::Halted => json!({"event": "halted"}),
            MarketEvent::Resumed => json!({"event": "resumed"}),
        })
    }

    fn book(&self) -> Value {
        let side = |side: Side| {
            let mut levels: Vec<Map<String, Value>> = Vec::new();
            let mut last_price = None;
            self.market.book().walk::<()>(side, |o| {
                if last_price != Some(o.price) {
                    last_price = Some(o.price);
                    let mut level = Map::new();
                    level.insert("price".into(), Value::String(self.grid.price_str(o.price)));
                    level.insert("qty".into(), Value::Null);
                    level.insert("orders".into(), Value::Array(vec![]));
                    levels.push(level);
                }
                if let Some(Value::Array(ids)) = levels.last_mut().and_then(|l| l.get_mut("orders")) {
                    ids.push(Value::String(self.name(o.id).to_owned()));
                }
                ControlFlow::Continue(())
            });
            let depth = self.market.book().depth(side, levels.len());
            for (level, summary) in levels.iter_mut().zip(depth) {
                level.insert("qty".into(), Value::String(self.grid.qty_str(summary.qty)));
            }
            Value::Array(levels.into_iter().map(Value::Object).collect())
        };
        json!({"event": "book", "bids": side(Side::Buy), "asks": side(Side::Sell)})
    }
}

fn side_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// A line refused before it reached the market.
struct LineRejection {
    id: String,
    reason: &'static str,
    detail: String,
}

impl LineRejection {
    fn new(id: &str, reason: RejectReason, detail: String) -> LineRejection {
        LineRejection { id: id.to_owned(), reason: reason.code(), detail }
    }

    fn malformed(id: &str, detail: &str) -> LineRejection {
        LineRejection { id: id.to_owned(), reason: "malformed", detail: detail.to_owned() }
    }

    fn into_event(self, line: u64) -> Value {
        json!({"event": "rejected", "id": self.id, "line": line, "reason": self.reason, "detail": self.detail})
    }
}
