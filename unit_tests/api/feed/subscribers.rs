//! Unit tests of `src/api/feed/subscribers.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn a_full_buffer_drops_the_subscriber_with_a_reason_and_spares_the_others() {
    let sent = IntCounter::new("sent", "messages queued").unwrap();
    let (slow, mut slow_in) = Outlet::new(1, 2, sent.clone());
    let (fast, mut fast_in) = Outlet::new(2, 100, sent);
    let mut subs = Subscribers::default();
    subs.add("l2", slow);
    subs.add("l2", fast);
    let mut dropped = 0;
    for i in 0..5 {
        dropped += subs.publish(&"l2", &ByteString::from(format!("m{i}")));
        // only the fast one reads
        assert!(fast_in.rx.try_recv().is_ok());
    }
    assert_eq!(dropped, 1);
    let closing = slow_in.kill.borrow_and_update().clone().unwrap();
    assert!(closing.reason.starts_with("slow consumer") && closing.code == CLOSE_POLICY, "{closing:?}");
    assert!(subs.has(&"l2"), "the fast subscriber stays");
    subs.remove(&"l2", 2);
    assert!(subs.is_empty());
}
