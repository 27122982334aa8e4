//! `hob match` end to end: the real binary, JSON lines on stdin, events on stdout. The format
//! is a public interface (README.md, "hob match"), so these tests read like its specification:
//! given these input lines, then exactly these output lines.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

const GRID: &[&str] = &["--tick", "0.01", "--lot", "1"];

/// Runs `hob match <args>` with `input` on stdin.
fn hob(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hob"))
        .arg("match")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hob starts");
    // Feed stdin from another thread: hob writes while it reads, and a full stdout pipe
    // would otherwise block both sides. A refused start may exit before reading stdin; the
    // broken pipe then is not a failure.
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("hob runs");
    feeder.join().expect("stdin feeder");
    out
}

/// The output lines of a successful run, parsed.
fn events(args: &[&str], lines: &[&str]) -> Vec<Value> {
    let out = hob(args, &(lines.join("\n") + "\n"));
    let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
    assert!(out.status.success(), "hob failed: {}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("output line {l:?} is not JSON: {e}")))
        .collect()
}

/// Given `lines` on the default grid, then exactly `expected` (the final book included).
fn check(lines: &[&str], expected: &[Value]) {
    check_with(GRID, lines, expected);
}

fn check_with(args: &[&str], lines: &[&str], expected: &[Value]) {
    let got = events(args, lines);
    let show = |v: &[Value]| v.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    assert_eq!(got, expected, "\n--- got:\n{}\n--- expected:\n{}", show(&got), show(expected));
}

fn book(bids: Value, asks: Value) -> Value {
    json!({"event": "book", "bids": bids, "asks": asks})
}

fn empty_book() -> Value {
    book(json!([]), json!([]))
}

fn trade(trade_id: u64, maker: &str, taker: &str, side: &str, price: &str, qty: &str) -> Value {
    json!({
        "event": "trade", "id": taker, "trade_id": trade_id, "maker": maker, "taker": taker, "side": side,
        "price": price, "qty": qty, "maker_fee": "0", "taker_fee": "0"
    })
}

fn accepted(id: &str) -> Value {
    json!({"event": "accepted", "id": id})
}

fn rested(id: &str, price: &str, qty: &str) -> Value {
    json!({"event": "rested", "id": id, "price": price, "qty": qty})
}

fn rejected(id: &str, line: u64, reason: &str) -> Value {
    json!({"event": "rejected", "id": id, "line": line, "reason": reason})
}

/// Output events with the human `detail` text removed, for comparing the stable fields only.
fn without_detail(mut events: Vec<Value>) -> Vec<Value> {
    for e in &mut events {
        if let Some(o) = e.as_object_mut() {
            o.remove("detail");
        }
    }
    events
}

const O1: &str = r#"{"op":"place","id":"o1","user":"alice","side":"buy","type":"limit","price":"100.50","qty":"2","tif":"gtc","post_only":false,"stp":"expire_maker"}"#;
const O2: &str = r#"{"op":"place","id":"o2","user":"bob","side":"sell","type":"market","qty":"1","worst_price":"99"}"#;
const CANCEL_O1: &str = r#"{"op":"cancel","id":"o1","user":"alice"}"#;

#[test]
fn the_readme_example_gives_the_documented_output_byte_for_byte() {
    let out = hob(GRID, &format!("{O1}\n{O2}\n{CANCEL_O1}\n"));
    assert!(out.status.success());
    let expected = r#"{"event":"accepted","id":"o1"}
{"event":"rested","id":"o1","price":"100.50","qty":"2"}
{"event":"accepted","id":"o2"}
{"event":"trade","id":"o2","trade_id":1,"maker":"o1","taker":"o2","side":"sell","price":"100.50","qty":"1","maker_fee":"0","taker_fee":"0"}
{"event":"cancelled","id":"o1","qty":"1","reason":"user"}
{"event":"book","bids":[],"asks":[]}
"#;
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn the_book_line_lists_levels_best_first_and_orders_in_time_priority() {
    let place = |id: &str, user: &str, side: &str, price: &str, qty: &str| {
        format!(r#"{{"op":"place","id":"{id}","user":"{user}","side":"{side}","price":"{price}","qty":"{qty}"}}"#)
    };
    let lines = [
        place("b1", "alice", "buy", "99.00", "1"),
        place("b2", "bob", "buy", "99.50", "2"),
        place("b3", "carol", "buy", "99.00", "3"),
        place("a1", "dave", "sell", "101", "4"),
        place("a2", "erin", "sell", "100.25", "5"),
        place("a3", "alice", "sell", "101.00", "6"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let got = events(GRID, &lines);
    assert_eq!(
        got.last().unwrap(),
        &book(
            json!([
                {"price": "99.50", "qty": "2", "orders": ["b2"]},
                {"price": "99.00", "qty": "4", "orders": ["b1", "b3"]},
            ]),
            json!([
                {"price": "100.25", "qty": "5", "orders": ["a2"]},
                {"price": "101.00", "qty": "10", "orders": ["a1", "a3"]},
            ]),
        )
    );
}

#[test]
fn a_sweep_trades_best_price_first_then_earliest_first_at_the_makers_prices() {
    check(
        &[
            r#"{"op":"place","id":"a1","user":"alice","side":"sell","price":"101","qty":"1"}"#,
            r#"{"op":"place","id":"a2","user":"bob","side":"sell","price":"100","qty":"1"}"#,
            r#"{"op":"place","id":"a3","user":"carol","side":"sell","price":"100","qty":"2"}"#,
            r#"{"op":"place","id":"t","user":"dave","side":"buy","price":"101","qty":"3","tif":"ioc"}"#,
        ],
        &[
            accepted("a1"),
            rested("a1", "101.00", "1"),
            accepted("a2"),
            rested("a2", "100.00", "1"),
            accepted("a3"),
            rested("a3", "100.00", "2"),
            accepted("t"),
            trade(1, "a2", "t", "buy", "100.00", "1"),
            trade(2, "a3", "t", "buy", "100.00", "2"),
            book(json!([]), json!([{"price": "101.00", "qty": "1", "orders": ["a1"]}])),
        ],
    );
}

#[test]
fn remainders_expire_with_their_reason() {
    check(
        &[
            r#"{"op":"place","id":"a1","user":"alice","side":"sell","price":"100","qty":"1"}"#,
            r#"{"op":"place","id":"i1","user":"bob","side":"buy","price":"100","qty":"3","tif":"ioc"}"#,
            r#"{"op":"place","id":"m1","user":"bob","side":"buy","type":"market","qty":"2","worst_price":"101"}"#,
        ],
        &[
            accepted("a1"),
            rested("a1", "100.00", "1"),
            accepted("i1"),
            trade(1, "a1", "i1", "buy", "100.00", "1"),
            json!({"event": "expired", "id": "i1", "qty": "2", "reason": "ioc"}),
            accepted("m1"),
            json!({"event": "expired", "id": "m1", "qty": "2", "reason": "market"}),
            empty_book(),
        ],
    );
}

#[test]
fn a_malformed_line_is_rejected_with_its_line_number_and_matching_goes_on() {
    let got = events(
        GRID,
        &[
            O1,
            "this is not json",
            r#"[1, 2]"#,
            r#"{"op":"fly","id":"x1"}"#,
            r#"{"op":"place","id":"x2","user":"bob","side":"sell","qty":"1","prize":"1"}"#,
            r#"{"op":"place","id":"x3","user":"bob","side":"sell","type":"limit","qty":"1"}"#,
            r#"{"op":"place","id":"x4","user":"bob","side":"up","price":"100","qty":"1"}"#,
            r#"{"op":"cancel","user":"bob"}"#,
            O2,
        ],
    );
    for (i, e) in got.iter().enumerate().skip(2).take(7) {
        assert_eq!(e["event"], "rejected", "{e}");
        assert_eq!(e["line"], i as u64, "{e}");
        assert_eq!(e["reason"], "malformed", "{e}");
        assert!(e["detail"].as_str().is_some_and(|d| !d.is_empty()), "a malformed line says why: {e}");
    }
    // The line's id is echoed when it could be read.
    assert_eq!(got[2].get("id"), None);
    assert_eq!(got[4]["id"], "x1");
    assert_eq!(got[5]["id"], "x2");
    assert!(got[5]["detail"].as_str().unwrap().contains("prize"), "{}", got[5]);
    assert_eq!(got[6]["id"], "x3");
    assert!(got[7]["detail"].as_str().unwrap().contains("up"), "{}", got[7]);
    assert_eq!(
        got[9..],
        [
            accepted("o2"),
            trade(1, "o1", "o2", "sell", "100.50", "1"),
            book(json!([{"price": "100.50", "qty": "1", "orders": ["o1"]}]), json!([])),
        ]
    );
}

#[test]
fn blank_lines_are_skipped_but_still_counted() {
    let got = events(GRID, &["", O1, "   ", "\t", "garbage", "", CANCEL_O1]);
    assert_eq!(
        without_detail(got),
        [
            accepted("o1"),
            rested("o1", "100.50", "2"),
            json!({"event": "rejected", "line": 5, "reason": "malformed"}),
            json!({"event": "cancelled", "id": "o1", "qty": "2", "reason": "user"}),
            empty_book(),
        ]
    );
}

#[test]
fn an_empty_input_gives_just_the_empty_book() {
    let out = hob(GRID, "");
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "{\"event\":\"book\",\"bids\":[],\"asks\":[]}\n");
}

#[test]
fn values_off_the_grid_are_rejected_never_rounded() {
    let got = events(
        GRID,
        &[
            r#"{"op":"place","id":"p1","user":"a","side":"buy","price":"100.505","qty":"1"}"#,
            r#"{"op":"place","id":"p2","user":"a","side":"buy","price":"0","qty":"1"}"#,
            r#"{"op":"place","id":"p3","user":"a","side":"buy","price":"-1","qty":"1"}"#,
            r#"{"op":"place","id":"p4","user":"a","side":"buy","price":"ten","qty":"1"}"#,
            r#"{"op":"place","id":"p5","user":"a","side":"buy","price":"100","qty":"1.5"}"#,
            r#"{"op":"place","id":"p6","user":"a","side":"buy","price":"100","qty":"0"}"#,
            r#"{"op":"place","id":"p7","user":"a","side":"sell","type":"market","qty":"1","worst_price":"99.999"}"#,
            r#"{"op":"place","id":"p8","user":"a","side":"buy","price":"100.5","qty":"1"}"#,
        ],
    );
    assert_eq!(
        without_detail(got),
        [
            rejected("p1", 1, "off_grid_price"),
            rejected("p2", 2, "off_grid_price"),
            rejected("p3", 3, "off_grid_price"),
            rejected("p4", 4, "off_grid_price"),
            rejected("p5", 5, "off_grid_size"),
            rejected("p6", 6, "off_grid_size"),
            rejected("p7", 7, "off_grid_price"),
            accepted("p8"),
            rested("p8", "100.50", "1"),
            book(json!([{"price": "100.50", "qty": "1", "orders": ["p8"]}]), json!([])),
        ]
    );
}

#[test]
fn other_grids_render_with_their_own_decimal_places() {
    let lines = [
        r#"{"op":"place","id":"s1","user":"alice","side":"sell","price":"100.5","qty":"0.25"}"#,
        r#"{"op":"place","id":"b1","user":"bob","side":"buy","price":"101","qty":"0.1"}"#,
        r#"{"op":"place","id":"b2","user":"bob","side":"buy","price":"100.25","qty":"0.1"}"#,
    ];
    check_with(
        &["--tick", "0.5", "--lot", "0.05"],
        &lines,
        &[
            accepted("s1"),
            rested("s1", "100.5", "0.25"),
            accepted("b1"),
            trade(1, "s1", "b1", "buy", "100.5", "0.10"),
            json!({"event": "rejected", "id": "b2", "line": 3, "reason": "off_grid_price",
                   "detail": "price 100.25 is not a multiple of 0.5"}),
            book(json!([]), json!([{"price": "100.5", "qty": "0.15", "orders": ["s1"]}])),
        ],
    );
    // Whole-number grids: a tick of 5 and a lot of 10.
    let got = events(
        &["--tick", "5", "--lot", "10"],
        &[
            r#"{"op":"place","id":"x","user":"a","side":"buy","price":"105","qty":"30"}"#,
            r#"{"op":"place","id":"y","user":"a","side":"buy","price":"103","qty":"30"}"#,
            r#"{"op":"place","id":"z","user":"a","side":"buy","price":"105","qty":"35"}"#,
        ],
    );
    assert_eq!(got[1], rested("x", "105", "30"));
    assert_eq!((&got[2]["reason"], &got[3]["reason"]), (&json!("off_grid_price"), &json!("off_grid_size")));
}

#[test]
fn a_bad_grid_exits_non_zero_and_says_why_on_stderr() {
    for (args, word) in [
        (&["--tick", "abc", "--lot", "1"][..], "tick"),
        (&["--tick", "0", "--lot", "1"][..], "tick"),
        (&["--tick", "-0.01", "--lot", "1"][..], "tick"),
        (&["--tick", "0.01", "--lot", "zero"][..], "lot"),
        (&["--tick", "0.01"][..], "--lot"),
    ] {
        let out = hob(args, &format!("{O1}\n"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr.contains(word), "{args:?}: stderr should name {word:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing matched, nothing written: {:?}", out.stdout);
    }
}

#[test]
fn a_gtd_order_expires_on_the_first_line_at_or_past_its_time() {
    check(
        &[
            r#"{"op":"place","id":"g1","user":"alice","side":"buy","price":"100","qty":"1","tif":"gtd","expires_at":1000,"ts":500}"#,
            r#"{"op":"place","id":"g0","user":"alice","side":"buy","price":"100","qty":"1","tif":"gtd","expires_at":500}"#,
            r#"{"op":"place","id":"s1","user":"bob","side":"sell","price":"101","qty":"1","ts":999}"#,
            r#"{"op":"place","id":"s2","user":"bob","side":"sell","price":"102","qty":"1","ts":1000}"#,
            r#"{"op":"place","id":"s3","user":"bob","side":"sell","type":"market","qty":"1","ts":400}"#,
        ],
        &[
            accepted("g1"),
            rested("g1", "100.00", "1"),
            rejected("g0", 2, "already_expired"),
            accepted("s1"),
            rested("s1", "101.00", "1"),
            // Due orders expire first, before the line's own command.
            json!({"event": "expired", "id": "g1", "qty": "1", "reason": "gtd"}),
            accepted("s2"),
            rested("s2", "102.00", "1"),
            // Time never runs backwards: ts 400 after 1000 is read as 1000.
            accepted("s3"),
            json!({"event": "expired", "id": "s3", "qty": "1", "reason": "market"}),
            book(
                json!([]),
                json!([
                    {"price": "101.00", "qty": "1", "orders": ["s1"]},
                    {"price": "102.00", "qty": "1", "orders": ["s2"]},
                ]),
            ),
        ],
    );
}

#[test]
fn gtd_fields_must_go_together() {
    let got = events(
        GRID,
        &[
            r#"{"op":"place","id":"g1","user":"a","side":"buy","price":"100","qty":"1","tif":"gtd"}"#,
            r#"{"op":"place","id":"g2","user":"a","side":"buy","price":"100","qty":"1","expires_at":5}"#,
            r#"{"op":"place","id":"g3","user":"a","side":"buy","type":"market","worst_price":"1","qty":"1","tif":"gtd","expires_at":5}"#,
        ],
    );
    for (i, e) in got[..3].iter().enumerate() {
        assert_eq!((&e["reason"], &e["line"]), (&json!("malformed"), &json!(i + 1)), "{e}");
    }
}

#[test]
fn an_amend_down_keeps_priority_any_other_amend_goes_to_the_back() {
    let place = |id: &str, user: &str| {
        format!(r#"{{"op":"place","id":"{id}","user":"{user}","side":"sell","price":"100","qty":"5"}}"#)
    };
    let (p1, p2, p3) = (place("a", "alice"), place("b", "bob"), place("c", "carol"));
    let got = events(
        GRID,
        &[
            &p1,
            &p2,
            &p3,
            r#"{"op":"amend","id":"a","user":"alice","price":"100","qty":"3"}"#,
            r#"{"op":"amend","id":"b","user":"bob","price":"100","qty":"6"}"#,
            r#"{"op":"amend","id":"c","user":"carol","price":"101","qty":"5"}"#,
            r#"{"op":"amend","id":"c","user":"carol","price":"100","qty":"5"}"#,
        ],
    );
    assert_eq!(
        got[6..],
        [
            json!({"event": "amended", "id": "a", "price": "100.00", "qty": "3", "keeps_priority": true}),
            json!({"event": "amended", "id": "b", "price": "100.00", "qty": "6", "keeps_priority": false}),
            rested("b", "100.00", "6"),
            json!({"event": "amended", "id": "c", "price": "101.00", "qty": "5", "keeps_priority": false}),
            rested("c", "101.00", "5"),
            json!({"event": "amended", "id": "c", "price": "100.00", "qty": "5", "keeps_priority": false}),
            rested("c", "100.00", "5"),
            book(json!([]), json!([{"price": "100.00", "qty": "14", "orders": ["a", "b", "c"]}])),
        ]
    );
}

#[test]
fn an_amend_that_crosses_trades_first_and_amends_of_others_orders_are_refused() {
    let got = events(
        GRID,
        &[
            r#"{"op":"place","id":"s","user":"alice","side":"sell","price":"101","qty":"2"}"#,
            r#"{"op":"place","id":"b","user":"bob","side":"buy","price":"100","qty":"3"}"#,
            r#"{"op":"amend","id":"b","user":"alice","price":"101","qty":"3"}"#,
            r#"{"op":"amend","id":"nope","user":"bob","price":"101","qty":"3"}"#,
            r#"{"op":"amend","id":"b","user":"bob","price":"100","qty":"3"}"#,
            r#"{"op":"amend","id":"b","user":"bob","price":"100.001","qty":"3"}"#,
            r#"{"op":"amend","id":"b","user":"bob","price":"101","qty":"3"}"#,
        ],
    );
    assert_eq!(
        without_detail(got[4..].to_vec()),
        [
            rejected("b", 3, "not_owner"),
            rejected("nope", 4, "unknown_order"),
            rejected("b", 5, "amend_no_change"),
            rejected("b", 6, "off_grid_price"),
            json!({"event": "amended", "id": "b", "price": "101.00", "qty": "3", "keeps_priority": false}),
            trade(1, "s", "b", "buy", "101.00", "2"),
            rested("b", "101.00", "1"),
            book(json!([{"price": "101.00", "qty": "1", "orders": ["b"]}]), json!([])),
        ]
    );
}

#[test]
fn a_halted_market_refuses_orders_and_amends_but_lets_users_cancel() {
    check(
        &[
            O1,
            r#"{"op":"halt"}"#,
            r#"{"op":"halt"}"#,
            r#"{"op":"place","id":"o3","user":"bob","side":"sell","price":"100","qty":"1"}"#,
            r#"{"op":"amend","id":"o1","user":"alice","price":"100.50","qty":"1"}"#,
            CANCEL_O1,
            r#"{"op":"resume","ts":7}"#,
            r#"{"op":"resume"}"#,
            r#"{"op":"place","id":"o4","user":"bob","side":"sell","price":"100","qty":"1"}"#,
        ],
        &[
            accepted("o1"),
            rested("o1", "100.50", "2"),
            json!({"event": "halted"}),
            rejected("o3", 4, "market_halted"),
            rejected("o1", 5, "market_halted"),
            json!({"event": "cancelled", "id": "o1", "qty": "2", "reason": "user"}),
            json!({"event": "resumed"}),
            accepted("o4"),
            rested("o4", "100.00", "1"),
            book(json!([]), json!([{"price": "100.00", "qty": "1", "orders": ["o4"]}])),
        ],
    );
}

#[test]
fn cancels_name_the_order_they_were_about() {
    check(
        &[
            r#"{"op":"cancel","id":"ghost","user":"alice"}"#,
            O1,
            r#"{"op":"cancel","id":"o1","user":"bob"}"#,
            r#"{"op":"cancel","id":"phantom","user":"alice"}"#,
            CANCEL_O1,
            CANCEL_O1,
        ],
        &[
            rejected("ghost", 1, "unknown_order"),
            accepted("o1"),
            rested("o1", "100.50", "2"),
            rejected("o1", 3, "not_owner"),
            rejected("phantom", 4, "unknown_order"),
            json!({"event": "cancelled", "id": "o1", "qty": "2", "reason": "user"}),
            rejected("o1", 6, "unknown_order"),
            empty_book(),
        ],
    );
}

#[test]
fn order_ids_are_unique_within_a_file() {
    let got = events(GRID, &[O1, CANCEL_O1, O1]);
    assert_eq!(got[3]["event"], "rejected");
    assert_eq!(
        (&got[3]["id"], &got[3]["line"], &got[3]["reason"]),
        (&json!("o1"), &json!(3), &json!("duplicate_order_id"))
    );
    assert_eq!(got[4], empty_book());
}

#[test]
fn post_only_fok_and_self_trade_prevention() {
    check(
        &[
            r#"{"op":"place","id":"a1","user":"alice","side":"sell","price":"100","qty":"2"}"#,
            r#"{"op":"place","id":"p1","user":"bob","side":"buy","price":"100","qty":"1","post_only":true}"#,
            r#"{"op":"place","id":"p2","user":"bob","side":"buy","price":"100","qty":"1","tif":"ioc","post_only":true}"#,
            r#"{"op":"place","id":"f1","user":"bob","side":"buy","price":"100","qty":"3","tif":"fok"}"#,
            r#"{"op":"place","id":"s1","user":"alice","side":"buy","price":"100","qty":"1","stp":"expire_taker"}"#,
            r#"{"op":"place","id":"s2","user":"alice","side":"buy","price":"100","qty":"1","stp":"expire_maker"}"#,
        ],
        &[
            accepted("a1"),
            rested("a1", "100.00", "2"),
            rejected("p1", 2, "post_only_would_cross"),
            rejected("p2", 3, "post_only_needs_resting_limit"),
            rejected("f1", 4, "fok_cannot_fill"),
            accepted("s1"),
            json!({"event": "cancelled", "id": "s1", "qty": "1", "reason": "stp"}),
            accepted("s2"),
            json!({"event": "cancelled", "id": "a1", "qty": "2", "reason": "stp"}),
            rested("s2", "100.00", "1"),
            book(json!([{"price": "100.00", "qty": "1", "orders": ["s2"]}]), json!([])),
        ],
    );
}

#[test]
fn size_bounds_and_fees_come_from_the_flags() {
    let args = ["--tick", "0.01", "--lot", "0.001", "--maker-fee-bps", "10", "--taker-fee-bps", "20"];
    let got = events(
        &[&args[..], &["--min-qty-lots", "100", "--max-qty-lots", "5000"]].concat(),
        &[
            r#"{"op":"place","id":"a","user":"alice","side":"sell","price":"100.75","qty":"0.5"}"#,
            r#"{"op":"place","id":"b","user":"bob","side":"buy","price":"101","qty":"0.099"}"#,
            r#"{"op":"place","id":"c","user":"bob","side":"buy","price":"101","qty":"5.001"}"#,
            r#"{"op":"place","id":"d","user":"bob","side":"buy","price":"101","qty":"1"}"#,
        ],
    );
    assert_eq!(got[2], rejected("b", 2, "qty_below_min"));
    assert_eq!(got[3], rejected("c", 3, "qty_above_max"));
    // 0.5 at 100.75 is 50.375 quote: maker 10 bps = 0.050375 and taker 20 bps = 0.10075, each
    // rounded down to the grid's quote unit (tick x lot = 0.00001).
    assert_eq!(
        got[5],
        json!({"event": "trade", "id": "d", "trade_id": 1, "maker": "a", "taker": "d", "side": "buy",
               "price": "100.75", "qty": "0.500", "maker_fee": "0.05037", "taker_fee": "0.10075"})
    );
}

#[test]
fn the_example_file_replays_as_documented() {
    let input = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/orders.jsonl")).unwrap();
    let lines: Vec<&str> = input.lines().collect();
    let got = events(&["--tick", "0.01", "--lot", "0.001", "--maker-fee-bps", "10", "--taker-fee-bps", "20"], &lines);
    let trades: Vec<(&str, &str, &str, &str)> = got
        .iter()
        .filter(|e| e["event"] == "trade")
        .map(|e| {
            (
                e["maker"].as_str().unwrap(),
                e["taker"].as_str().unwrap(),
                e["price"].as_str().unwrap(),
                e["qty"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        trades,
        [("a2", "c1", "100.75", "0.500"), ("a1", "c1", "101.00", "0.500"), ("b1", "d1", "100.50", "2.000")]
    );
    assert_eq!(got.last().unwrap(), &book(json!([]), json!([{"price": "101.00", "qty": "0.500", "orders": ["a1"]}])));
}

/// A deterministic pseudo-random order file: many users, a narrow band, every op.
fn busy_file(lines: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
    let mut out = String::new();
    for i in 0..lines as u64 {
        // Order `o{n}` belongs to USERS[n % 4]; cancels and amends mostly come from the owner
        // and name a recent order, so many of them find it.
        let user = USERS[(i % 4) as usize];
        let side = ["buy", "sell"][next(2) as usize];
        let price = format!("{}.{:02}", 99 + next(3), next(4) * 25);
        let qty = 1 + next(5);
        let ts = i * 3;
        let n = i.saturating_sub(1 + next(i.clamp(1, 20)));
        let target = format!("o{n}");
        let by = if next(5) == 0 { USERS[next(4) as usize] } else { USERS[(n % 4) as usize] };
        let line = match next(10) {
            0..=4 => format!(
                r#"{{"op":"place","id":"o{i}","user":"{user}","side":"{side}","price":"{price}","qty":"{qty}","ts":{ts}}}"#
            ),
            5 => format!(
                r#"{{"op":"place","id":"o{i}","user":"{user}","side":"{side}","price":"{price}","qty":"{qty}","tif":"gtd","expires_at":{},"ts":{ts}}}"#,
                ts + 1 + next(30)
            ),
            6 => format!(
                r#"{{"op":"place","id":"o{i}","user":"{user}","side":"{side}","type":"market","qty":"{qty}","ts":{ts}}}"#
            ),
            7 => format!(r#"{{"op":"cancel","id":"{target}","user":"{by}","ts":{ts}}}"#),
            8 => format!(r#"{{"op":"amend","id":"{target}","user":"{by}","price":"{price}","qty":"{qty}","ts":{ts}}}"#),
            _ => ["{\"op\":\"halt\"}", "{\"op\":\"resume\"}", "", "not json"][next(4) as usize].to_owned(),
        };
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn the_same_input_gives_byte_identical_output() {
    let input = busy_file(2_000);
    let first = hob(GRID, &input);
    let second = hob(GRID, &input);
    assert!(first.status.success() && second.status.success());
    assert_eq!(first.stdout, second.stdout);
    let out = String::from_utf8(first.stdout).unwrap();
    // The file is busy enough to mean something: it trades, rests, amends, expires and rejects.
    for event in
        ["\"trade\"", "\"rested\"", "\"amended\"", "\"expired\"", "\"cancelled\"", "\"rejected\"", "\"halted\""]
    {
        assert!(out.contains(event), "no {event} in the output");
    }
    // Every line is JSON and the book comes last.
    let last: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "book");
}

#[test]
fn a_client_order_id_is_echoed_on_acceptance_and_a_bad_one_is_refused() {
    let out = events(
        &["--tick", "0.01", "--lot", "1"],
        &[
            r#"{"op":"place","id":"o1","user":"alice","side":"buy","price":"100.50","qty":"2","client_order_id":"alice-7"}"#,
            r#"{"op":"place","id":"o2","user":"alice","side":"buy","price":"100.50","qty":"2","client_order_id":"no spaces allowed"}"#,
        ],
    );
    assert_eq!(out[0], json!({"event": "accepted", "id": "o1", "client_order_id": "alice-7"}));
    assert_eq!(out[2]["event"], "rejected");
    assert_eq!(out[2]["reason"], "malformed");
    assert_eq!(out[2]["line"], 2);
}
