//! What an audit found: per check, how many things it looked at and every violation, each
//! naming its stream and version where it has one; rendered as text for people and as JSON
//! (shape `hob.audit.v1`, documented in README.md) for tools.

use std::fmt::Write as _;

use serde_json::{json, Value};

/// The checks, in report order. Their names are part of the JSON shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Check {
    HashChain,
    Replay,
    Conservation,
    NoOverfill,
    BookNotCrossed,
    FillsMatchTrades,
    SettledOnce,
    VoidsCompensated,
    OnChainBalances,
}

impl Check {
    pub const ALL: &'static [Check] = &[
        Check::HashChain,
        Check::Replay,
        Check::Conservation,
        Check::NoOverfill,
        Check::BookNotCrossed,
        Check::FillsMatchTrades,
        Check::SettledOnce,
        Check::VoidsCompensated,
        Check::OnChainBalances,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Check::HashChain => "hash_chain",
            Check::Replay => "replay",
            Check::Conservation => "conservation",
            Check::NoOverfill => "no_overfill",
            Check::BookNotCrossed => "book_not_crossed",
            Check::FillsMatchTrades => "fills_match_trades",
            Check::SettledOnce => "settled_once",
            Check::VoidsCompensated => "voids_compensated",
            Check::OnChainBalances => "on_chain_balances",
        }
    }

    /// What `checked` counts for this check.
    pub fn unit(self) -> &'static str {
        match self {
            Check::HashChain | Check::Replay | Check::BookNotCrossed => "events",
            Check::Conservation => "assets",
            Check::OnChainBalances => "balances",
            Check::NoOverfill | Check::FillsMatchTrades => "trades",
            Check::SettledOnce | Check::VoidsCompensated => "trades",
        }
    }
}

/// One broken invariant. `stream` and `version` are absent only for a global fact (the
/// conservation of an asset sums every user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub check: Check,
    pub stream: Option<String>,
    pub version: Option<u64>,
    pub message: String,
}

/// Counts and violations as the audit goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Per check (by `Check as usize`): counted for every event of a replay, so a plain array.
    checked: [u64; Check::ALL.len()],
    /// Checks that ran (a check not run, like the on-chain comparison without `--rpc`, is
    /// left out of the report rather than shown as passing).
    ran: [bool; Check::ALL.len()],
    violations: Vec<Violation>,
}

impl Findings {
    /// Marks `check` as run, having looked at `n` more things.
    pub fn count(&mut self, check: Check, n: u64) {
        self.checked[check as usize] += n;
        self.ran[check as usize] = true;
    }

    pub fn violate(&mut self, check: Check, stream: Option<&str>, version: Option<u64>, message: impl Into<String>) {
        self.ran[check as usize] = true;
        self.violations.push(Violation { check, stream: stream.map(str::to_owned), version, message: message.into() });
    }

    /// Adds what another part of the audit found (a lane's findings), after this one's.
    pub fn merge(&mut self, other: Findings) {
        for (mine, theirs) in self.checked.iter_mut().zip(other.checked) {
            *mine += theirs;
        }
        for (mine, theirs) in self.ran.iter_mut().zip(other.ran) {
            *mine |= theirs;
        }
        self.violations.extend(other.violations);
    }

    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    pub fn of(&self, check: Check) -> impl Iterator<Item = &Violation> {
        self.violations.iter().filter(move |v| v.check == check)
    }

    pub fn checked(&self, check: Check) -> u64 {
        self.checked[check as usize]
    }

    pub fn ran(&self, check: Check) -> bool {
        self.ran[check as usize]
    }

    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The whole audit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub streams: u64,
    pub events: u64,
    pub findings: Findings,
    /// What "settled" meant in the on-chain comparison, when it ran.
    pub settled_definition: Option<&'static str>,
    /// Off-chain settled balances per (user, asset) (`settled.rs`), for the on-chain comparison.
    pub settled: super::settled::Settled,
    /// Confirmed trades whose settled effect could not be computed.
    pub settled_errors: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.findings.ok()
    }

    /// The readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "hob audit: {} streams, {} events", self.streams, self.events);
        for &check in Check::ALL.iter().filter(|c| self.findings.ran(**c)) {
            let bad: Vec<&Violation> = self.findings.of(check).collect();
            let verdict = if bad.is_empty() { "PASS" } else { "FAIL" };
            let _ =
                write!(out, "{verdict} {:<19} {} {} checked", check.name(), self.findings.checked(check), check.unit());
            if !bad.is_empty() {
                let _ = write!(out, ", {} violation{}", bad.len(), if bad.len() == 1 { "" } else { "s" });
            }
            out.push('\n');
            for v in bad {
                let place = match (&v.stream, v.version) {
                    (Some(s), Some(n)) => format!("{s} v{n}: "),
                    (Some(s), None) => format!("{s}: "),
                    _ => String::new(),
                };
                let _ = writeln!(out, "  - {place}{}", v.message);
            }
        }
        if let Some(settled) = self.settled_definition {
            let _ = writeln!(out, "settled balance: {settled}");
        }
        let total = self.findings.violations().len();
        match total {
            0 => out.push_str("result: PASS\n"),
            n => {
                let _ = writeln!(out, "result: FAIL ({n} violation{})", if n == 1 { "" } else { "s" });
            }
        }
        out
    }

    /// The `hob.audit.v1` JSON shape (README.md, "Auditing").
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = Check::ALL
            .iter()
            .filter(|c| self.findings.ran(**c))
            .map(|&check| {
                let violations: Vec<Value> = self
                    .findings
                    .of(check)
                    .map(|v| json!({ "stream": v.stream, "version": v.version, "message": v.message }))
                    .collect();
                json!({
                    "name": check.name(),
                    "ok": violations.is_empty(),
                    "checked": self.findings.checked(check),
                    "unit": check.unit(),
                    "violations": violations,
                })
            })
            .collect();
        json!({
            "format": "hob.audit.v1",
            "ok": self.ok(),
            "streams": self.streams,
            "events": self.events,
            "checks": checks,
            "settled_definition": self.settled_definition,
        })
    }
}

#[cfg(test)]
mod tests {
    // Test code unwraps: a failure should fail the test.
    use super::*;

    #[test]
    fn a_violation_fails_its_check_and_the_report_names_stream_and_version() {
        // given one check that passed and one that found a broken link
        let mut findings = Findings::default();
        findings.count(Check::Replay, 3);
        findings.count(Check::HashChain, 3);
        findings.violate(Check::HashChain, Some("market:BTC-USDT"), Some(2), "bad hash");
        let report = Report { streams: 1, events: 3, findings, ..Report::default() };

        // then the report fails, naming the stream and version, in text and JSON
        assert!(!report.ok());
        let text = report.to_text();
        assert!(text.contains("FAIL hash_chain"), "{text}");
        assert!(text.contains("market:BTC-USDT v2: bad hash"), "{text}");
        assert!(text.contains("PASS replay"), "{text}");
        let json = report.to_json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][0]["name"], "hash_chain");
        assert_eq!(json["checks"][0]["violations"][0]["version"], 2);
        assert_eq!(json["checks"][1]["ok"], true);
        // and a check that never ran is not reported as passing
        assert!(!text.contains("on_chain_balances"));
    }
}
