//! The record schema of `AUDIT.md`: the common fields, the events and their fields,
//! and how a line is recognised when it is read back.
//!
//! A record line is
//!
//! ```text
//! {"v":1,"ts":"…","seq":N,"event":"…","run_id":"…","prev":"…"[,"plugin":{…}][,"policy":{…}][,event fields…]}
//! ```
//!
//! `v`, `ts`, `event`, `run_id` and the fields after `prev` are produced where the
//! event is emitted; `seq` and `prev` are filled in by the writer at the single point
//! where lines are appended (see [`super::chain`]).

use crate::abi::ExecuteResult;
use crate::limits::{LimitKind, Limits};
use crate::runtime::RuntimeError;
use serde::Serialize;

/// The schema version every record carries in `v`.
pub const SCHEMA_VERSION: u32 = 1;

/// `prev` of the first record of a chain: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How every record line begins. A line that begins like this and is JSON cut short
/// (valid as far as it goes) was left by a writer that stopped mid-line (a crash, a
/// full disk): a torn line.
pub(crate) const LINE_PREFIX: &[u8] = br#"{"v":1,"ts":""#;

/// Fields a decision passed to `grant`/`deny` may not set.
pub(crate) const RESERVED_FIELDS: [&str; 8] = [
    "v", "ts", "seq", "event", "run_id", "prev", "plugin", "policy",
];

/// The events of `AUDIT.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// A policy was read and validated.
    PolicyLoaded,
    /// A policy was read and rejected.
    PolicyRejected,
    /// A module was compiled and its manifest read.
    PluginLoaded,
    /// A module or its manifest was rejected.
    PluginRejected,
    /// One declared capability item was granted.
    Grant,
    /// One declared capability item was denied.
    Deny,
    /// The plugin is about to run.
    RunStart,
    /// The plugin tried, at run time, to reach past its grants.
    RuntimeDeny,
    /// A limit ran out.
    LimitExceeded,
    /// The plugin asked for a host effect (performed, denied or failed).
    Effect,
    /// Audit mode: the plugin used a path, a stream or an effect (first use in a run).
    Access,
    /// A signed checkpoint of the chain head (`warden audit checkpoint`).
    Checkpoint,
    /// The run is over, whatever happened.
    RunEnd,
}

impl Event {
    /// The value of the `event` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::PolicyLoaded => "policy_loaded",
            Event::PolicyRejected => "policy_rejected",
            Event::PluginLoaded => "plugin_loaded",
            Event::PluginRejected => "plugin_rejected",
            Event::Grant => "grant",
            Event::Deny => "deny",
            Event::RunStart => "run_start",
            Event::RuntimeDeny => "runtime_deny",
            Event::LimitExceeded => "limit_exceeded",
            Event::Effect => "effect",
            Event::Access => "access",
            Event::Checkpoint => "checkpoint",
            Event::RunEnd => "run_end",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest plugin version the `plugin` object keeps, in bytes; longer ones are cut
/// and marked.
pub const MAX_RECORDED_VERSION: usize = 64;

/// The `plugin` object: which module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PluginInfo {
    /// The declared name, once the manifest was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The declared version, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Hex SHA-256 of the module file.
    pub sha256: String,
    /// The module file, absolute, when it was loaded from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl PluginInfo {
    /// A plugin known by its file's digest only (its manifest was not read).
    pub fn unnamed(sha256: [u8; 32]) -> Self {
        PluginInfo {
            name: None,
            version: None,
            sha256: hex::encode(sha256),
            path: None,
        }
    }

    /// A plugin whose manifest was read. Its version is cut at
    /// [`MAX_RECORDED_VERSION`] bytes: it is on every record of the run.
    pub fn new(name: impl Into<String>, version: Option<String>, sha256: [u8; 32]) -> Self {
        PluginInfo {
            name: Some(name.into()),
            version: version.map(|v| crate::escape::cut(&v, MAX_RECORDED_VERSION).into_owned()),
            sha256: hex::encode(sha256),
            path: None,
        }
    }

    /// This plugin, loaded from the file at `path` (absolute).
    pub fn with_path(mut self, path: Option<&std::path::Path>) -> Self {
        self.path = path.map(|p| p.display().to_string());
        self
    }
}

/// The `policy` object: which policy decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyInfo {
    /// The policy file, or `built-in`.
    pub path: String,
    /// Hex SHA-256 of the policy text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `enforce` or `audit`.
    pub mode: String,
}

/// The `limits` of `run_start`, in plain units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsRecord {
    /// Fuel (instructions).
    pub fuel: u64,
    /// Linear memory ceiling, bytes.
    pub memory: u64,
    /// Wasm stack ceiling, bytes.
    pub stack: u64,
    /// Wall clock, milliseconds.
    pub timeout_ms: u64,
    /// Largest result message and stdout/stderr, bytes.
    pub max_output: u64,
    /// Largest manifest, bytes.
    pub max_manifest: u64,
    /// Largest argument message, bytes.
    pub max_input: u64,
    /// Most table elements.
    pub table_elements: u64,
    /// Network effects per call.
    pub max_requests: u32,
    /// Largest response body of a network effect, bytes.
    pub max_response: u64,
    /// Longest network effect, milliseconds.
    pub request_timeout_ms: u64,
}

impl From<&Limits> for LimitsRecord {
    fn from(l: &Limits) -> Self {
        LimitsRecord {
            fuel: l.fuel,
            memory: l.memory,
            stack: l.stack as u64,
            timeout_ms: u64::try_from(l.timeout.as_millis()).unwrap_or(u64::MAX),
            max_output: l.max_output,
            max_manifest: l.max_manifest,
            max_input: l.max_input,
            table_elements: l.table_elements as u64,
            max_requests: l.max_requests,
            max_response: l.max_response,
            request_timeout_ms: u64::try_from(l.request_timeout.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The `outcome` of `run_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// The plugin returned `Success`.
    Success,
    /// The plugin returned `Error`.
    PluginError,
    /// The plugin trapped.
    Trap,
    /// A limit ran out.
    Limit,
    /// warden refused (an effect, the policy).
    Refused,
    /// The plugin broke the ABI.
    AbiViolation,
    /// The load ended before a run: the policy or the plugin was rejected.
    Rejected,
    /// The host dropped a loaded plugin without ever running it (an embedding
    /// application's registry that never called it): the load's story ends here.
    Unloaded,
    /// The worker process running the call died (`signal` says how).
    WorkerDied,
}

impl RunOutcome {
    /// The outcome of a finished call.
    pub fn of(result: &Result<ExecuteResult, RuntimeError>) -> Self {
        match result {
            Ok(ExecuteResult::Success(_)) => RunOutcome::Success,
            Ok(ExecuteResult::Error(_)) => RunOutcome::PluginError,
            Ok(ExecuteResult::Effect(_)) => RunOutcome::Refused,
            Err(e) => match e.outcome() {
                "abi_violation" => RunOutcome::AbiViolation,
                "limit" => RunOutcome::Limit,
                "refused" => RunOutcome::Refused,
                "worker_died" => RunOutcome::WorkerDied,
                _ => RunOutcome::Trap,
            },
        }
    }
}

/// `run_start`'s `load`: the `run_id` of the load whose decisions the run runs under.
#[derive(Debug, Serialize)]
pub(crate) struct RunStartLoad<'a> {
    pub load: &'a str,
}

/// The fields of `run_start` that change from run to run, after [`RunStartLoad`];
/// [`RunStartFixed`] follows them.
#[derive(Debug, Serialize)]
pub(crate) struct RunStartArgs<'a> {
    pub args_count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<&'a [String]>,
}

/// The fields of `run_start` that are fixed for a load (composed once per load).
#[derive(Debug, Serialize)]
pub(crate) struct RunStartFixed<'a> {
    pub limits: &'a LimitsRecord,
    pub confinement: &'a crate::confinement::Confinement,
}

/// Fields of `limit_exceeded`.
#[derive(Debug, Serialize)]
pub(crate) struct LimitFields {
    pub limit: LimitKind,
    pub value: u64,
}

/// Fields of `*_rejected`.
#[derive(Debug, Serialize)]
pub(crate) struct ErrorFields<'a> {
    pub error: &'a str,
}

/// Fields of `plugin_loaded`.
#[derive(Debug, Serialize)]
pub(crate) struct DeclaredFields<'a, T: Serialize + ?Sized> {
    pub declared: &'a T,
}

/// `who`: on the first record of every run, who ran warden, where and from where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Who {
    /// The real user id of the process.
    pub uid: u32,
    /// That user's name (from the password database), when it has one.
    pub user: Option<String>,
    /// The host name (`uname`).
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The working directory, when it can be read.
    pub cwd: Option<String>,
}

impl Who {
    /// This process, now.
    pub fn current() -> Who {
        let uid = rustix::process::getuid().as_raw();
        Who {
            uid,
            user: user_name(uid),
            host: rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned(),
            pid: std::process::id(),
            cwd: std::env::current_dir()
                .ok()
                .map(|d| d.display().to_string()),
        }
    }
}

/// The name of user `uid`, from the system's user database (`getpwuid_r`, through nix:
/// `/etc/passwd`, and NSS sources such as LDAP or systemd-homed users). The
/// environment's `USER` is not trusted: anyone can set it.
fn user_name(uid: u32) -> Option<String> {
    static CACHE: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    CACHE
        .get_or_init(|| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|user| user.name)
        })
        .clone()
}

/// Fields of `run_end`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunEnd {
    /// What happened.
    pub outcome: RunOutcome,
    /// The exit code `warden run` exits with.
    pub exit_code: u8,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Wall time of the call, milliseconds (microsecond precision).
    pub duration_ms: f64,
    /// Size of the result message, bytes.
    pub output_bytes: u64,
    /// warden's description of the failure, when the call failed (never the plugin's
    /// own output or error message, which may carry data it read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Runtime denials beyond those recorded one by one (see
    /// [`crate::runtime::observed::MAX_RUNTIME_DENIALS`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_denials_dropped: Option<u64>,
    /// Requests not recorded one by one: only when the run's closing records would
    /// not fit the room reserved for them ([`crate::audit::CLOSING_RESERVE`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effects_dropped: Option<u64>,
    /// Audit mode: uses beyond those recorded one by one (see
    /// `MAX_LOGGED_ACCESSES`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accesses_dropped: Option<u64>,
    /// `Sleep` effects of the call, all of them (only the first
    /// [`crate::audit::MAX_LOGGED_SLEEPS`] have a record of their own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sleeps: Option<u64>,
    /// What those sleeps asked for in all, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slept_ms: Option<u64>,
    /// For outcome `worker_died`: the signal that ended the worker, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

impl RunEnd {
    /// The `run_end` of a load that ended before a run because the policy or the
    /// plugin was rejected (unreadable, invalid, or the audit of it failed).
    pub fn rejected(exit_code: u8, error: impl Into<String>) -> Self {
        RunEnd {
            outcome: RunOutcome::Rejected,
            ..RunEnd::refused(exit_code, error)
        }
    }

    /// The `run_end` of a load the host dropped without running it.
    pub fn unloaded() -> Self {
        RunEnd {
            outcome: RunOutcome::Unloaded,
            error: None,
            ..RunEnd::refused(0, "")
        }
    }

    /// The `run_end` of a run that warden refused before the plugin ran (a policy
    /// refusal, or a granted directory that could not be reopened as decided).
    pub fn refused(exit_code: u8, error: impl Into<String>) -> Self {
        RunEnd {
            outcome: RunOutcome::Refused,
            exit_code,
            fuel_consumed: 0,
            duration_ms: 0.0,
            output_bytes: 0,
            error: Some(error.into()),
            runtime_denials_dropped: None,
            effects_dropped: None,
            accesses_dropped: None,
            sleeps: None,
            slept_ms: None,
            signal: None,
        }
    }
}

/// What the chain needs from a record line read back: the common fields, each of
/// its schema type.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ChainFields {
    v: u64,
    #[allow(dead_code, reason = "must be a string, value unused")]
    ts: String,
    pub seq: u64,
    pub event: String,
    pub run_id: String,
    pub prev: String,
}

/// One line of a log, as read back.
#[derive(Debug)]
pub(crate) enum Line {
    /// A well-formed record.
    Record(ChainFields),
    /// The beginning of a record, cut short: not complete JSON (the text ends where
    /// more was needed), and it begins like a record.
    Fragment,
    /// Something else (the reason).
    Foreign(&'static str),
}

/// Recognises `line` (without its `\n`).
///
/// A line is a *fragment* (torn) only when it is what a writer that stopped mid-line
/// leaves: the first bytes of a record, so JSON that is valid as far as it goes but
/// ends early. Everything that parses as JSON is judged as a record, strictly: no key
/// repeated in any object (a reader such as jq takes one of the two values, verify
/// would see the other), and the common fields all present with their types. So a line
/// that tools read as a record is never passed over as torn.
pub(crate) fn classify(line: &[u8]) -> Line {
    if line.is_empty() {
        return Line::Foreign("a blank line");
    }
    match serde_json::from_slice::<Unambiguous>(line) {
        Ok(Unambiguous) => {}
        Err(e)
            if e.is_eof() && (line.starts_with(LINE_PREFIX) || LINE_PREFIX.starts_with(line)) =>
        {
            return Line::Fragment;
        }
        Err(e) if e.is_data() => return Line::Foreign("a JSON line with a repeated key"),
        Err(_) => return Line::Foreign("a line that is not an audit record"),
    }
    match serde_json::from_slice::<ChainFields>(line) {
        Ok(fields) if fields.v != u64::from(SCHEMA_VERSION) => {
            Line::Foreign("a record of an unknown schema version")
        }
        Ok(fields) if !is_sha256_hex(&fields.prev) => {
            Line::Foreign("a record whose `prev` is not a hex SHA-256")
        }
        Ok(fields) => Line::Record(fields),
        Err(_) => Line::Foreign(
            "a JSON line that is not an audit record (`v`, `ts`, `seq`, `event`, `run_id` or `prev` is missing or of the wrong type)",
        ),
    }
}

/// Any JSON value in which no object repeats a key (at any depth); the value itself
/// is not kept.
struct Unambiguous;

impl<'de> serde::Deserialize<'de> for Unambiguous {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnambiguousVisitor)
    }
}

struct UnambiguousVisitor;

impl<'de> serde::de::Visitor<'de> for UnambiguousVisitor {
    type Value = Unambiguous;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value without repeated keys")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Unambiguous, E> {
        Ok(Unambiguous)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Unambiguous, E> {
        Ok(Unambiguous)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Unambiguous, E> {
        Ok(Unambiguous)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Unambiguous, E> {
        Ok(Unambiguous)
    }
    fn visit_str<E>(self, _: &str) -> Result<Unambiguous, E> {
        Ok(Unambiguous)
    }
    fn visit_unit<E>(self) -> Result<Unambiguous, E> {
        Ok(Unambiguous)
    }
    fn visit_none<E>(self) -> Result<Unambiguous, E> {
        Ok(Unambiguous)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Unambiguous, A::Error> {
        while seq.next_element::<Unambiguous>()?.is_some() {}
        Ok(Unambiguous)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Unambiguous, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !keys.insert(key) {
                return Err(<A::Error as serde::de::Error>::custom("a repeated key"));
            }
            map.next_value::<Unambiguous>()?;
        }
        Ok(Unambiguous)
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_is_named_by_the_user_database() {
        // uid 0 is `root` in every user database warden runs on; no such uid has none.
        let db = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(0)).unwrap();
        assert_eq!(db.map(|u| u.name).as_deref(), Some("root"));
        let who = Who::current();
        let expected = nix::unistd::User::from_uid(nix::unistd::getuid())
            .unwrap()
            .map(|u| u.name);
        assert_eq!(who.user, expected);
        assert!(who.user.is_some(), "this process's uid has a name");
    }

    #[test]
    fn lines_are_recognised() {
        let ok = format!(
            r#"{{"v":1,"ts":"2024-01-01T00:00:00.000Z","seq":3,"event":"grant","run_id":"ab","prev":"{GENESIS}"}}"#
        );
        assert!(matches!(classify(ok.as_bytes()), Line::Record(f) if f.seq == 3));
        assert!(matches!(
            classify(&ok.as_bytes()[..ok.len() - 1]),
            Line::Fragment
        ));
        assert!(matches!(
            classify(ok.replace("\"v\":1", "\"v\":2").as_bytes()),
            Line::Foreign(_)
        ));
        assert!(matches!(
            classify(ok.replace(GENESIS, "xyz").as_bytes()),
            Line::Foreign(_)
        ));
        assert!(matches!(classify(b"hello"), Line::Foreign(_)));
        assert!(matches!(classify(b""), Line::Foreign(_)));
        assert!(matches!(classify(br#"{"v":1}"#), Line::Foreign(_)));
    }

    fn record_with_text(text: &str) -> String {
        format!(
            r#"{{"v":1,"ts":"2024-01-01T00:00:00.000Z","seq":3,"event":"grant","run_id":"ab","prev":"{GENESIS}","request":"{text}"}}"#
        )
    }

    #[test]
    fn every_prefix_of_a_record_is_a_fragment() {
        // Whatever byte a writer stopped at, the line it leaves is torn, also in the
        // middle of a multi-byte character or an escape.
        let ok = record_with_text("caf\u{e9} \u{2603} \\u001b").replacen(
            '}',
            r#","n":[-1.25e-3,0,true,false,null,{"a":{}}],"duration_ms":12.5}"#,
            1,
        );
        for end in 1..ok.len() {
            assert!(
                matches!(classify(&ok.as_bytes()[..end]), Line::Fragment),
                "{:?}",
                String::from_utf8_lossy(&ok.as_bytes()[..end])
            );
        }
        assert!(matches!(classify(ok.as_bytes()), Line::Record(_)));
    }

    #[test]
    fn json_that_is_not_a_strict_record_is_never_a_fragment() {
        let ok = record_with_text("x");
        let foreign = |line: &[u8]| matches!(classify(line), Line::Foreign(_));
        let with = |from: &str, to: &str| {
            assert!(ok.contains(from), "{from}");
            ok.replacen(from, to, 1).into_bytes()
        };
        // A repeated key, at the top or nested, also spelled differently: readers
        // disagree on its value.
        assert!(foreign(&with(r#""seq":3,"#, r#""seq":3,"seq":3,"#)));
        assert!(foreign(&with(
            r#""request":"x""#,
            r#""request":"x","request":"/""#
        )));
        assert!(foreign(&with(
            r#""request":"x""#,
            r#""request":"x","req\u0075est":"/""#
        )));
        assert!(foreign(&with(
            r#""request":"x""#,
            r#""o":{"a":1,"b":[{"c":1,"c":2}]}"#
        )));
        // A common field of the wrong type, or missing.
        assert!(foreign(&with(r#""seq":3"#, r#""seq":"3""#)));
        assert!(foreign(&with(r#""seq":3"#, r#""seq":3.0"#)));
        assert!(foreign(&with(
            &format!(r#""prev":"{GENESIS}""#),
            r#""prev":null"#
        )));
        assert!(foreign(&with(r#""run_id":"ab""#, r#""run_id":7"#)));
        assert!(foreign(&with(r#""event":"grant","#, "")));
        // Complete JSON followed by more: jq reads the record.
        assert!(foreign(format!("{ok} x").as_bytes()));
        assert!(foreign(format!("{ok}{ok}").as_bytes()));
        // Bytes no crash leaves inside a line: invalid UTF-8, a raw control character,
        // NUL padding.
        let mut bad = ok.clone().into_bytes();
        bad[ok.find(r#""x""#).unwrap() + 1] = 0xff;
        assert!(foreign(&bad));
        assert!(foreign(&with(r#""x""#, "\"a\u{1b}b\"")));
        let cut = &ok.as_bytes()[..40];
        assert!(foreign(&[cut, &[0u8; 16][..]].concat()));
        assert!(foreign(&[0u8; 16]));
    }
}
