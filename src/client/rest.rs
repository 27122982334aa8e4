//! The REST calls a trading client makes: what the server signs under (EIP-712 domain, the
//! market's on-chain id and fee bound), the market's grid, where trades settle (the chain),
//! test funds from the dev faucet, a session token from a signed login challenge, balances.

use std::str::FromStr;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::Eip712Domain;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::api::rest::chain::ChainInfo;
use crate::api::wire::BalanceInfo;
use crate::chain::eip712;
use crate::client::ClientError;

/// What orders for one market are signed and sized with.
#[derive(Clone, Debug)]
pub struct MarketTerms {
    pub market: String,
    pub base: String,
    pub quote: String,
    pub domain: Eip712Domain,
    pub chain_market_id: u32,
    pub max_fee_bps: u16,
    pub tick_size: Decimal,
    pub lot_size: Decimal,
    pub min_qty: Decimal,
    pub min_notional: Decimal,
}

/// A REST client for one server (`base` like `http://127.0.0.1:8080`).
pub struct Rest {
    client: awc::Client,
    base: String,
}

impl Rest {
    pub fn new(base: &str) -> Rest {
        let client = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
        Rest { client, base: base.trim_end_matches('/').to_owned() }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `ws://host:port/ws` for an `http://host:port` base (`wss` for `https`).
    pub fn ws_url(&self) -> String {
        let rest = self.base.strip_prefix("https://").map(|h| format!("wss://{h}"));
        rest.unwrap_or_else(|| format!("ws://{}", self.base.trim_start_matches("http://"))) + "/ws"
    }

    /// GET `path` (with a session token, if given) and decode a 200 answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str, token: Option<&str>) -> Result<T, ClientError> {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.insert_header(("authorization", format!("Bearer {token}")));
        }
        let res = req.send().await.map_err(|e| ClientError::Http(format!("GET {path}: {e}")))?;
        decode(path, res).await
    }

    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ClientError> {
        let res = self
            .client
            .post(format!("{}{path}", self.base))
            .send_json(body)
            .await
            .map_err(|e| ClientError::Http(format!("POST {path}: {e}")))?;
        decode(path, res).await
    }

    /// The server's signing domain and `market`'s grid.
    pub async fn market_terms(&self, market: &str) -> Result<MarketTerms, ClientError> {
        let schema: Value = self.get("/api/v1/eip712", None).await?;
        let bad = |what: &str| ClientError::Server(format!("GET /api/v1/eip712: {what}"));
        let chain_id = schema["domain"]["chainId"].as_u64().ok_or_else(|| bad("no domain.chainId"))?;
        let contract = schema["domain"]["verifyingContract"].as_str().ok_or_else(|| bad("no verifyingContract"))?;
        let contract = Address::from_str(contract).map_err(|e| bad(&e.to_string()))?;
        let signing = schema["markets"]
            .as_array()
            .and_then(|ms| ms.iter().find(|m| m["market"] == market))
            .ok_or_else(|| ClientError::UnknownMarket(market.to_owned()))?;
        let chain_market_id = signing["chain_market_id"].as_u64().and_then(|id| u32::try_from(id).ok());
        let max_fee_bps = signing["min_max_fee_bps"].as_u64().and_then(|b| u16::try_from(b).ok());

        let markets: Vec<Value> = self.get("/api/v1/markets", None).await?;
        let info =
            markets.iter().find(|m| m["id"] == market).ok_or_else(|| ClientError::UnknownMarket(market.into()))?;
        let text = |field: &str| info[field].as_str().map(str::to_owned).ok_or_else(|| bad_market(market, field));
        let decimal =
            |field: &str| text(field).and_then(|t| Decimal::from_str(&t).map_err(|_| bad_market(market, field)));
        Ok(MarketTerms {
            market: market.to_owned(),
            base: text("base")?,
            quote: text("quote")?,
            domain: eip712::domain(chain_id, contract),
            chain_market_id: chain_market_id.ok_or_else(|| bad("no chain_market_id"))?,
            max_fee_bps: max_fee_bps.ok_or_else(|| bad("no min_max_fee_bps"))?,
            tick_size: decimal("tick_size")?,
            lot_size: decimal("lot_size")?,
            min_qty: decimal("min_qty")?,
            min_notional: decimal("min_notional")?,
        })
    }

    /// Where trades settle: the chain, the exchange contract and each asset's token.
    pub async fn chain(&self) -> Result<ChainInfo, ClientError> {
        self.get("/api/v1/chain", None).await
    }

    /// The session's balances per asset (available / locked / settling, decimal strings).
    pub async fn balances(&self, token: &str) -> Result<Vec<BalanceInfo>, ClientError> {
        self.get("/api/v1/balances", Some(token)).await
    }

    /// Credits `amount` of `asset` to `user` (needs `hob serve --dev-faucet`).
    pub async fn faucet(&self, user: Address, asset: &str, amount: &str) -> Result<(), ClientError> {
        let body = json!({ "user": user.to_checksum(None), "asset": asset, "amount": amount });
        let _: Value = self.post("/api/v1/dev/faucet", &body).await?;
        Ok(())
    }

    /// Logs in by signing the server's challenge; returns the session token.
    pub async fn login(&self, key: &PrivateKeySigner) -> Result<String, ClientError> {
        let address = key.address().to_checksum(None);
        let challenge: Value = self.post("/api/v1/auth/challenge", &json!({ "address": address })).await?;
        let message =
            challenge["message"].as_str().ok_or_else(|| ClientError::Server("challenge without message".into()))?;
        let signature = key.sign_message_sync(message.as_bytes()).map_err(|e| ClientError::Sign(e.to_string()))?;
        let body = json!({
            "nonce": challenge["nonce"],
            "signature": format!("0x{}", alloy::hex::encode(signature.as_bytes())),
        });
        let login: Value = self.post("/api/v1/auth/login", &body).await?;
        login["token"].as_str().map(str::to_owned).ok_or_else(|| ClientError::Server("login without token".into()))
    }
}

fn bad_market(market: &str, field: &str) -> ClientError {
    ClientError::Server(format!("GET /api/v1/markets: {market} has no valid {field}"))
}

async fn decode<T: DeserializeOwned, S>(path: &str, mut res: awc::ClientResponse<S>) -> Result<T, ClientError>
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>,
{
    let status = res.status();
    let body = res.body().limit(16 * 1024 * 1024).await.map_err(|e| ClientError::Http(format!("{path}: {e}")))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body);
        return Err(ClientError::Refused { path: path.to_owned(), status: status.as_u16(), body: text.into_owned() });
    }
    serde_json::from_slice(&body).map_err(|e| ClientError::Server(format!("{path}: not the expected JSON: {e}")))
}
