//! Unit tests of `src/queue/sqs/config.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use super::*;

fn moto() -> SqsConfig {
    SqsConfig { endpoint: Some("http://127.0.0.1:5000".into()), ..SqsConfig::aws("us-east-1") }
}

#[test]
fn the_default_configuration_is_valid_and_names_the_issues_queues() {
    let config = moto();
    config.validate().unwrap();
    assert_eq!(config.queue_names.market, "market.fifo");
    assert_eq!(dead_letter_name(&config.queue_names.settlement), "settlement-operator-dlq.fifo");
}

#[test]
fn bad_names_and_timings_are_refused() {
    let refused = |c: SqsConfig| matches!(c.validate(), Err(QueueError::InvalidConfig(_)));
    let names = |market: &str| SqsConfig {
        queue_names: SqsQueueNames { market: market.into(), ..SqsQueueNames::default() },
        ..moto()
    };
    assert!(refused(names("market")), "not FIFO");
    assert!(refused(names("mar ket.fifo")));
    assert!(refused(names(&format!("{}.fifo", "m".repeat(72)))), "the DLQ name would be too long");
    assert!(refused(names("user.fifo")), "shared with the user queue");
    assert!(refused(SqsConfig { max_receive_count: 0, ..moto() }));
    assert!(refused(SqsConfig { visibility_timeout: Duration::from_millis(500), ..moto() }));
    assert!(refused(SqsConfig { wait_time: Duration::from_secs(21), ..moto() }));
    assert!(refused(SqsConfig { region: String::new(), ..moto() }));
}

#[test]
fn credentials_do_not_print_the_secret() {
    let c = SqsCredentials { access_key_id: "AKID".into(), secret_access_key: "s3cr3t".into(), session_token: None };
    assert!(!format!("{c:?}").contains("s3cr3t"));
}
