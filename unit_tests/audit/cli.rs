//! Unit tests of `src/audit/cli.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code unwraps: a failure should fail the test.
use super::*;

#[test]
fn store_locations_parse_or_say_why_not() {
    let parse = |s: &str| StoreLocation::parse("--store", s);
    assert_eq!(parse("sqlite:/tmp/x.db").unwrap(), StoreLocation::Sqlite("/tmp/x.db".into()));
    assert_eq!(
        parse("mongodb://h:27017/hob?replicaSet=rs").unwrap(),
        StoreLocation::Mongo { uri: "mongodb://h:27017/hob?replicaSet=rs".into(), database: "hob".into() }
    );
    assert!(parse("mongodb://h:27017/?replicaSet=rs").unwrap_err().to_string().contains("database"));
    assert!(parse("sqlite:").is_err());
    assert!(parse("/tmp/x.db").is_err());
    let missing = runtime().unwrap().block_on(open("sqlite:/nonexistent/hob.db"));
    assert!(missing.err().unwrap().contains("no event store at"));
}
