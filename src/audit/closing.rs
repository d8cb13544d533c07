//! The closing records of a call ([`AuditRun::run_finished`]): every record a
//! finished call leaves, composed and measured before any is written, and kept within
//! the space reserved for them when the run started ([`CLOSING_RESERVE`]).
//!
//! The budget is shared out in order of importance: `run_end` (at its widest) and
//! `limit_exceeded` first, then requests that passed every check (sent, or about to
//! be), runtime denials, other requests, accesses, and sleeps last; what does not fit
//! is counted in `run_end`.
//!
//! # Security
//!
//! A plugin chooses how much it tries and can fill the disk before it returns; the
//! reserve and this order mean it still gets its `run_end`, and a request it sent is
//! never pushed out of the log by sleeps or denials.

use super::AuditError;
use super::bounds::{
    CLOSING_RESERVE, MAX_ACCESS_PATH, MAX_LOGGED_ACCESSES, MAX_LOGGED_DENIALS, MAX_LOGGED_SLEEPS,
    RECORD_HEAD, bounded,
};
use super::log::AuditRun;
use super::prepared::Redacted;
use super::record::{Event, LimitFields, RunEnd, RunOutcome};
use crate::runtime::{RunReport, RuntimeError};

impl AuditRun<'_> {
    /// Everything a finished call says: an `access` record for each use (audit mode),
    /// an `effect` record for each request and for the first [`MAX_LOGGED_SLEEPS`]
    /// sleeps, a `runtime_deny` for each of the first [`MAX_LOGGED_DENIALS`] denials,
    /// a `limit_exceeded` when a limit ended the call, and `run_end` with `exit_code`
    /// (which counts what was not written one by one, and every sleep).
    ///
    /// What one run adds to the log is bounded, so the space reserved for it before
    /// the plugin ran ([`CLOSING_RESERVE`]) holds it: each record is composed and
    /// measured before any is written, and they are kept within the reserve in the
    /// order its documentation gives. A plugin that fills the disk and then makes a
    /// thousand escape attempts still gets its `run_end`, and a request it sent is
    /// never pushed out by sleeps or denials.
    ///
    /// # Errors
    ///
    /// Any failure of these or an earlier record.
    pub fn run_finished(&self, report: &RunReport, exit_code: u8) -> Result<(), AuditError> {
        let error = report.result.as_ref().err();
        let limit = error.and_then(|e| e.limit());
        let sleeps: Vec<&crate::net::EffectRecord> =
            report.effects.iter().filter(|e| is_sleep(e)).collect();
        let mut end = RunEnd {
            outcome: RunOutcome::of(&report.result),
            exit_code,
            fuel_consumed: report.fuel_consumed,
            duration_ms: (report.duration.as_secs_f64() * 1e6).round() / 1e3,
            output_bytes: report.output_bytes,
            error: error.map(|e| bounded(&e.to_string()).into_owned()),
            runtime_denials_dropped: None,
            effects_dropped: None,
            accesses_dropped: None,
            sleeps: (!sleeps.is_empty()).then_some(sleeps.len() as u64),
            slept_ms: (!sleeps.is_empty()).then(|| {
                sleeps
                    .iter()
                    .fold(0u64, |sum, e| sum.saturating_add(e.sleep_ms.unwrap_or(0)))
            }),
            signal: error.and_then(RuntimeError::worker_signal),
        };
        let dropped = |n: u64| (n > 0).then_some(n);
        let accesses = &report.accesses.recorded;
        let denials = &report.runtime_denials.recorded;
        if limit.is_none() && report.effects.is_empty() && accesses.is_empty() && denials.is_empty()
        {
            // `run_end` alone (at most about 17 KiB with its error text): it fits.
            end.runtime_denials_dropped = dropped(report.runtime_denials.dropped);
            end.accesses_dropped = dropped(report.accesses.dropped);
            return self.run_end(&end);
        }
        let shared = (self.prepared().common()?.len() as u64)
            .saturating_add(RECORD_HEAD)
            .saturating_add(self.who_len(Event::RunEnd)?);
        let cost = |fields: &Redacted| shared.saturating_add(fields.as_str().len() as u64);
        // `run_end` (at its longest: every count at its widest) and `limit_exceeded`
        // come out of the reserve first.
        let widest = RunEnd {
            runtime_denials_dropped: Some(u64::MAX),
            effects_dropped: Some(u64::MAX),
            accesses_dropped: Some(u64::MAX),
            ..end.clone()
        };
        let mut room = CLOSING_RESERVE.saturating_sub(cost(&self.fields(Event::RunEnd, &widest)?));
        let limit_fields = match limit {
            Some((limit, value)) => {
                let fields = self.fields(Event::LimitExceeded, &LimitFields { limit, value })?;
                room = room.saturating_sub(cost(&fields));
                Some(fields)
            }
            None => None,
        };

        // Every closing record, composed (and so redacted) now, in the order of
        // importance in which the reserve is shared out.
        let mut access_fields = Vec::new();
        for access in accesses.iter().take(MAX_LOGGED_ACCESSES) {
            let mut access = access.clone();
            access.path = crate::escape::cut(&access.path, MAX_ACCESS_PATH).into_owned();
            access.host_path = access
                .host_path
                .map(|p| crate::escape::cut(&p, MAX_ACCESS_PATH).into_owned());
            access_fields.push(Some(self.fields(Event::Access, &access)?));
        }
        let mut effect_fields = Vec::new();
        let mut logged_sleeps = 0;
        for effect in &report.effects {
            let logged = !is_sleep(effect) || {
                logged_sleeps += 1;
                logged_sleeps <= MAX_LOGGED_SLEEPS
            };
            effect_fields.push(if logged {
                Some(self.fields(Event::Effect, effect)?)
            } else {
                None
            });
        }
        let mut deny_fields = Vec::new();
        for deny in denials.iter().take(MAX_LOGGED_DENIALS) {
            deny_fields.push(Some(self.fields(Event::RuntimeDeny, deny)?));
        }
        let mut share = |slot: &mut Option<Redacted>| {
            if let Some(fields) = slot {
                let needed = cost(fields);
                if needed <= room {
                    room -= needed;
                } else {
                    *slot = None;
                }
            }
        };
        let share_effects =
            |wanted: fn(&crate::net::EffectRecord) -> bool,
             slots: &mut [Option<Redacted>],
             share: &mut dyn FnMut(&mut Option<Redacted>)| {
                for (effect, slot) in report.effects.iter().zip(slots) {
                    if wanted(effect) {
                        share(slot);
                    }
                }
            };
        share_effects(was_sent, &mut effect_fields, &mut share);
        deny_fields.iter_mut().for_each(&mut share);
        share_effects(
            |e| !is_sleep(e) && !was_sent(e),
            &mut effect_fields,
            &mut share,
        );
        access_fields.iter_mut().for_each(&mut share);
        share_effects(is_sleep, &mut effect_fields, &mut share);

        let unwritten = |slots: &[Option<Redacted>]| slots.iter().filter(|s| s.is_none()).count();
        let requests_unwritten = report
            .effects
            .iter()
            .zip(&effect_fields)
            .filter(|(e, slot)| !is_sleep(e) && slot.is_none())
            .count();
        end.effects_dropped = dropped(requests_unwritten as u64);
        // Dropped before the call ended, past the cap, and for want of room.
        let not_written = |before: u64, recorded: usize, slots: &[Option<Redacted>]| {
            dropped(
                before
                    .saturating_add((recorded - slots.len()) as u64)
                    .saturating_add(unwritten(slots) as u64),
            )
        };
        end.runtime_denials_dropped =
            not_written(report.runtime_denials.dropped, denials.len(), &deny_fields);
        end.accesses_dropped = not_written(report.accesses.dropped, accesses.len(), &access_fields);
        let end = self.fields(Event::RunEnd, &end)?;

        // Written in the log's order, under one lock with one `write`.
        let mut records: Vec<(Event, &Redacted)> = Vec::new();
        records.extend(access_fields.iter().flatten().map(|f| (Event::Access, f)));
        records.extend(effect_fields.iter().flatten().map(|f| (Event::Effect, f)));
        records.extend(
            deny_fields
                .iter()
                .flatten()
                .map(|f| (Event::RuntimeDeny, f)),
        );
        records.extend(limit_fields.iter().map(|f| (Event::LimitExceeded, f)));
        records.push((Event::RunEnd, &end));
        self.emit_all(&records)
    }

    /// Bytes `who` adds to the next record, when it is the run's first.
    fn who_len(&self, event: Event) -> Result<u64, AuditError> {
        if !self.first.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(0);
        }
        let who = self.prepared().who(event)?;
        Ok(",\"who\":".len() as u64 + who.as_str().len() as u64)
    }
}

/// Whether `effect` is a `Sleep`.
fn is_sleep(effect: &crate::net::EffectRecord) -> bool {
    effect.kind == crate::net::effects::KIND_SLEEP
}

/// Whether `effect` is a request that passed every check (it was sent, or was about
/// to be when it failed).
fn was_sent(effect: &crate::net::EffectRecord) -> bool {
    effect.passed(crate::net::effects::CHECK_ADDRESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditLog, PluginInfo, Redactor, Rotation, RunStart};
    use crate::limits::Limits;
    use crate::runtime::RuntimeDeny;
    use std::sync::Arc;
    use std::time::Duration;

    fn request(url: String, sent: bool) -> crate::net::EffectRecord {
        use crate::net::effects::{CHECK_ADDRESS, CHECK_URL, EffectOutcome};
        crate::net::EffectRecord {
            kind: "http_get",
            url: Some(url),
            address: sent.then(|| "127.0.0.1:8000".to_owned()),
            status: sent.then_some(200),
            bytes_out: 0,
            bytes_in: 0,
            duration_ms: 1.0,
            rule: "plugins.p.net.allow[0]".into(),
            checked: Some(if sent {
                vec![CHECK_URL, CHECK_ADDRESS]
            } else {
                vec![]
            }),
            outcome: if sent {
                EffectOutcome::Performed
            } else {
                EffectOutcome::Denied
            },
            reason: (!sent).then(|| "\u{1}".repeat(512)),
            limit: None,
            dropped_headers: Vec::new(),
            sleep_ms: None,
        }
    }

    fn sleep_record() -> crate::net::EffectRecord {
        crate::net::EffectRecord {
            kind: crate::net::effects::KIND_SLEEP,
            checked: None,
            url: None,
            address: None,
            status: None,
            reason: None,
            sleep_ms: Some(5),
            ..request(String::new(), true)
        }
    }

    fn report(effects: Vec<crate::net::EffectRecord>) -> RunReport {
        RunReport {
            result: Ok(crate::abi::ExecuteResult::Success("ok".into())),
            stdout: Vec::new(),
            stderr: Vec::new(),
            fuel_consumed: 1,
            duration: Duration::from_millis(1),
            output_bytes: 2,
            runtime_denials: crate::runtime::observed::RuntimeDenials::default(),
            effects,
            accesses: crate::runtime::observed::Accesses::default(),
        }
    }

    /// Runs `report` through `run_finished` after a `run_start`, and returns the
    /// records it wrote and how many bytes they took.
    fn finish(report: &RunReport) -> (Vec<serde_json::Value>, u64) {
        finish_with(report, Redactor::default(), &"v".repeat(4096)).0
    }

    /// [`finish`] with a redactor and a plugin version; also the closing lines.
    fn finish_with(
        report: &RunReport,
        redactor: Redactor,
        version: &str,
    ) -> ((Vec<serde_json::Value>, u64), Vec<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::open(&path, Rotation::Never).unwrap();
        let mut run = log.run().unwrap();
        run.set_redactor(Arc::new(redactor));
        run.set_plugin(&PluginInfo::new("p", Some(version.to_owned()), [7; 32]))
            .unwrap();
        let (args, limits) = (Vec::new(), Limits::default());
        run.run_start(RunStart::for_test(&args, &limits)).unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        run.run_finished(report, 0).unwrap();
        drop(run);
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let after = text.len() as u64;
        let records = text
            .lines()
            .skip(1)
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let lines = text.lines().skip(1).map(str::to_owned).collect();
        ((records, after - before), lines)
    }

    #[test]
    fn a_request_record_is_at_most_ten_kib_besides_the_host_paths() {
        use crate::net::effects::{
            MAX_DROPPED_HEADERS, MAX_RECORDED_HEADER, MAX_RECORDED_REASON, MAX_RECORDED_URL,
        };
        // Every string at its longest, escaped six-fold where the plugin can make it
        // so, and full of a granted value whose marker is as long as markers get.
        let places = crate::audit::redact::MAX_REDACTIONS + 1;
        let worst = |fill: &str, len: usize| {
            let text = format!("{}{}", fill.repeat(len), "abcd".repeat(places));
            let cut = crate::escape::cut(&text, len).into_owned();
            format!("{}{}", &cut[..cut.len() - 8], "abcd".repeat(places))
        };
        let mut record = request(worst("a", MAX_RECORDED_URL), true);
        record.reason = Some(worst("\u{1}", MAX_RECORDED_REASON));
        record.dropped_headers = (0..MAX_DROPPED_HEADERS)
            .map(|_| worst("\u{1}", MAX_RECORDED_HEADER))
            .chain(["...[cut]".to_owned()])
            .collect();
        let redactor = Redactor::new([("N".repeat(200), "abcd")]);
        let version = worst("\u{1}", 4096);
        let ((records, _), lines) = finish_with(&report(vec![record]), redactor, &version);
        assert_eq!(records[0]["event"], "effect");
        assert!(lines[0].contains("<redacted:NNNN"), "{}", lines[0]);
        // The module and the policy have no paths here.
        assert!(lines[0].len() <= 10 * 1024, "{}", lines[0].len());
    }

    #[test]
    fn sleeps_never_take_the_place_of_a_request() {
        let mut effects: Vec<_> = (0..200).map(|_| sleep_record()).collect();
        effects.push(request("http://127.0.0.1:8000/".into(), true));
        let (records, _) = finish(&report(effects));
        let kinds: Vec<&str> = records
            .iter()
            .filter(|r| r["event"] == "effect")
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.len(), MAX_LOGGED_SLEEPS + 1);
        assert_eq!(kinds.last(), Some(&"http_get"));
        let end = records.last().unwrap();
        assert_eq!(end["event"], "run_end");
        assert_eq!(end["sleeps"], 200);
        assert_eq!(end["slept_ms"], 1000);
        assert!(end.get("effects_dropped").is_none(), "{end}");
    }

    #[test]
    fn every_request_of_a_call_is_recorded_within_the_reserve() {
        // 256 requests that passed every check, each with a URL of the longest kept.
        let url = format!("http://127.0.0.1:8000/{}", "a".repeat(4096));
        let url = crate::escape::cut(&url, crate::net::effects::MAX_RECORDED_URL).into_owned();
        let effects = (0..256).map(|_| request(url.clone(), true)).collect();
        let (records, bytes) = finish(&report(effects));
        let written = records.iter().filter(|r| r["event"] == "effect").count();
        assert_eq!(written, 256);
        assert!(bytes <= CLOSING_RESERVE, "{bytes}");
    }

    #[test]
    fn closing_records_that_would_not_fit_the_reserve_are_counted_sent_requests_first() {
        // Refused requests whose URLs escape to six bytes a byte, then sent ones, and
        // runtime denials of the longest escaped paths: more than the reserve holds.
        let wide = format!("http://x/{}", "\u{1}".repeat(2048));
        let mut effects: Vec<_> = (0..200).map(|_| request(wide.clone(), false)).collect();
        effects.extend((0..50).map(|i| request(format!("http://127.0.0.1:8000/{i}"), true)));
        effects.extend((0..4).map(|_| sleep_record()));
        let mut report = report(effects);
        let escaped = "\u{1}".repeat(crate::runtime::observed::MAX_DENIED_PATH);
        report.runtime_denials.recorded = (0..MAX_LOGGED_DENIALS)
            .map(|_| RuntimeDeny {
                call: "path_rename",
                path: escaped.clone(),
                target: Some(escaped.clone()),
                preopen: None,
                errno: crate::runtime::observed::Refusal::Perm,
                reason: None,
            })
            .collect();
        let (records, bytes) = finish(&report);
        let denials = records
            .iter()
            .filter(|r| r["event"] == "runtime_deny")
            .count();
        assert_eq!(denials, MAX_LOGGED_DENIALS);
        assert!(bytes <= CLOSING_RESERVE, "{bytes}");
        let effects: Vec<&serde_json::Value> =
            records.iter().filter(|r| r["event"] == "effect").collect();
        let sent = effects
            .iter()
            .filter(|e| e["kind"] == "http_get" && e["outcome"] == "performed")
            .count();
        let refused = effects.iter().filter(|e| e["outcome"] == "denied").count();
        assert_eq!(sent, 50);
        assert!(refused < 200, "{refused}");
        let end = records.last().unwrap();
        assert_eq!(end["event"], "run_end");
        assert_eq!(end["effects_dropped"], 200 - refused as u64, "{end}");
        assert_eq!(end["sleeps"], 4, "{end}");
        // Still in the call's order.
        let first_sent = effects.iter().position(|e| e["outcome"] == "performed");
        assert_eq!(first_sent, Some(refused));
    }
}
