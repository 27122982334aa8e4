//! Unit tests of `src/settlement/alert.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn alerts_are_counted_and_the_recent_ones_kept() {
    let alerts = Alerts::new(None);
    for i in 0..RECENT_ALERTS + 5 {
        alerts.raise(Alert {
            kind: "trade_voided",
            operator: "0x01".into(),
            market: None,
            message: i.to_string(),
            at_ms: i as u64,
        });
    }
    assert_eq!(alerts.count(), (RECENT_ALERTS + 5) as u64);
    let recent = alerts.recent();
    assert_eq!(recent.len(), RECENT_ALERTS);
    assert_eq!(recent[0].message, "5", "the oldest are dropped first");
}

/// A one-request HTTP server on a free port: hands the body it received to the channel.
fn one_shot_server() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (&stream).write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
        tx.send(String::from_utf8(body).unwrap()).unwrap();
    });
    (url, rx)
}

#[actix_rt::test]
async fn an_alert_is_posted_to_the_webhook_as_json() {
    let (url, received) = one_shot_server();
    let alerts = Alerts::new(Some(url));
    let alert = Alert {
        kind: "market_halted",
        operator: "0x01".into(),
        market: Some("BTC-USDT".into()),
        message: "halted".into(),
        at_ms: 7,
    };
    alerts.raise(alert);
    let mut body = None;
    for _ in 0..250 {
        if let Ok(b) = received.try_recv() {
            body = Some(b);
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let body: serde_json::Value = serde_json::from_str(&body.expect("the webhook got the alert")).unwrap();
    assert_eq!(body["kind"], "market_halted");
    assert_eq!(body["market"], "BTC-USDT");
}
