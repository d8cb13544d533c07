//! Performing a plugin's host effects (`HttpGet`, `HttpPost`, `Sleep`) in the
//! runtime's effect loop, and the `effect` record of each (`AUDIT.md`).
//!
//! [`EffectRunner::perform`] takes one effect and returns the [`EffectResult`] the
//! plugin is resumed with, or [`Answer::DeadlinePassed`] when the call's own
//! wall-clock limit ran out meanwhile (the call then ends as a timeout, exit 124).
//! Every effect, performed, denied or failed, leaves an [`EffectRecord`].
//!
//! # Security
//!
//! The order is the point: count the request against `max_requests`; check the URL
//! ([`NetAccess::check_url`]); drop the headers that steer the connection; resolve
//! the name once; check every address ([`NetAccess::check_addresses`]); connect
//! only to a checked address, within `request_timeout` and never past the call's
//! deadline; read at most `max_response` bytes, and never more than the plugin's
//! memory ceiling could take (a `Content-Length` past it is refused unread); hand
//! the answer over encoded straight from those bytes. Records carry no query (unless
//! `log_args`), no body and no header value; each says which of the per-request
//! checks the request passed (`checked`), so no record implies a check that did not
//! run. The strings the plugin chose are kept as they are here, cut to their caps:
//! the audit layer redacts the values of its granted variables from every record
//! (`crate::audit::redact`).

use super::client::{self, Failure, Outgoing};
use super::gate::{NetAccess, RULE_URL, record_url};
use crate::abi::{Effect, EffectResult};
use crate::limits::Limits;
use serde::Serialize;
use std::time::{Duration, Instant};

/// Longest URL a record keeps, in bytes; longer ones are cut and marked.
pub const MAX_RECORDED_URL: usize = 2048;

/// Longest `reason` a record keeps, in bytes; longer ones are cut and marked.
pub const MAX_RECORDED_REASON: usize = 512;

/// Most header names `dropped_headers` keeps (each distinct, cut at
/// [`MAX_RECORDED_HEADER`] bytes); more are marked by a last `...[cut]`.
pub const MAX_DROPPED_HEADERS: usize = 4;

/// Longest header name `dropped_headers` keeps, in bytes.
pub const MAX_RECORDED_HEADER: usize = 32;

/// `kind` of a `Sleep` effect's record.
pub const KIND_SLEEP: &str = "sleep";

/// In `checked`: the request passed the URL check ([`NetAccess::check_url`]: scheme,
/// host and port declared, granted and allowed, no deny entry).
pub const CHECK_URL: &str = "url";

/// In `checked`: every address of the request passed the address check
/// ([`NetAccess::check_addresses`]), and the request was sent or about to be.
pub const CHECK_ADDRESS: &str = "address";

/// `outcome` of an `effect` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectOutcome {
    /// warden performed it (whatever the status).
    Performed,
    /// A check refused it; nothing was sent.
    Denied,
    /// It did not complete (resolution, connection, TLS, a limit, the call's
    /// deadline): `checked` says which checks it had passed by then.
    Failed,
}

impl EffectOutcome {
    /// The name used in records and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            EffectOutcome::Performed => "performed",
            EffectOutcome::Denied => "denied",
            EffectOutcome::Failed => "failed",
        }
    }
}

/// One `effect` record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EffectRecord {
    /// `http_get`, `http_post` or `sleep`.
    pub kind: &'static str,
    /// Scheme, host, port and path (query and fragment only with `log_args`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The address connected to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The response status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Request body bytes sent.
    pub bytes_out: u64,
    /// Response body bytes received.
    pub bytes_in: u64,
    /// Wall time of the effect, milliseconds.
    pub duration_ms: f64,
    /// The rule that let it through or refused it.
    pub rule: String,
    /// For requests: the per-request checks it passed, in order ([`CHECK_URL`], then
    /// [`CHECK_ADDRESS`]); a check that refused it or never ran is not listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked: Option<Vec<&'static str>>,
    /// What happened.
    pub outcome: EffectOutcome,
    /// Why (for denied and failed effects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The limit that ended it, when one did (`max_requests`, `max_response`,
    /// `memory` (an answer the plugin's memory could not hold), `request_timeout`,
    /// `timeout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<&'static str>,
    /// Names of the plugin's headers warden dropped (those that steer the connection).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dropped_headers: Vec<String>,
    /// For `sleep`: how long the plugin asked for, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleep_ms: Option<u64>,
}

impl EffectRecord {
    fn new(kind: &'static str) -> EffectRecord {
        EffectRecord {
            kind,
            url: None,
            address: None,
            status: None,
            bytes_out: 0,
            bytes_in: 0,
            duration_ms: 0.0,
            rule: crate::grant::NO_RULE.into(),
            checked: (kind != KIND_SLEEP).then(Vec::new),
            outcome: EffectOutcome::Performed,
            reason: None,
            limit: None,
            dropped_headers: Vec::new(),
            sleep_ms: None,
        }
    }

    /// Whether the request passed `check` ([`CHECK_URL`], [`CHECK_ADDRESS`]).
    pub fn passed(&self, check: &str) -> bool {
        self.checked.as_ref().is_some_and(|c| c.contains(&check))
    }

    /// The destination as tables show it (`https://host:443`), or the kind.
    pub fn destination(&self) -> String {
        match &self.url {
            Some(url) => destination_of(url).unwrap_or(url).to_owned(),
            None => self.kind.to_owned(),
        }
    }
}

/// `scheme://host:port` of a URL as records show it (everything before the path), or
/// `None` when it has no `://`. One reading for records, summaries and suggestions.
pub fn destination_of(url: &str) -> Option<&str> {
    let start = url.find("://")? + 3;
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    Some(&url[..end])
}

/// What to resume the plugin with.
#[derive(Debug)]
pub enum Answer {
    /// Resume with this.
    Resume(EffectResult),
    /// Resume with this message, already encoded (an HTTP answer, written straight
    /// from the response's bytes: [`crate::abi::encode`]).
    Message(Vec<u8>),
    /// The call's own wall-clock limit ran out: end the call as a timeout.
    DeadlinePassed,
}

/// Performs the effects of one call, counting its requests.
pub struct EffectRunner<'a> {
    access: &'a NetAccess,
    limits: &'a Limits,
    requests: u32,
    /// Every effect of the call so far, in order.
    pub records: Vec<EffectRecord>,
}

impl<'a> EffectRunner<'a> {
    /// A runner for one call.
    pub fn new(access: &'a NetAccess, limits: &'a Limits) -> EffectRunner<'a> {
        EffectRunner {
            access,
            limits,
            requests: 0,
            records: Vec::new(),
        }
    }

    /// Performs `effect`; the call's wall-clock limit ends at `deadline`.
    pub fn perform(&mut self, effect: &Effect, deadline: Option<Instant>) -> Answer {
        let started = Instant::now();
        let mut record = EffectRecord::new(effect.kind());
        let answer = match effect {
            Effect::Sleep { duration_ms, .. } => {
                record.sleep_ms = Some(*duration_ms);
                sleep(*duration_ms, deadline, &mut record)
            }
            Effect::HttpGet { url, headers, .. } => {
                self.http(http_get(), url, headers, None, None, deadline, &mut record)
            }
            Effect::HttpPost {
                url,
                body,
                content_type,
                headers,
                ..
            } => self.http(
                http_post(),
                url,
                headers,
                Some(body.as_bytes()),
                Some(content_type.as_deref().unwrap_or("application/json")),
                deadline,
                &mut record,
            ),
        };
        record.duration_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
        if let Some(reason) = &record.reason {
            record.reason = Some(crate::escape::cut(reason, MAX_RECORDED_REASON).into_owned());
        }
        tracing::info!(
            kind = record.kind,
            outcome = record.outcome.as_str(),
            rule = %record.rule,
            "plugin effect"
        );
        self.records.push(record);
        answer
    }

    #[expect(clippy::too_many_arguments, reason = "one effect's parts")]
    fn http(
        &mut self,
        method: ureq::http::Method,
        raw_url: &str,
        headers: &[(String, String)],
        body: Option<&[u8]>,
        content_type: Option<&str>,
        deadline: Option<Instant>,
        record: &mut EffectRecord,
    ) -> Answer {
        let deny = |record: &mut EffectRecord, rule: &str, reason: String| {
            record.outcome = EffectOutcome::Denied;
            record.rule = rule.to_owned();
            record.reason = Some(reason.clone());
            Answer::Resume(EffectResult::Error(format!(
                "warden refused the request: {reason}"
            )))
        };
        let fail = |record: &mut EffectRecord, reason: String, limit: Option<&'static str>| {
            record.outcome = EffectOutcome::Failed;
            record.reason = Some(reason.clone());
            record.limit = limit;
            Answer::Resume(EffectResult::Error(format!("the request failed: {reason}")))
        };
        self.requests = self.requests.saturating_add(1);
        let target = self.access.check_url(raw_url);
        let shown =
            record_url(raw_url, self.access.log_query).unwrap_or_else(|| raw_url.to_owned());
        record.url = Some(crate::escape::cut(&shown, MAX_RECORDED_URL).into_owned());
        if self.requests > self.limits.max_requests {
            record.limit = Some("max_requests");
            let max = self.limits.max_requests;
            return deny(
                record,
                &self.access.max_requests_rule.clone(),
                format!(
                    "the plugin asked for more than {max} requests in one call (`max_requests`)"
                ),
            );
        }
        let target = match target {
            Ok(t) => t,
            Err(refused) => return deny(record, &refused.rule, refused.reason),
        };
        record.rule = target.rule.clone();
        record.checked = Some(vec![CHECK_URL]);
        let mut outgoing_headers: Vec<(&str, &str)> = Vec::new();
        if let Some(ct) = content_type
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            outgoing_headers.push(("content-type", ct));
        }
        for (name, value) in headers {
            if client::is_connection_header(name) {
                note_dropped(&mut record.dropped_headers, name);
                continue;
            }
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || ureq::http::HeaderValue::from_str(value).is_err()
            {
                return deny(
                    record,
                    RULE_URL,
                    format!(
                        "the header `{}` is not a valid HTTP header (name or value)",
                        crate::escape::cut(name, 256)
                    ),
                );
            }
            outgoing_headers.push((name, value));
        }
        let Some(budget) = self.budget(deadline) else {
            return over_time(record);
        };
        let addrs = match target.literal() {
            Some(ip) => vec![std::net::SocketAddr::new(ip, target.port)],
            None => match client::resolve(&target.host_name(), target.port, budget) {
                Ok(addrs) => addrs,
                Err(e) => {
                    if past(deadline) {
                        return over_time(record);
                    }
                    return fail(record, e.to_string(), None);
                }
            },
        };
        if let Err(refused) = self.access.check_addresses(&target, &addrs) {
            record.address = addrs.first().map(ToString::to_string);
            return deny(record, &refused.rule, refused.reason);
        }
        let Some(&address) = addrs.first() else {
            return fail(record, "the name resolved to no address".into(), None);
        };
        record.address = Some(address.to_string());
        record.checked = Some(vec![CHECK_URL, CHECK_ADDRESS]);
        let Some(budget) = self.budget(deadline) else {
            return over_time(record);
        };
        let outgoing = Outgoing {
            method,
            url: &target.url,
            headers: outgoing_headers,
            body,
        };
        record.bytes_out = body.map_or(0, |b| b.len() as u64);
        // The most of a body worth holding: `max_response`, or the plugin's whole
        // memory ceiling when that is less (the answer could never fit it).
        let memory = self.limits.memory;
        let (max_body, bound_limit, bound) = if memory < self.limits.max_response {
            let shown = crate::policy::format_size(memory);
            (
                memory,
                "memory",
                format!("{shown}, the plugin's memory ceiling (`memory`)"),
            )
        } else {
            let shown = crate::policy::format_size(self.limits.max_response);
            (
                self.limits.max_response,
                "max_response",
                format!("{shown} (`max_response`)"),
            )
        };
        match client::send(&outgoing, address, budget, max_body, &self.access.tls) {
            Ok(incoming) => {
                record.status = Some(incoming.status);
                record.bytes_in = incoming.body.len() as u64;
                let text = crate::abi::encode::lossy_len(&incoming.body);
                let len =
                    crate::abi::encode::http_response_len(incoming.status, text, &incoming.headers);
                if len > memory {
                    return fail(
                        record,
                        format!(
                            "the response body is {} as the UTF-8 text the plugin receives (each invalid byte sequence becomes 3 bytes); the whole answer, {len} bytes, is larger than {}, the plugin's memory ceiling (`memory`)",
                            crate::policy::format_size(text),
                            crate::policy::format_size(memory)
                        ),
                        Some("memory"),
                    );
                }
                match crate::abi::encode::http_response(
                    incoming.status,
                    &incoming.body,
                    text,
                    &incoming.headers,
                ) {
                    Ok(message) => Answer::Message(message),
                    Err(e) => fail(record, e.to_string(), Some("memory")),
                }
            }
            Err(Failure::TooLarge {
                announced: Some(length),
            }) => fail(
                record,
                format!(
                    "the response body is larger than {bound}: its `Content-Length` is {length} bytes; warden read none of it"
                ),
                Some(bound_limit),
            ),
            Err(Failure::TooLarge { announced: None }) => {
                record.bytes_in = max_body;
                fail(
                    record,
                    format!(
                        "the response body is larger than {bound}; warden stopped reading there"
                    ),
                    Some(bound_limit),
                )
            }
            Err(Failure::Timeout) if past(deadline) => over_time(record),
            Err(Failure::Timeout) => fail(
                record,
                format!(
                    "no complete answer within {} (`request_timeout`)",
                    humantime::format_duration(budget)
                ),
                Some("request_timeout"),
            ),
            Err(Failure::Other(e)) => fail(record, e, None),
        }
    }

    /// Time a request may take: `request_timeout`, cut to what is left of the call.
    /// `None` when nothing is left.
    fn budget(&self, deadline: Option<Instant>) -> Option<Duration> {
        let left = match deadline {
            Some(d) => d.checked_duration_since(Instant::now())?,
            None => Duration::MAX,
        };
        let budget = self.limits.request_timeout.min(left);
        (!budget.is_zero()).then_some(budget)
    }
}

/// Adds header `name` to `dropped` unless it is there (in any case) or the list is
/// full: distinct names, cut, at most [`MAX_DROPPED_HEADERS`], then a `...[cut]`.
fn note_dropped(dropped: &mut Vec<String>, name: &str) {
    let name = crate::escape::cut(name, MAX_RECORDED_HEADER);
    if dropped.iter().any(|d| d.eq_ignore_ascii_case(&name)) {
        return;
    }
    if dropped.len() < MAX_DROPPED_HEADERS {
        dropped.push(name.into_owned());
    } else if dropped.len() == MAX_DROPPED_HEADERS {
        dropped.push("...[cut]".to_owned());
    }
}

fn http_get() -> ureq::http::Method {
    ureq::http::Method::GET
}

fn http_post() -> ureq::http::Method {
    ureq::http::Method::POST
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn over_time(record: &mut EffectRecord) -> Answer {
    record.outcome = EffectOutcome::Failed;
    record.limit = Some("timeout");
    record.reason =
        Some("the call's wall-clock limit (`timeout`) ran out during the effect".into());
    Answer::DeadlinePassed
}

/// A `Sleep`: honoured within the call's remaining time, else slept to the deadline.
fn sleep(ms: u64, deadline: Option<Instant>, record: &mut EffectRecord) -> Answer {
    let wanted = Duration::from_millis(ms);
    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
    match left {
        Some(left) if wanted >= left => {
            std::thread::sleep(left);
            over_time(record)
        }
        _ => {
            std::thread::sleep(wanted);
            Answer::Resume(EffectResult::SleepComplete)
        }
    }
}
