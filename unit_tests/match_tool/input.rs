//! Unit tests of `src/match_tool/input.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn reads_the_documented_examples() {
    let place = parse(r#"{"op":"place","id":"o1","user":"alice","side":"buy","type":"limit","price":"100.50","qty":"2","tif":"gtc","post_only":false,"stp":"expire_maker"}"#).unwrap();
    assert!(matches!(place, Line::Place(PlaceLine { ref id, price: Some(_), .. }) if id == "o1"));
    let market =
        parse(r#"{"op":"place","id":"o2","user":"bob","side":"sell","type":"market","qty":"1","worst_price":"99"}"#)
            .unwrap();
    assert!(matches!(market, Line::Place(PlaceLine { order_type: TypeField::Market, .. })));
    let cancel = parse(r#"{"op":"cancel","id":"o1","user":"alice"}"#).unwrap();
    assert_eq!(cancel, Line::Cancel(CancelLine { id: "o1".into(), user: "alice".into(), ts: None }));
}

#[test]
fn names_what_is_wrong() {
    assert!(parse("not json").unwrap_err().reason.starts_with("invalid JSON"));
    assert_eq!(parse("[1]").unwrap_err().reason, "a line must be a JSON object");
    assert_eq!(
        parse(r#"{"id":"x"}"#).unwrap_err(),
        Malformed { id: Some("x".into()), reason: "missing \"op\"".into() }
    );
    let e = parse(r#"{"op":"place","id":"o1","user":"a","side":"up","qty":"1"}"#).unwrap_err();
    assert_eq!(e.id.as_deref(), Some("o1"));
    assert!(e.reason.contains("unknown variant `up`"), "{}", e.reason);
    let e = parse(r#"{"op":"cancel","id":"o1","user":"a","prize":"1"}"#).unwrap_err();
    assert!(e.reason.contains("unknown field `prize`"), "{}", e.reason);
    assert!(parse(r#"{"op":"fly"}"#).unwrap_err().reason.starts_with("unknown op"));
}
