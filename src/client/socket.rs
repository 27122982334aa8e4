//! One trader's WebSocket connection (docs/websocket.md): connect, log in with a session
//! token, subscribe, send requests and wait for their answers, and read everything else the
//! server pushes. Answers are matched by request id; pushes that arrive while a request
//! waits are kept, in order, for [`TradingSocket::next`], so nothing is lost or reordered.

use std::collections::VecDeque;
use std::time::Duration;

use actix_codec::Framed;
use awc::ws;
use bytestring::ByteString;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::api::wire::{CancelAllResponse, PlaceOrderRequest, PlaceOrderResponse};
use crate::client::{ClientError, ServerMessage};

pub type Socket = Framed<awc::BoxedSocket, ws::Codec>;

/// How long connecting, or waiting for the answer to one request, may take.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest frame read (a `fills` snapshot of 100 rows is far smaller).
const MAX_FRAME_BYTES: usize = 1 << 20;

pub struct TradingSocket {
    sink: SplitSink<Socket, ws::Message>,
    stream: SplitStream<Socket>,
    /// Pushes that arrived while a request waited for its answer, oldest first.
    pending: VecDeque<ServerMessage>,
    next_id: u64,
}

impl TradingSocket {
    /// Opens `ws_url` (e.g. `ws://127.0.0.1:8080/ws`); public channels only until `login`.
    pub async fn connect(ws_url: &str) -> Result<TradingSocket, ClientError> {
        let client = awc::Client::builder().timeout(ANSWER_TIMEOUT).finish();
        let (_, framed) = client
            .ws(ws_url)
            .max_frame_size(MAX_FRAME_BYTES)
            .connect()
            .await
            .map_err(|e| ClientError::WebSocket(format!("connecting to {ws_url}: {e}")))?;
        let (sink, stream) = framed.split();
        Ok(TradingSocket { sink, stream, pending: VecDeque::new(), next_id: 1 })
    }

    /// Acts for the session's user from now on (a token from `Rest::login`); returns the
    /// user's address as the server writes it.
    pub async fn login(&mut self, token: &str) -> Result<String, ClientError> {
        let result = self.call("login", json!({ "token": token })).await?;
        result["user"].as_str().map(str::to_owned).ok_or_else(|| ClientError::Server(format!("login: {result}")))
    }

    /// Subscribes to `channel` (and `market`, for a market channel). Its snapshot follows as
    /// the next push of that channel.
    pub async fn subscribe(&mut self, channel: &str, market: Option<&str>) -> Result<(), ClientError> {
        let mut fields = json!({ "channel": channel });
        if let Some(market) = market {
            fields["market"] = Value::from(market);
        }
        self.call("subscribe", fields).await.map(drop)
    }

    /// Places a (signed) order; the answer says it was accepted, not what the market did.
    pub async fn place(&mut self, order: &PlaceOrderRequest) -> Result<PlaceOrderResponse, ClientError> {
        let order = serde_json::to_value(order).map_err(|e| ClientError::Invalid(e.to_string()))?;
        let result = self.call("place", json!({ "order": order })).await?;
        decode("place", result)
    }

    /// Cancels every open order of the user, in `market` or in every market.
    pub async fn cancel_all(&mut self, market: Option<&str>) -> Result<CancelAllResponse, ClientError> {
        let result = self.call("cancel_all", json!({ "market": market })).await?;
        decode("cancel_all", result)
    }

    /// Sends `op` with `fields` and a fresh request id, and waits for its answer: the
    /// `result` (an `ack`'s channel, for a subscription), or its `error` as `Rejected`.
    pub async fn call(&mut self, op: &str, fields: Value) -> Result<Value, ClientError> {
        let id = format!("{op}-{}", self.next_id);
        self.next_id += 1;
        let mut request = json!({ "op": op, "id": id });
        if let (Some(request), Value::Object(fields)) = (request.as_object_mut(), fields) {
            request.extend(fields);
        }
        self.send(request.to_string()).await?;
        let answer = async {
            loop {
                let message = self.read().await?;
                if message.answers().and_then(Value::as_str) != Some(id.as_str()) {
                    self.pending.push_back(message);
                    continue;
                }
                return match message {
                    ServerMessage::Result { result, .. } => Ok(result),
                    ServerMessage::Ack { channel, .. } => Ok(Value::from(channel)),
                    ServerMessage::Error { code, message, .. } => {
                        Err(ClientError::Rejected { op: op.to_owned(), code, message })
                    }
                    other => Err(ClientError::Server(format!("{op}: unexpected answer {other:?}"))),
                };
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, answer)
            .await
            .map_err(|_| ClientError::WebSocket(format!("no answer to {op} in {ANSWER_TIMEOUT:?}")))?
    }

    /// The next message: first those kept while a request waited, then the socket's.
    pub async fn next(&mut self) -> Result<ServerMessage, ClientError> {
        match self.pending.pop_front() {
            Some(message) => Ok(message),
            None => self.read().await,
        }
    }

    /// The raw halves, for a client that drives the socket itself (`hob loadgen`). Nothing
    /// is kept back: only call it before any push may have arrived, i.e. right after login.
    pub fn into_parts(self) -> (SplitSink<Socket, ws::Message>, SplitStream<Socket>) {
        (self.sink, self.stream)
    }

    pub async fn close(mut self) {
        let _ = self.sink.send(ws::Message::Close(None)).await;
    }

    async fn send(&mut self, text: String) -> Result<(), ClientError> {
        self.sink
            .send(ws::Message::Text(ByteString::from(text)))
            .await
            .map_err(|e| ClientError::WebSocket(format!("send: {e}")))
    }

    /// The next JSON message from the socket, answering pings on the way.
    async fn read(&mut self) -> Result<ServerMessage, ClientError> {
        loop {
            match self.stream.next().await {
                Some(Ok(ws::Frame::Text(bytes))) => {
                    return serde_json::from_slice(&bytes).map_err(|e| {
                        ClientError::Server(format!("not a server message ({e}): {}", String::from_utf8_lossy(&bytes)))
                    })
                }
                Some(Ok(ws::Frame::Ping(bytes))) => {
                    let _ = self.sink.send(ws::Message::Pong(bytes)).await;
                }
                Some(Ok(ws::Frame::Close(reason))) => {
                    return Err(ClientError::WebSocket(format!("closed by the server: {reason:?}")))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ClientError::WebSocket(e.to_string())),
                None => return Err(ClientError::WebSocket("the connection ended".into())),
            }
        }
    }
}

fn decode<T: DeserializeOwned>(op: &str, result: Value) -> Result<T, ClientError> {
    serde_json::from_value(result.clone()).map_err(|e| ClientError::Server(format!("{op}: {e}: {result}")))
}
