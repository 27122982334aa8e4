//! A `QueueMessage` as an SQS message body: JSON carrying the group, the dedup id, the
//! source and the payload, so a delivery is rebuilt from the body alone. Pure; the limits
//! checked here are SQS's, so a message SQS would refuse is refused before anything is sent.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::events::StreamId;
use crate::queue::{MessageSource, QueueMessage};

/// SQS's largest message body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// SQS's longest `MessageGroupId` and `MessageDeduplicationId`.
pub const MAX_ID_CHARS: usize = 128;

#[derive(Serialize, Deserialize)]
struct WireMessage {
    group: String,
    dedup_id: String,
    stream: String,
    version: u64,
    index: u32,
    body: Value,
}

/// The body to send; `Err` names why SQS would refuse the message.
pub fn encode(message: &QueueMessage) -> Result<String, String> {
    check_id("group", &message.group)?;
    check_id("dedup_id", &message.dedup_id)?;
    let wire = WireMessage {
        group: message.group.clone(),
        dedup_id: message.dedup_id.clone(),
        stream: message.source.stream.as_str().to_owned(),
        version: message.source.version,
        index: message.source.index,
        body: message.body.clone(),
    };
    let text = serde_json::to_string(&wire).map_err(|e| format!("body does not serialise: {e}"))?;
    if text.len() > MAX_BODY_BYTES {
        return Err(format!("encoded body is {} bytes, SQS allows {MAX_BODY_BYTES}", text.len()));
    }
    Ok(text)
}

/// The message a received body carries; `Err` for a body hob did not write.
pub fn decode(text: &str) -> Result<QueueMessage, String> {
    let wire: WireMessage = serde_json::from_str(text).map_err(|e| format!("not a hob message: {e}"))?;
    let stream = StreamId::parse(&wire.stream).map_err(|e| format!("bad source stream {:?}: {e}", wire.stream))?;
    Ok(QueueMessage {
        group: wire.group,
        dedup_id: wire.dedup_id,
        body: wire.body,
        source: MessageSource { stream, version: wire.version, index: wire.index },
    })
}

/// SQS group and dedup ids: 1 to 128 characters, ASCII letters, digits and punctuation.
fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_ID_CHARS || !id.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("{what} {id:?} must be 1 to {MAX_ID_CHARS} ASCII letters, digits or punctuation"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "../../../unit_tests/queue/sqs/wire.rs"]
mod tests;
