//! Unit tests of `src/telemetry.rs` (its `#[cfg(test)] mod tests`), kept out of the library's source tree.

// Test code: an `unwrap`/`expect` that fails is the test failing, with its message.
use super::*;

#[test]
fn formats_parse_from_their_names_and_nothing_else() {
    assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
    assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
    assert!("JSON5".parse::<LogFormat>().unwrap_err().contains("JSON5"));
}

#[test]
fn a_bad_level_directive_is_refused_before_anything_is_installed() {
    assert!(parse_level("hob=debug,actix_web=warn").is_ok());
    let e = parse_level("hob=loud").unwrap_err();
    assert!(e.to_string().contains("hob=loud"), "{e}");
}
