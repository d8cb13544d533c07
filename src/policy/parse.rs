//! TOML text to validated policy parts, reporting every problem with its span.
//!
//! The text is parsed with the `toml` crate's spanned document tree
//! ([`DeTable::parse_recoverable`]), which reports every syntax error (duplicate keys
//! and duplicate tables included) and keeps the span of each key and value. This module
//! then walks the tree itself instead of deriving `Deserialize`, so that it can report
//! every unknown key, wrong type and bad value in one pass, each at its own line and
//! column, with a "did you mean" where a key is misspelt.

use super::error::{LineIndex, PolicyError, PolicyErrors};
use super::model::{
    Confine, Entry, Isolation, MAX_MEMORY, MAX_STACK, Mode, OnDenied, POLICY_VERSION, PluginTable,
    Rules, Stream, toml_key,
};
use super::values;
use crate::abi::validate::is_valid_command_name;
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// What [`parse`] extracts; [`super::Policy::parse`] adds the rule-9 warnings of
/// `lint`, the name and the digest.
pub(super) struct Parsed {
    pub mode: Mode,
    pub require_digest: bool,
    pub on_denied: OnDenied,
    pub log_args: bool,
    pub defaults: Rules,
    pub plugins: BTreeMap<String, PluginTable>,
    /// What is legal but probably wrong (rule 9), found while parsing.
    pub warnings: Vec<PolicyError>,
    /// Where each list entry and key stands: key path -> (line, column).
    pub locations: BTreeMap<String, (usize, usize)>,
}

pub(crate) const ROOT_KEYS: &[&str] = &["version", "mode", "defaults", "audit", "plugins"];
pub(crate) const DEFAULTS_KEYS: &[&str] = &[
    "require_digest",
    "on_denied",
    "isolation",
    "confine",
    "fuel",
    "memory",
    "stack",
    "timeout",
    "max_output",
    "stdio",
    "fs",
    "env",
    "net",
];
pub(crate) const PLUGIN_KEYS: &[&str] = &[
    "sha256",
    "on_denied",
    "isolation",
    "confine",
    "fuel",
    "memory",
    "stack",
    "timeout",
    "max_output",
    "stdio",
    "fs",
    "env",
    "net",
];
pub(crate) const FS_KEYS: &[&str] = &["read", "write", "deny"];
pub(crate) const ENV_KEYS: &[&str] = &["allow", "deny"];
pub(crate) const NET_KEYS: &[&str] = &[
    "allow",
    "deny",
    "max_requests",
    "max_response",
    "request_timeout",
    "tls_roots",
];
const AUDIT_KEYS: &[&str] = &["log_args"];
const STREAMS: &[&str] = &["stdin", "stdout", "stderr"];
const ISOLATIONS: &[&str] = &["process", "in-process"];
const CONFINES: &[&str] = &["best-effort", "required"];

/// Parses and validates `text`.
pub(super) fn parse(file: &str, text: &str) -> Result<Parsed, PolicyErrors> {
    let mut p = Parser {
        file,
        index: LineIndex::new(text),
        errors: Vec::new(),
        warnings: Vec::new(),
        locations: BTreeMap::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    let syntax_ok = syntax.is_empty();
    // After a duplicate table, the keys of its body collide with the first one's too;
    // those echoes are left out until the next table header.
    let mut in_duplicate_table = false;
    for e in &syntax {
        let span = e.span().unwrap_or(0..0);
        let (line, _) = p.index.position(span.start);
        let line_text = text.lines().nth(line - 1).unwrap_or("").trim();
        let header = line_text.starts_with('[');
        if header {
            in_duplicate_table = false;
        }
        if e.message() == "duplicate key" {
            if header {
                in_duplicate_table = true;
                p.error(span, duplicate_table(text, line));
            } else if !in_duplicate_table {
                let key = text.get(span.clone()).unwrap_or("").trim();
                p.error(
                    span,
                    format!("`{key}` is set twice in the same table; keep one"),
                );
            }
            continue;
        }
        p.error(span, syntax_message(e.message()));
    }
    let mut parsed = p.root(root.get_ref(), syntax_ok);
    parsed.warnings = std::mem::take(&mut p.warnings);
    parsed.locations = std::mem::take(&mut p.locations);
    if p.errors.is_empty() {
        Ok(parsed)
    } else {
        Err(PolicyErrors::new(p.errors))
    }
}

/// The message for a table header on line `line` that repeats an earlier one.
fn duplicate_table(text: &str, line: usize) -> String {
    // Compared without quotes and blanks, so `[plugins."a"]` repeats `[plugins.a]`.
    let bare = |l: &str| -> String {
        let l = l.split('#').next().unwrap_or(l);
        l.chars()
            .filter(|c| !c.is_whitespace() && *c != '"')
            .collect()
    };
    let lines: Vec<&str> = text.lines().collect();
    let header = lines.get(line - 1).map_or("", |l| l.trim());
    let header = header.split('#').next().unwrap_or(header).trim();
    let wanted = bare(header);
    match lines[..line - 1].iter().position(|l| bare(l) == wanted) {
        Some(first) => format!(
            "`{header}` is defined twice (first on line {}); merge the two tables",
            first + 1
        ),
        None => format!("`{header}` repeats a table defined earlier; merge the two tables"),
    }
}

/// The toml crate's message on one line, without a final period.
fn syntax_message(message: &str) -> String {
    let one_line = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let trimmed = one_line.trim_end_matches('.');
    if trimmed.is_empty() {
        "invalid TOML".to_owned()
    } else {
        format!("invalid TOML: {trimmed}")
    }
}

/// The known key closest to `unknown`, if it is close enough to be a likely typo.
fn closest<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(unknown, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn list(known: &[&str]) -> String {
    known
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

type Span = Range<usize>;

struct Parser<'a> {
    file: &'a str,
    index: LineIndex<'a>,
    errors: Vec<PolicyError>,
    warnings: Vec<PolicyError>,
    locations: BTreeMap<String, (usize, usize)>,
}

impl Parser<'_> {
    fn warn(&mut self, span: Span, message: impl Into<String>) {
        let (line, column) = self.index.position(span.start);
        self.warnings.push(PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn locate(&mut self, key: &str, span: &Span) {
        let at = self.index.position(span.start);
        self.locations.insert(key.to_owned(), at);
    }

    fn error(&mut self, span: Span, message: impl Into<String>) {
        let (line, column) = self.index.position(span.start);
        self.errors.push(PolicyError {
            file: self.file.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }

    fn unknown_key(&mut self, key: &Spanned<std::borrow::Cow<'_, str>>, at: &str, known: &[&str]) {
        let name = key.get_ref();
        let message = match closest(name, known) {
            Some(k) => format!("unknown key `{name}` in {at}: did you mean `{k}`?"),
            None => format!(
                "unknown key `{name}` in {at}; expected one of {}",
                list(known)
            ),
        };
        self.error(key.span(), message);
    }

    fn wrong_type(&mut self, value: &Spanned<DeValue<'_>>, key: &str, expected: &str) {
        self.error(
            value.span(),
            values::wrong_type(value.get_ref(), key, expected),
        );
    }

    fn table<'t, 'i>(
        &mut self,
        value: &'t Spanned<DeValue<'i>>,
        key: &str,
    ) -> Option<&'t DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.wrong_type(value, key, "a table");
                None
            }
        }
    }

    fn boolean(&mut self, value: &Spanned<DeValue<'_>>, key: &str) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(value, key, "`true` or `false`");
                None
            }
        }
    }

    fn string<'t>(&mut self, value: &'t Spanned<DeValue<'_>>, key: &str) -> Option<&'t str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong_type(value, key, "a string");
                None
            }
        }
    }

    /// A string that must be one of `choices`.
    fn choice<'c>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        key: &str,
        choices: &[&'c str],
    ) -> Option<&'c str> {
        let s = self.string(value, key)?;
        if let Some(c) = choices.iter().find(|c| **c == s) {
            return Some(c);
        }
        let hint = match closest(s, choices) {
            Some(c) => format!(": did you mean `{c}`?"),
            None => String::new(),
        };
        self.error(
            value.span(),
            format!(
                "`{key}` must be one of {}, found `{s}`{hint}",
                list(choices)
            ),
        );
        None
    }

    fn root(&mut self, root: &DeTable<'_>, syntax_ok: bool) -> Parsed {
        let mut parsed = Parsed {
            mode: Mode::Enforce,
            require_digest: false,
            on_denied: OnDenied::Run,
            log_args: false,
            defaults: Rules {
                table: "defaults".into(),
                ..Rules::default()
            },
            plugins: BTreeMap::new(),
            warnings: Vec::new(),
            locations: BTreeMap::new(),
        };
        let mut version = false;
        for (key, value) in root.iter() {
            match key.get_ref().as_ref() {
                "version" => {
                    version = true;
                    self.version(value);
                }
                "mode" => {
                    parsed.mode = match self.choice(value, "mode", &["enforce", "audit"]) {
                        Some("audit") => Mode::Audit,
                        _ => Mode::Enforce,
                    }
                }
                "defaults" => {
                    if let Some(t) = self.table(value, "defaults") {
                        self.defaults(t, &mut parsed);
                    }
                }
                "audit" => {
                    if let Some(t) = self.table(value, "audit") {
                        for (k, v) in t.iter() {
                            match k.get_ref().as_ref() {
                                "log_args" => {
                                    parsed.log_args = self.boolean(v, "log_args").unwrap_or(false);
                                }
                                _ => self.unknown_key(k, "`[audit]`", AUDIT_KEYS),
                            }
                        }
                    }
                }
                "plugins" => {
                    if let Some(t) = self.table(value, "plugins") {
                        self.plugins(t, &mut parsed.plugins);
                    }
                }
                _ => self.unknown_key(key, "the top level", ROOT_KEYS),
            }
        }
        // After a syntax error the tree is partial; a missing key may only be unparsed.
        if !version && syntax_ok {
            self.error(
                0..0,
                format!("missing `version`: a policy must start with `version = {POLICY_VERSION}`"),
            );
        }
        parsed
    }

    fn version(&mut self, value: &Spanned<DeValue<'_>>) {
        match value.get_ref() {
            DeValue::Integer(i) => {
                let v = i64::from_str_radix(i.as_str(), i.radix()).ok();
                if v != Some(POLICY_VERSION) {
                    self.error(
                        value.span(),
                        format!(
                            "unknown policy version `{i}`: this warden reads only version {POLICY_VERSION}"
                        ),
                    );
                }
            }
            DeValue::String(s) => self.error(
                value.span(),
                format!("`version` must be an integer, found a string: write `version = {s}` without quotes"),
            ),
            _ => self.wrong_type(value, "version", "an integer"),
        }
    }

    fn defaults(&mut self, table: &DeTable<'_>, parsed: &mut Parsed) {
        let rules = &mut parsed.defaults;
        for (key, value) in table.iter() {
            match key.get_ref().as_ref() {
                "require_digest" => {
                    parsed.require_digest = self.boolean(value, "require_digest").unwrap_or(false);
                }
                "on_denied" => parsed.on_denied = self.on_denied(value).unwrap_or_default(),
                _ => {
                    if !self.rule_key(key, value, rules) {
                        self.unknown_key(key, "`[defaults]`", DEFAULTS_KEYS);
                    }
                }
            }
        }
    }

    fn plugins(&mut self, table: &DeTable<'_>, plugins: &mut BTreeMap<String, PluginTable>) {
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            let header = format!("plugins.{}", toml_key(name));
            if !is_valid_command_name(name) {
                self.error(
                    key.span(),
                    format!(
                        "`[{header}]` can never match a plugin: plugin names are 1 to 64 characters from A-Z a-z 0-9 _ . -, starting with a letter or digit"
                    ),
                );
            }
            let Some(t) = self.table(value, &header) else {
                continue;
            };
            let mut plugin = PluginTable {
                name: name.to_owned(),
                sha256: Vec::new(),
                on_denied: None,
                rules: Rules {
                    table: header.clone(),
                    ..Rules::default()
                },
            };
            for (k, v) in t.iter() {
                match k.get_ref().as_ref() {
                    "sha256" => plugin.sha256 = self.pins(v, &format!("{header}.sha256")),
                    "on_denied" => {
                        plugin.on_denied = self.on_denied(v).map(|value| Entry {
                            key: format!("{header}.on_denied"),
                            value,
                        });
                    }
                    _ => {
                        if !self.rule_key(k, v, &mut plugin.rules) {
                            self.unknown_key(k, &format!("`[{header}]`"), PLUGIN_KEYS);
                        }
                    }
                }
            }
            plugins.insert(name.to_owned(), plugin);
        }
    }

    /// `sha256`: one digest, or a list of them (a rolling update pins the old and the
    /// new build at once).
    fn pins(&mut self, value: &Spanned<DeValue<'_>>, key: &str) -> Vec<Entry<[u8; 32]>> {
        let one = |p: &mut Self, item: &Spanned<DeValue<'_>>, entry_key: String| {
            let s = p.string(item, &entry_key)?;
            let mut digest = [0u8; 32];
            match hex::decode_to_slice(s, &mut digest) {
                Ok(()) => Some(Entry {
                    key: entry_key,
                    value: digest,
                }),
                Err(_) => {
                    p.error(
                        item.span(),
                        format!(
                            "`{entry_key}` must be 64 hexadecimal digits, found `{s}`; `warden inspect PLUGIN.wasm` prints the digest of a plugin, `warden policy pin` writes it"
                        ),
                    );
                    None
                }
            }
        };
        match value.get_ref() {
            DeValue::Array(items) => {
                if items.is_empty() {
                    self.error(
                        value.span(),
                        format!("`{key}` is an empty list, which would match no plugin; pin at least one digest or remove the key"),
                    );
                }
                items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, item)| one(self, item, format!("{key}[{i}]")))
                    .collect()
            }
            _ => one(self, value, key.to_owned()).into_iter().collect(),
        }
    }

    fn on_denied(&mut self, value: &Spanned<DeValue<'_>>) -> Option<OnDenied> {
        match self.choice(value, "on_denied", &["run", "refuse"])? {
            "refuse" => Some(OnDenied::Refuse),
            _ => Some(OnDenied::Run),
        }
    }

    /// Handles a key shared by `[defaults]` and plugin tables; false when `key` is not
    /// one of them.
    fn rule_key(
        &mut self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
        rules: &mut Rules,
    ) -> bool {
        let table = rules.table.clone();
        match key.get_ref().as_ref() {
            "fuel" => rules.limits.fuel = self.fuel(value),
            "memory" => rules.limits.memory = self.size(value, "memory", MAX_MEMORY),
            "stack" => rules.limits.stack = self.size(value, "stack", MAX_STACK),
            "max_output" => rules.limits.max_output = self.size(value, "max_output", MAX_MEMORY),
            "timeout" => rules.limits.timeout = self.duration(value, "timeout"),
            "stdio" => rules.stdio = self.stdio(value, &table),
            "isolation" => {
                let key = format!("{table}.isolation");
                self.locate(&key, &value.span());
                rules.isolation = self.choice(value, "isolation", ISOLATIONS).map(|c| Entry {
                    key,
                    value: match c {
                        "in-process" => Isolation::InProcess,
                        _ => Isolation::Process,
                    },
                });
            }
            "confine" => {
                let key = format!("{table}.confine");
                self.locate(&key, &value.span());
                rules.confine = self.choice(value, "confine", CONFINES).map(|c| Entry {
                    key,
                    value: match c {
                        "required" => Confine::Required,
                        _ => Confine::BestEffort,
                    },
                });
            }
            "fs" => {
                let Some(t) = self.table(value, "fs") else {
                    return true;
                };
                for (k, v) in t.iter() {
                    let name = k.get_ref().as_ref();
                    let list = match name {
                        "read" => &mut rules.fs_read,
                        "write" => &mut rules.fs_write,
                        "deny" => &mut rules.fs_deny,
                        _ => {
                            self.unknown_key(k, &format!("`[{table}.fs]`"), FS_KEYS);
                            continue;
                        }
                    };
                    *list = self.paths(v, &format!("{table}.fs.{name}"));
                }
            }
            "env" => {
                let Some(t) = self.table(value, "env") else {
                    return true;
                };
                for (k, v) in t.iter() {
                    let name = k.get_ref().as_ref();
                    let list = match name {
                        "allow" => &mut rules.env_allow,
                        "deny" => &mut rules.env_deny,
                        _ => {
                            self.unknown_key(k, &format!("`[{table}.env]`"), ENV_KEYS);
                            continue;
                        }
                    };
                    *list = self.env_patterns(v, &format!("{table}.env.{name}"));
                }
            }
            "net" => {
                let Some(t) = self.table(value, "net") else {
                    return true;
                };
                for (k, v) in t.iter() {
                    let name = k.get_ref().as_ref();
                    let key = format!("{table}.net.{name}");
                    match name {
                        "allow" => {
                            rules.net_allow =
                                self.parsed_strings(v, &key, crate::net::Endpoint::parse_allow);
                        }
                        "deny" => {
                            rules.net_deny =
                                self.parsed_strings(v, &key, crate::net::pattern::parse_deny);
                        }
                        "tls_roots" => rules.net_tls_roots = self.paths(v, &key),
                        "max_requests" => rules.limits.max_requests = self.count(v, "max_requests"),
                        "max_response" => {
                            rules.limits.max_response = self.size(v, "max_response", MAX_MEMORY);
                        }
                        "request_timeout" => {
                            rules.limits.request_timeout = self.duration(v, "request_timeout");
                        }
                        _ => self.unknown_key(k, &format!("`[{table}.net]`"), NET_KEYS),
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// A list of strings, each parsed by `parse` (whose error says what is wrong).
    fn parsed_strings<T>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, crate::net::PatternError>,
    ) -> Vec<Entry<T>> {
        let mut out = Vec::new();
        for (s, span, entry_key) in self.strings(value, key) {
            match parse(&s) {
                Ok(value) => out.push(Entry {
                    key: entry_key,
                    value,
                }),
                Err(problem) => self.error(span, format!("`{entry_key}`: {problem}")),
            }
        }
        out
    }

    /// `read`'s value, or `None` with its message reported at `value`.
    fn value<T>(&mut self, value: &Spanned<DeValue<'_>>, read: Result<T, String>) -> Option<T> {
        read.map_err(|message| self.error(value.span(), message))
            .ok()
    }

    fn count(&mut self, value: &Spanned<DeValue<'_>>, key: &str) -> Option<u32> {
        self.value(value, values::count(value.get_ref(), key))
    }

    fn fuel(&mut self, value: &Spanned<DeValue<'_>>) -> Option<u64> {
        self.value(value, values::fuel(value.get_ref()))
    }

    fn size(&mut self, value: &Spanned<DeValue<'_>>, key: &str, max: u64) -> Option<u64> {
        let (warning, bytes) = values::size(value.get_ref(), key, max);
        if let Some(warning) = warning {
            self.warn(value.span(), warning);
        }
        self.value(value, bytes)
    }

    fn duration(&mut self, value: &Spanned<DeValue<'_>>, key: &str) -> Option<Duration> {
        self.value(value, values::duration(value.get_ref(), key))
    }

    fn array<'t, 'i>(
        &mut self,
        value: &'t Spanned<DeValue<'i>>,
        key: &str,
    ) -> Option<&'t [Spanned<DeValue<'i>>]> {
        match value.get_ref() {
            DeValue::Array(a) => Some(a.as_ref()),
            _ => {
                self.wrong_type(value, key, "an array");
                None
            }
        }
    }

    fn stdio(&mut self, value: &Spanned<DeValue<'_>>, table: &str) -> Option<Vec<Entry<Stream>>> {
        let key = format!("{table}.stdio");
        let items = self.array(value, &key)?;
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let stream = match self.choice(item, &format!("{key}[{i}]"), STREAMS) {
                Some("stdin") => Stream::Stdin,
                Some("stdout") => Stream::Stdout,
                Some("stderr") => Stream::Stderr,
                _ => continue,
            };
            out.push(Entry {
                key: format!("{key}[{i}]"),
                value: stream,
            });
        }
        Some(out)
    }

    fn strings(&mut self, value: &Spanned<DeValue<'_>>, key: &str) -> Vec<(String, Span, String)> {
        let Some(items) = self.array(value, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        self.locate(key, &value.span());
        for (i, item) in items.iter().enumerate() {
            let entry_key = format!("{key}[{i}]");
            if let Some(s) = self.string(item, &entry_key) {
                self.locate(&entry_key, &item.span());
                out.push((s.to_owned(), item.span(), entry_key));
            }
        }
        out
    }

    fn paths(&mut self, value: &Spanned<DeValue<'_>>, key: &str) -> Vec<Entry<String>> {
        let mut out = Vec::new();
        for (s, span, entry_key) in self.strings(value, key) {
            let problem = if s.is_empty() {
                Some("is empty; write a directory such as `./data` or `/srv/data`".to_owned())
            } else if s.contains('\0') {
                Some("contains a NUL byte".to_owned())
            } else if s.starts_with('~') && !(s == "~" || s.starts_with("~/")) {
                Some(format!(
                    "is `{s}`, but only `~` and `~/...` (the home of the user running warden) are supported; write the full path"
                ))
            } else {
                None
            };
            match problem {
                Some(p) => self.error(span, format!("`{entry_key}` {p}")),
                None => {
                    let allows = key.ends_with(".fs.read") || key.ends_with(".fs.write");
                    if allows && matches!(s.trim_end_matches('/'), "" | "~") {
                        let what = if s.starts_with('~') {
                            "the whole home directory (keys, shell history, every project)"
                        } else {
                            "the whole filesystem"
                        };
                        self.warn(
                            span.clone(),
                            format!(
                                "`{entry_key}` = `{s}` grants {what}; name the directories the plugin needs, like `./data`"
                            ),
                        );
                    }
                    out.push(Entry {
                        key: entry_key,
                        value: s,
                    });
                }
            }
        }
        out
    }

    fn env_patterns(&mut self, value: &Spanned<DeValue<'_>>, key: &str) -> Vec<Entry<String>> {
        let mut out = Vec::new();
        for (s, span, entry_key) in self.strings(value, key) {
            if key.ends_with(".env.allow") && s.chars().all(|c| c == '*') {
                self.warn(
                    span.clone(),
                    format!(
                        "`{entry_key}` = `{s}` allows every variable of the host; name the variables (or a prefix like `APP_*`) the plugin needs"
                    ),
                );
            }
            match super::env::pattern_problem(&s) {
                Some(problem) => self.error(span, format!("`{entry_key}` {problem}")),
                None => out.push(Entry {
                    key: entry_key,
                    value: s,
                }),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match parse("p.toml", text) {
            Ok(_) => Vec::new(),
            Err(e) => e.errors().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        assert_eq!(
            errors("version = 1\n[defaults]\nfs.reed = []\n"),
            ["p.toml:3:4: unknown key `reed` in `[defaults.fs]`: did you mean `read`?"]
        );
        assert_eq!(
            errors("version = 1\n[defaults]\nfss = {}\n"),
            ["p.toml:3:1: unknown key `fss` in `[defaults]`: did you mean `fs`?"]
        );
    }

    #[test]
    fn every_error_is_reported_in_order() {
        let text =
            "version = 1\nmode = \"audti\"\n[defaults]\nfuel = 0\nmemory = \"lots\"\ncolour = 1\n";
        assert_eq!(
            errors(text),
            [
                "p.toml:2:8: `mode` must be one of `enforce`, `audit`, found `audti`: did you mean `audit`?",
                "p.toml:4:8: `fuel` must be at least 1: a limit of 0 would let no plugin run",
                "p.toml:5:10: `memory` is not a size: `lots`; write a number and a unit, like `64 MiB` or `512 KiB`",
                "p.toml:6:1: unknown key `colour` in `[defaults]`; expected one of `require_digest`, `on_denied`, `isolation`, `confine`, `fuel`, `memory`, `stack`, `timeout`, `max_output`, `stdio`, `fs`, `env`, `net`",
            ]
        );
    }

    #[test]
    fn sizes_accept_units_and_integers() {
        let p = parse(
            "p.toml",
            "version = 1\n[defaults]\nmemory = \"32 MiB\"\nmax_output = 4096\nstack = \"512KiB\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.defaults.limits.memory, Some(32 << 20));
        assert_eq!(p.defaults.limits.max_output, Some(4096));
        assert_eq!(p.defaults.limits.stack, Some(512 << 10));
    }
}
