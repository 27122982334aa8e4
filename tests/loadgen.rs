//! `hob loadgen`: the open-loop schedule and latency accounting as specifications, and a short
//! run of signed orders against a real `hob serve` (this crate's binary, started the way
//! `--spawn-server` starts it) whose every acknowledged order is then looked up on the server.
// Test code unwraps because a failure should fail the test.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use hob::loadgen::report::{Report, ReportSettings};
use hob::loadgen::schedule::{send_times, Arrivals};
use hob::loadgen::setup::Rest;
use hob::loadgen::stats::{InFlight, Recorder};
use hob::loadgen::{run, LoadConfig, SpawnedServer};

/// One `hob serve` for this test binary. Started on a thread with its own actix system (the
/// readiness check uses awc); held in a static, so the spawn's watchdog shell is what stops it
/// once this process is gone.
fn server() -> &'static SpawnedServer {
    static SERVER: OnceLock<SpawnedServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        std::thread::spawn(|| {
            actix_rt::System::new().block_on(SpawnedServer::start(env!("CARGO_BIN_EXE_hob").as_ref(), None))
        })
        .join()
        .unwrap()
        .unwrap()
    })
}

fn settings(rate: f64) -> ReportSettings {
    ReportSettings {
        market: "BTC-USDT".into(),
        clients: 1,
        arrivals: Arrivals::Uniform,
        offered_rate_per_s: rate,
        duration_s: 0.01,
        warmup_s: 0.0,
        answered_over_s: 0.01,
    }
}

#[test]
fn send_times_come_from_the_rate_alone_so_a_stalled_client_shows_the_stall_in_its_latency() {
    // Given a client scheduled to send 10 orders 1 ms apart from t0,
    let due = send_times(1_000.0, Arrivals::Uniform, 0.0, 1, Duration::from_millis(10));
    assert_eq!(due.len(), 10);
    assert_eq!(due[9], Duration::from_millis(9));
    // when it stalls for 50 ms, then sends all ten at once and the server answers each 1 ms later,
    let t0 = Instant::now();
    let (sent_at, answered_at) = (t0 + Duration::from_millis(50), t0 + Duration::from_millis(51));
    let (mut in_flight, mut recorder) = (InFlight::default(), Recorder::default());
    for (i, d) in due.iter().enumerate() {
        in_flight.sent(i, t0 + *d, sent_at, true);
        recorder.sent(true);
    }
    for i in 0..due.len() {
        let answered = in_flight.answered(i, answered_at).unwrap();
        recorder.answered(answered, answered_at, Ok(()));
    }
    let report = Report::new(settings(1_000.0), due.len() as u64, in_flight.outstanding_measured(), &recorder);
    // then the ack latency runs from the schedule and carries the stall (42 to 51 ms),
    assert!((45_900..=47_100).contains(&report.ack_latency.p50_us), "{:?}", report.ack_latency);
    assert!((50_900..=51_100).contains(&report.ack_latency.max_us), "{:?}", report.ack_latency);
    // while the service time, from the actual send, is the server's 1 ms alone.
    assert!((990..=1_010).contains(&report.service_latency.max_us), "{:?}", report.service_latency);
    assert_eq!((report.sent, report.acked, report.errors, report.in_flight_at_end), (10, 10, 0, 0));
}

#[test]
fn a_later_order_is_not_delayed_by_an_unanswered_earlier_one() {
    // Given two orders scheduled 10 ms apart, the first never answered,
    let t0 = Instant::now();
    let (mut in_flight, mut recorder) = (InFlight::default(), Recorder::default());
    in_flight.sent(0, t0, t0, true);
    in_flight.sent(1, t0 + Duration::from_millis(10), t0 + Duration::from_millis(10), true);
    recorder.sent(true);
    recorder.sent(true);
    // when only the second is answered, 2 ms after its own schedule,
    let at = t0 + Duration::from_millis(12);
    let answered = in_flight.answered(1, at).unwrap();
    recorder.answered(answered, at, Ok(()));
    // then it counts 2 ms, and the first stays in flight: sent = acked + errors + in flight.
    let report = Report::new(settings(100.0), 2, in_flight.outstanding_measured(), &recorder);
    assert!((1_990..=2_010).contains(&report.ack_latency.max_us), "{:?}", report.ack_latency);
    assert_eq!((report.sent, report.acked, report.in_flight_at_end), (2, 1, 1));
}

/// Polls `path` as the holder of `token` until it answers 200.
async fn found(rest: &Rest, token: &str, path: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match rest.get::<Value>(path, Some(token)).await {
            Ok(v) => return v,
            Err(e) => assert!(Instant::now() < deadline, "{path} never answered: {e}"),
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_short_run_of_signed_orders_is_acknowledged_trades_and_its_counts_add_up() {
    // Given a real hob serve,
    let server = server();
    // when three clients offer 90 signed orders/s for 2 s after a 0.5 s warm-up,
    let config = LoadConfig {
        url: server.base_url().to_owned(),
        clients: 3,
        rate_per_s: 90.0,
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(500),
        ..LoadConfig::default()
    };
    let outcome = run(&config).await.unwrap();
    let report = &outcome.report;

    // then the counts add up and nothing was refused,
    assert!(report.scheduled > 100, "{report}");
    assert_eq!(report.sent, report.acked + report.errors + report.in_flight_at_end, "{report}");
    assert_eq!(report.scheduled, report.sent + report.not_sent, "{report}");
    assert_eq!((report.errors, report.not_sent), (0, 0), "{report}");
    assert_eq!(report.ack_latency.count, report.acked + report.errors);
    assert!(report.ack_latency.p50_us > 0 && report.ack_latency.p50_us <= report.ack_latency.max_us);
    let acked_ids: usize = outcome.clients.iter().map(|c| c.run.acked_order_ids.len()).sum();
    assert!(acked_ids as u64 >= report.acked, "warm-up acks are listed too");

    // every order reported as acknowledged is on the server,
    let rest = Rest::new(server.base_url());
    for client in &outcome.clients {
        assert!(client.run.lost.is_none(), "{:?}", client.run.lost);
        for id in &client.run.acked_order_ids {
            let order = found(&rest, &client.token, &format!("/api/v1/orders/{id}")).await;
            assert_eq!(order["order_id"], id.as_str());
            assert_eq!(order["market"], "BTC-USDT");
        }
    }
    // and the flow traded: the traders have fills.
    let mut fills = 0;
    for client in &outcome.clients {
        let body = found(&rest, &client.token, "/api/v1/fills").await;
        fills += body.as_array().map_or(0, Vec::len);
    }
    assert!(fills > 0, "no fills among the loadgen's traders");
}
