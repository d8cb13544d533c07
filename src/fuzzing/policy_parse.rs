//! `policy_parse`: policy text through [`Policy::parse`], the function `warden run`
//! and `warden policy check` call on every policy file.
//!
//! Two modes, chosen by the first byte. Any input that does not start with a NUL byte
//! is the policy text itself (invalid UTF-8 replaced by U+FFFD; `Policy::load` refuses
//! such a file before parsing, so nothing real is lost). An input that starts with a
//! NUL byte (which no policy file does) is read by [`Source`] as choices for a
//! near-valid policy: `version`, `mode`, `[defaults]` limits with sizes and durations,
//! `isolation` and `confine`, `fs`/`env` lists in dotted, inline and table form,
//! `[plugins.NAME]` tables and `[audit]`, with a misspelt key, a zero, a value of the
//! wrong type, a bad path, a duplicate line or a stray character here and there.
//!
//! The oracle, in both modes: the result is a policy that obeys every bound of rule 9,
//! or errors whose every line and column lie inside the text (line 1 up to the number
//! of lines, column 1 up to the line's length in characters plus one), in order of
//! position, each printed as `FILE:LINE:COLUMN: message`. In the structured mode the
//! generator also knows what it wrote: a policy with no mutation must be accepted, one
//! with a semantic mistake must be rejected with an error on each mistaken line, one
//! with a syntax mistake must be rejected; after an unsure mutation (a stray character)
//! only the first oracle applies.
//!
//! Size: a generator for every key of the policy language and its mistakes, in one
//! place beside the oracle that knows what was generated, so a new key or rule changes
//! one file.

use super::source::Source;
use crate::abi::validate::is_valid_command_name;
use crate::policy::{
    Entry, LimitOverrides, MAX_MEMORY, MAX_STACK, Mode, Policy, PolicyErrors, Rules, toml_key,
};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// The file name every fuzzed policy is parsed under.
const FILE: &str = "fuzz.toml";

/// `policy_parse`: policy text through [`Policy::parse`] (any input not starting with a
/// NUL byte), or a generated near-valid policy (an input starting with one). Panics
/// only when an invariant of the result is broken.
pub fn policy_parse(data: &[u8]) {
    match data.split_first() {
        Some((0, rest)) => structured(rest),
        _ => {
            let text = String::from_utf8_lossy(data);
            check(&text, &Policy::parse(FILE, &text));
        }
    }
}

/// The invariants of any result for `text`.
fn check(text: &str, result: &Result<Policy, PolicyErrors>) {
    match result {
        Ok(policy) => check_policy(text, policy),
        Err(errors) => check_errors(text, errors),
    }
}

fn check_errors(text: &str, errors: &PolicyErrors) {
    let lines: Vec<&str> = text.split('\n').collect();
    let all = errors.errors();
    assert!(!all.is_empty(), "rejected with no error");
    for pair in all.windows(2) {
        assert!(
            (pair[0].line, pair[0].column) <= (pair[1].line, pair[1].column),
            "errors out of order:\n{}\n{}",
            pair[0],
            pair[1]
        );
        assert_ne!(pair[0], pair[1], "the same error twice");
    }
    for e in all {
        assert_eq!(e.file, FILE, "{e}");
        assert!(
            (1..=lines.len()).contains(&e.line),
            "{e}\nline {} is outside the input's {} lines",
            e.line,
            lines.len()
        );
        let width = lines[e.line - 1].chars().count();
        assert!(
            (1..=width + 1).contains(&e.column),
            "{e}\ncolumn {} is outside line {} ({width} characters: {:?})",
            e.column,
            e.line,
            lines[e.line - 1]
        );
        assert!(!e.message.trim().is_empty(), "{e}: an empty message");
        assert_eq!(
            e.to_string(),
            format!("{}:{}:{}: {}", e.file, e.line, e.column, e.message)
        );
    }
    let printed: Vec<String> = all.iter().map(ToString::to_string).collect();
    assert_eq!(errors.to_string(), printed.join("\n"));
}

/// An accepted policy holds only values rule 9 allows, each under the key that names it.
fn check_policy(text: &str, policy: &Policy) {
    assert_eq!(policy.path(), FILE);
    assert_eq!(
        policy.sha256(),
        <[u8; 32]>::from(Sha256::digest(text.as_bytes()))
    );
    check_rules(policy.defaults(), "defaults");
    let defaults = policy.default_limits();
    assert!(defaults.fuel >= 1 && !defaults.timeout.is_zero());
    for table in policy.plugins() {
        assert!(
            is_valid_command_name(&table.name),
            "accepted a table no plugin can match: {:?}",
            table.name
        );
        assert_eq!(
            policy.plugin(&table.name).map(|t| &t.name),
            Some(&table.name)
        );
        let header = format!("plugins.{}", toml_key(&table.name));
        check_rules(&table.rules, &header);
        for pin in &table.sha256 {
            assert!(pin.key.starts_with(&format!("{header}.sha256")));
        }
        let limits = table.rules.limits.apply(&defaults);
        assert!(limits.fuel >= 1 && limits.memory >= 1 && limits.max_output >= 1);
        assert!((1..=MAX_STACK).contains(&(limits.stack as u64)));
    }
}

fn check_limits(limits: &LimitOverrides, table: &str) {
    let within = |value: Option<u64>, max: u64| value.is_none_or(|v| (1..=max).contains(&v));
    assert!(limits.fuel != Some(0), "`{table}`: fuel 0 accepted");
    assert!(within(limits.memory, MAX_MEMORY), "`{table}`: {limits:?}");
    assert!(within(limits.stack, MAX_STACK), "`{table}`: {limits:?}");
    assert!(
        within(limits.max_output, MAX_MEMORY),
        "`{table}`: {limits:?}"
    );
    assert!(
        limits.timeout.is_none_or(|t| !t.is_zero()),
        "`{table}`: {limits:?}"
    );
}

fn check_rules(rules: &Rules, table: &str) {
    assert_eq!(rules.table, table);
    check_limits(&rules.limits, table);
    let keyed = |entries: &[Entry<String>], list: &str| {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.key, format!("{table}.{list}[{i}]"), "{e:?}");
        }
    };
    for (entries, list) in [
        (&rules.fs_read, "fs.read"),
        (&rules.fs_write, "fs.write"),
        (&rules.fs_deny, "fs.deny"),
    ] {
        keyed(entries, list);
        for e in entries {
            let p = e.value.as_str();
            assert!(!p.is_empty() && !p.contains('\0'), "{e:?}");
            assert!(
                !p.starts_with('~') || p == "~" || p.starts_with("~/"),
                "{e:?}"
            );
        }
    }
    for (entries, list) in [
        (&rules.env_allow, "env.allow"),
        (&rules.env_deny, "env.deny"),
    ] {
        keyed(entries, list);
        for e in entries {
            assert!(
                crate::policy::env::pattern_problem(&e.value).is_none(),
                "{e:?}"
            );
        }
    }
    if let Some(stdio) = &rules.stdio {
        for (i, e) in stdio.iter().enumerate() {
            assert_eq!(e.key, format!("{table}.stdio[{i}]"));
        }
    }
    if let Some(e) = &rules.isolation {
        assert_eq!(e.key, format!("{table}.isolation"), "{e:?}");
    }
    if let Some(e) = &rules.confine {
        assert_eq!(e.key, format!("{table}.confine"), "{e:?}");
    }
}

/// What the generator knows about a line it wrote. Ordered: a document is as bad as its
/// worst line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum V {
    /// Valid.
    Ok,
    /// Valid TOML with a value or key the policy rules reject, reported on this line.
    Bad,
    /// Invalid TOML (a duplicate key or table): rejected, somewhere.
    Syntax,
    /// Could go either way: nothing is claimed about the document.
    Unsure,
}

use V::{Bad, Ok as Good, Syntax, Unsure};

/// A generated document: lines, and what each one should do.
struct Doc {
    lines: Vec<(String, V)>,
    missing_version: bool,
    mode: Mode,
    plugins: BTreeSet<String>,
    /// Table headers seen, as (parent key as written, plugin name), to spot duplicates.
    headers: BTreeSet<(String, String)>,
}

impl Doc {
    fn push(&mut self, line: impl Into<String>, v: V) {
        self.lines.push((line.into(), v));
    }

    fn verdict(&self) -> V {
        let worst = self.lines.iter().map(|(_, v)| *v).max().unwrap_or(Good);
        if self.missing_version {
            worst.max(Bad)
        } else {
            worst
        }
    }
}

const VERSIONS: &[(&str, V)] = &[
    ("1", Good),
    ("2", Bad),
    ("\"1\"", Bad),
    ("1.0", Bad),
    ("0", Bad),
    ("-1", Bad),
    ("true", Bad),
    ("+1", Unsure),
    ("0x1", Unsure),
];
const MODES: &[(&str, V)] = &[
    ("\"enforce\"", Good),
    ("\"audit\"", Good),
    ("\"audti\"", Bad),
    ("\"Enforce\"", Bad),
    ("1", Bad),
    ("\"\"", Bad),
];
const BOOLS: &[(&str, V)] = &[
    ("false", Good),
    ("true", Good),
    ("\"yes\"", Bad),
    ("1", Bad),
    ("[]", Bad),
];
const ON_DENIED: &[(&str, V)] = &[
    ("\"run\"", Good),
    ("\"refuse\"", Good),
    ("\"deny\"", Bad),
    ("\"Run\"", Bad),
    ("[]", Bad),
];
const ISOLATIONS: &[(&str, V)] = &[
    ("\"process\"", Good),
    ("\"in-process\"", Good),
    ("\"in_process\"", Bad),
    ("\"Process\"", Bad),
    ("\"none\"", Bad),
    ("\"\"", Bad),
    ("true", Bad),
];
const CONFINES: &[(&str, V)] = &[
    ("\"best-effort\"", Good),
    ("\"required\"", Good),
    ("\"best_effort\"", Bad),
    ("\"require\"", Bad),
    ("\"off\"", Bad),
    ("1", Bad),
    ("[]", Bad),
];
const FUEL: &[(&str, V)] = &[
    ("10_000_000", Good),
    ("1", Good),
    ("9223372036854775807", Good),
    ("0", Bad),
    ("-1", Bad),
    ("\"10\"", Bad),
    ("1.5", Bad),
    ("1e3", Bad),
    ("0x10", Unsure),
    ("+5", Unsure),
];
/// Sizes, with their value in bytes (`None`: not a size at all).
const SIZES: &[(&str, Option<u64>)] = &[
    ("\"64 MiB\"", Some(64 << 20)),
    ("4096", Some(4096)),
    ("\"1 MiB\"", Some(1 << 20)),
    ("\"512 KiB\"", Some(512 << 10)),
    ("\"4 MiB\"", Some(4 << 20)),
    ("\"4097 KiB\"", Some(4097 << 10)),
    ("\"4 GiB\"", Some(4 << 30)),
    ("\"5 GiB\"", Some(5 << 30)),
    ("\"1 MB\"", Some(1_000_000)),
    ("\" 8 KiB \"", Some(8 << 10)),
    ("0", Some(0)),
    ("\"0 KiB\"", Some(0)),
    ("\"lots\"", None),
    ("\"\"", None),
    ("-1", None),
    ("true", None),
    ("[1]", None),
];
const TIMEOUTS: &[(&str, V)] = &[
    ("\"5s\"", Good),
    ("\"500ms\"", Good),
    ("\"1m 30s\"", Good),
    ("\"1h\"", Good),
    ("\" 2s \"", Good),
    ("\"0s\"", Bad),
    ("\"0\"", Bad),
    ("5", Bad),
    ("\"five\"", Bad),
    ("\"\"", Bad),
    ("1.5", Bad),
    ("\"99999999999999999999s\"", Bad),
];
const STREAMS: &[(&str, V)] = &[
    ("\"stdout\"", Good),
    ("\"stderr\"", Good),
    ("\"stdin\"", Good),
    ("\"stdot\"", Bad),
    ("\"STDOUT\"", Bad),
    ("1", Bad),
];
const PATHS: &[(&str, V)] = &[
    ("\"./data\"", Good),
    ("\"~/.ssh\"", Good),
    ("\"/tmp\"", Good),
    ("\".\"", Good),
    ("\"~\"", Good),
    ("\"../e\"", Good),
    ("'C:\\x'", Good),
    ("\"dätä/ü\"", Good),
    ("\"\"", Bad),
    ("\"~root/x\"", Bad),
    ("\"~x\"", Bad),
    ("\"a\\u0000b\"", Bad),
    ("1", Bad),
    ("[]", Bad),
];
const ENV_PATTERNS: &[(&str, V)] = &[
    ("\"HOME\"", Good),
    ("\"APP_*\"", Good),
    ("\"*\"", Good),
    ("\"*_TOKEN\"", Good),
    ("'A\\B'", Good),
    ("\"\"", Bad),
    ("\"A=B\"", Bad),
    ("\"A\\nB\"", Bad),
    ("\"\\u001b[2J\"", Bad),
    ("true", Bad),
];
/// Values of the wrong type for a list.
const NOT_LISTS: &[(&str, V)] = &[("\"./data\"", Bad), ("1", Bad), ("{}", Bad), ("true", Bad)];
const PINS: &[(&str, V)] = &[
    (
        "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"",
        Good,
    ),
    (
        "\"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\"",
        Good,
    ),
    ("\"abc\"", Bad),
    (
        "\"gggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggggg\"",
        Bad,
    ),
    (
        "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00\"",
        Bad,
    ),
    ("1", Bad),
];
/// Plugin names: as written in a header, the name, and whether it is valid.
const NAMES: &[(&str, &str, V)] = &[
    ("file-reader", "file-reader", Good),
    ("p", "p", Good),
    ("\"p\"", "p", Good),
    ("\"a.b\"", "a.b", Good),
    ("x_1", "x_1", Good),
    ("9", "9", Good),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Good,
    ),
    ("_x", "_x", Bad),
    ("\"\"", "", Bad),
    ("\"a b\"", "a b", Bad),
    ("\"é\"", "é", Bad),
    ("\"-\"", "-", Bad),
    (
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        Bad,
    ),
];
const COMMENTS: &[&str] = &["# a comment", "#", "   ", "", "# ümlaut 注释 ✓", "\t# tab"];
/// Characters a stray edit inserts.
const STRAY: &[char] = &[
    '"', '\'', '[', ']', '=', '#', '\\', '\t', '\r', 'é', '\u{feff}', '{', '.', ',', '\0',
];

// The parser's own key lists: the generator proposes exactly the keys it accepts.
use crate::policy::parse::{DEFAULTS_KEYS, ENV_KEYS, FS_KEYS, PLUGIN_KEYS, ROOT_KEYS};

/// A valid choice most of the time, any choice now and then.
fn value(s: &mut Source<'_>, choices: &[(&str, V)]) -> (String, V) {
    let any = s.rarely(6);
    let pool: Vec<&(&str, V)> = choices.iter().filter(|c| any || c.1 == Good).collect();
    let (text, v) = *s.pick(&pool);
    (text.to_owned(), v)
}

fn size(s: &mut Source<'_>, max: u64) -> (String, V) {
    let any = s.rarely(6);
    let valid = |b: Option<u64>| b.is_some_and(|b| (1..=max).contains(&b));
    let pool: Vec<&(&str, Option<u64>)> = SIZES.iter().filter(|c| any || valid(c.1)).collect();
    let (text, bytes) = *s.pick(&pool);
    (text.to_owned(), if valid(bytes) { Good } else { Bad })
}

/// `[item, ...]` of 0 to 3 items, or now and then a value that is not a list.
fn list(s: &mut Source<'_>, items: &[(&str, V)]) -> (String, V) {
    if s.rarely(12) {
        let (text, v) = s.pick(NOT_LISTS);
        return (text.to_owned(), v);
    }
    let n = s.below(4);
    let mut worst = Good;
    let mut parts = Vec::new();
    for _ in 0..n {
        let (item, v) = value(s, items);
        worst = worst.max(v);
        parts.push(item);
    }
    let trailing = if n > 0 && s.rarely(8) { "," } else { "" };
    (format!("[{}{trailing}]", parts.join(", ")), worst)
}

/// `key`, or now and then a misspelling of it: `Bad` when the misspelling is unknown to
/// the table (`known`), `Unsure` when it happens to be another of its keys.
fn key(s: &mut Source<'_>, key: &str, known: &[&str]) -> (String, V) {
    if !s.rarely(14) {
        return (key.to_owned(), Good);
    }
    let mut chars: Vec<char> = key.chars().collect();
    let i = s.below(chars.len());
    match s.below(4) {
        0 if chars.len() > 1 => {
            chars.remove(i);
        }
        1 => chars.insert(i, chars[i]),
        2 if i + 1 < chars.len() => chars.swap(i, i + 1),
        _ => chars[i] = s.pick(&['a', 'e', 'o', '_', 's', 'x']),
    }
    let typo: String = chars.into_iter().collect();
    if typo == key {
        (typo, Good)
    } else if known.contains(&typo.as_str()) {
        (typo, Unsure)
    } else {
        (typo, Bad)
    }
}

/// `key = value`, with now and then other spacing or a trailing comment.
fn assignment(s: &mut Source<'_>, k: &str, v: &str) -> String {
    match s.below(8) {
        6 => format!("{k}={v}"),
        7 => format!("  {k}\t=  {v}   # ✓ note"),
        _ => format!("{k} = {v}"),
    }
}

/// A line inside a table that the parser skips (its header is a misspelt key): only its
/// TOML syntax matters.
fn ignoring(v: V, ignored: bool) -> V {
    if ignored && v == Bad { Good } else { v }
}

/// The sub-keys of `fs` or `env` as (key, value) pairs with their verdicts.
fn sublists(s: &mut Source<'_>, names: &[&str], items: &[(&str, V)]) -> Vec<(String, String, V)> {
    let mut out = Vec::new();
    for name in names {
        if s.flag() {
            let (k, kv) = key(s, name, names);
            let (value, vv) = list(s, items);
            // Under a misspelt key the value is never looked at.
            let v = if kv == Bad { Bad } else { kv.max(vv) };
            out.push((k, value, v));
        }
    }
    out
}

/// Renders one value, with its verdict.
type Render = fn(&mut Source<'_>) -> (String, V);

/// The keys of `[defaults]` (`defaults`) or of a plugin table, after its header. `path`
/// is the table's header path as written, for subtables.
fn table_body(s: &mut Source<'_>, doc: &mut Doc, path: &str, defaults: bool, ignored: bool) {
    let known = if defaults { DEFAULTS_KEYS } else { PLUGIN_KEYS };
    let mut scalars: Vec<(&str, Render)> = Vec::new();
    if defaults {
        scalars.push(("require_digest", |s| value(s, BOOLS)));
        scalars.push(("on_denied", |s| value(s, ON_DENIED)));
    } else {
        scalars.push(("sha256", |s| value(s, PINS)));
    }
    scalars.push(("isolation", |s| value(s, ISOLATIONS)));
    scalars.push(("confine", |s| value(s, CONFINES)));
    scalars.push(("fuel", |s| value(s, FUEL)));
    scalars.push(("memory", |s| size(s, MAX_MEMORY)));
    scalars.push(("stack", |s| size(s, MAX_STACK)));
    scalars.push(("timeout", |s| value(s, TIMEOUTS)));
    scalars.push(("max_output", |s| size(s, MAX_MEMORY)));
    scalars.push(("stdio", |s| list(s, STREAMS)));
    for (name, render) in scalars {
        if s.flag() {
            let (k, kv) = key(s, name, known);
            let (v, vv) = render(s);
            let line = assignment(s, &k, &v);
            let verdict = if kv == Bad { Bad } else { kv.max(vv) };
            doc.push(line, ignoring(verdict, ignored));
        }
    }
    if s.rarely(16) {
        doc.push("colour = \"red\"", ignoring(Bad, ignored));
    }
    let mut subtables = Vec::new();
    for (name, names, items) in [("fs", FS_KEYS, PATHS), ("env", ENV_KEYS, ENV_PATTERNS)] {
        match s.below(4) {
            0 => {}
            1 => {
                // Dotted keys: `fs.read = [...]`. A misspelt `fs` is one unknown key,
                // reported where it first appears.
                let (k, kv) = key(s, name, known);
                for (i, (sub, value, v)) in sublists(s, names, items).into_iter().enumerate() {
                    let verdict = match kv {
                        Bad if i == 0 => Bad,
                        Bad => Good,
                        _ => kv.max(v),
                    };
                    let line = assignment(s, &format!("{k}.{sub}"), &value);
                    doc.push(line, ignoring(verdict, ignored));
                }
            }
            2 => {
                // An inline table: `fs = { read = [...] }`.
                let (k, kv) = key(s, name, known);
                let subs = sublists(s, names, items);
                let inner: Vec<String> =
                    subs.iter().map(|(k, v, _)| format!("{k} = {v}")).collect();
                let worst = subs.iter().map(|x| x.2).max().unwrap_or(Good);
                let verdict = if kv == Bad { Bad } else { kv.max(worst) };
                let line = assignment(s, &k, &format!("{{ {} }}", inner.join(", ")));
                doc.push(line, ignoring(verdict, ignored));
            }
            _ => subtables.push((name, names, items)),
        }
    }
    for (name, names, items) in subtables {
        let (k, kv) = key(s, name, known);
        doc.push(format!("[{path}.{k}]"), ignoring(kv, ignored));
        let inner_ignored = ignored || kv == Bad;
        for (sub, value, v) in sublists(s, names, items) {
            let line = assignment(s, &sub, &value);
            doc.push(line, ignoring(v, inner_ignored));
        }
    }
}

/// Renders the near-valid policy `data` chooses, with what each line should do.
fn generate(data: &[u8]) -> (Doc, bool, bool) {
    let mut s = Source::new(data);
    let mut doc = Doc {
        lines: Vec::new(),
        missing_version: false,
        mode: Mode::Enforce,
        plugins: BTreeSet::new(),
        headers: BTreeSet::new(),
    };
    let s = &mut s;
    // The top level: version, mode and now and then an unknown key, in some order.
    let version_first = !s.rarely(8);
    let version = if s.rarely(12) {
        doc.missing_version = true;
        None
    } else {
        let (k, kv) = key(s, "version", ROOT_KEYS);
        let (v, vv) = value(s, VERSIONS);
        if kv != Good {
            // `version` misspelt is also `version` missing (unless `Unsure`).
            doc.missing_version = kv == Bad;
        }
        Some((
            assignment(s, &k, &v),
            if kv == Bad { Bad } else { kv.max(vv) },
        ))
    };
    if version_first && let Some((line, v)) = &version {
        doc.push(line.clone(), *v);
    }
    if s.flag() {
        let (k, kv) = key(s, "mode", ROOT_KEYS);
        let (v, vv) = value(s, MODES);
        if kv == Good && v == "\"audit\"" {
            doc.mode = Mode::Audit;
        }
        let line = assignment(s, &k, &v);
        doc.push(line, if kv == Bad { Bad } else { kv.max(vv) });
    }
    if !version_first && let Some((line, v)) = &version {
        doc.push(line.clone(), *v);
    }
    if s.rarely(16) {
        doc.push("colour = \"red\"", Bad);
    }
    // [defaults]
    if !s.rarely(8) {
        let (k, kv) = key(s, "defaults", ROOT_KEYS);
        doc.push(format!("[{k}]"), kv);
        table_body(s, &mut doc, &k, true, kv == Bad);
    }
    // [plugins.NAME], 0 to 3 of them.
    for _ in 0..s.below(4) {
        let (parent, pv) = key(s, "plugins", ROOT_KEYS);
        let any = s.rarely(6);
        let pool: Vec<&(&str, &str, V)> = NAMES.iter().filter(|n| any || n.2 == Good).collect();
        let (written, name, nv) = *s.pick(&pool);
        let header = format!("{parent}.{written}");
        // A misspelt `plugins` is one unknown key, reported where it first appears.
        let first = doc.headers.iter().all(|(p, _)| *p != parent);
        let mut verdict = match pv {
            Bad if first => Bad,
            Bad => Good,
            _ => pv.max(nv),
        };
        if !doc.headers.insert((parent.clone(), name.to_owned())) {
            verdict = Syntax;
        }
        if pv == Good {
            doc.plugins.insert(name.to_owned());
        }
        doc.push(format!("[{header}]"), verdict);
        table_body(s, &mut doc, &header, false, pv == Bad);
    }
    if s.rarely(6) {
        doc.push("[plugins]", Good);
    }
    // [audit]
    if s.rarely(3) {
        let (k, kv) = key(s, "audit", ROOT_KEYS);
        doc.push(format!("[{k}]"), kv);
        if s.flag() {
            let (lk, lkv) = key(s, "log_args", &["log_args"]);
            let (v, vv) = value(s, BOOLS);
            let line = assignment(s, &lk, &v);
            let verdict = if lkv == Bad { Bad } else { lkv.max(vv) };
            doc.push(line, ignoring(verdict, kv == Bad));
        }
    }
    // Edits of the text as a whole.
    for _ in 0..s.below(3) {
        if doc.lines.is_empty() {
            break;
        }
        let at = s.below(doc.lines.len());
        match s.below(8) {
            0..=3 => {
                let comment = s.pick(COMMENTS);
                doc.lines.insert(at, (comment.to_owned(), Good));
            }
            4 => {
                // A line twice in a row: a key or a table defined twice.
                let (line, _) = doc.lines[at].clone();
                let t = line.trim_start();
                if !t.is_empty() && !t.starts_with('#') {
                    doc.lines.insert(at + 1, (line, Syntax));
                }
            }
            5 => {
                let (line, v) = &mut doc.lines[at];
                let cut = s.below(line.len() + 1);
                if line.is_char_boundary(cut) {
                    line.insert(cut, s.pick(STRAY));
                    *v = Unsure;
                }
            }
            6 => {
                let (line, v) = &mut doc.lines[at];
                let cut = s.below(line.len() + 1);
                if line.is_char_boundary(cut) {
                    line.truncate(cut);
                    *v = Unsure;
                }
            }
            _ => {
                let (line, _) = &mut doc.lines[at];
                line.push_str("   # trailing ✓");
            }
        }
    }
    let crlf = s.rarely(6);
    let final_newline = !s.rarely(6);
    (doc, crlf, final_newline)
}

fn structured(data: &[u8]) {
    let (doc, crlf, final_newline) = generate(data);
    let mut text = doc
        .lines
        .iter()
        .map(|(l, _)| l.as_str())
        .collect::<Vec<_>>()
        .join(if crlf { "\r\n" } else { "\n" });
    if final_newline && !doc.lines.is_empty() {
        text.push_str(if crlf { "\r\n" } else { "\n" });
    }
    let result = Policy::parse(FILE, &text);
    check(&text, &result);
    let verdict = doc.verdict();
    match (&result, verdict) {
        (Ok(policy), Good) => {
            assert_eq!(policy.mode(), doc.mode, "{text}");
            let names: BTreeSet<String> = policy.plugins().map(|t| t.name.clone()).collect();
            assert_eq!(names, doc.plugins, "{text}");
        }
        (Err(e), Good) => panic!("a valid policy was rejected:\n{e}\n--- policy:\n{text}"),
        (Ok(_), Bad | Syntax) => {
            panic!("an invalid policy ({verdict:?}) was accepted:\n--- policy:\n{text}")
        }
        (Err(e), Bad) => {
            for (i, (line, v)) in doc.lines.iter().enumerate() {
                assert!(
                    *v != Bad || e.errors().iter().any(|x| x.line == i + 1),
                    "no error on line {} ({line:?}):\n{e}\n--- policy:\n{text}",
                    i + 1
                );
            }
            if doc.missing_version {
                assert!(
                    e.errors()
                        .iter()
                        .any(|x| (x.line, x.column) == (1, 1) && x.message.contains("version")),
                    "no error for the missing version:\n{e}\n--- policy:\n{text}"
                );
            }
        }
        (Err(_), Syntax) | (_, Unsure) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every candidate value, alone in a minimal policy, does what its verdict says.
    #[test]
    fn candidate_verdicts_hold() {
        let mut cases: Vec<(String, V)> = Vec::new();
        let mut one = |key: &str, choices: &[(&str, V)]| {
            for (text, v) in choices {
                cases.push((format!("version = 1\n[defaults]\n{key} = {text}\n"), *v));
            }
        };
        one("require_digest", BOOLS);
        one("on_denied", ON_DENIED);
        one("isolation", ISOLATIONS);
        one("confine", CONFINES);
        one("fuel", FUEL);
        one("timeout", TIMEOUTS);
        for (text, v) in VERSIONS {
            cases.push((format!("version = {text}\n"), *v));
        }
        for (text, v) in MODES {
            cases.push((format!("version = 1\nmode = {text}\n"), *v));
        }
        for (key, max) in [("memory", MAX_MEMORY), ("stack", MAX_STACK)] {
            for (text, bytes) in SIZES {
                let ok = bytes.is_some_and(|b| (1..=max).contains(&b));
                let v = if ok { Good } else { Bad };
                cases.push((format!("version = 1\n[defaults]\n{key} = {text}\n"), v));
            }
        }
        for (list, items) in [
            ("stdio", STREAMS),
            ("fs.read", PATHS),
            ("env.deny", ENV_PATTERNS),
        ] {
            for (text, v) in items {
                cases.push((format!("version = 1\n[defaults]\n{list} = [{text}]\n"), *v));
            }
        }
        for (text, v) in PINS {
            cases.push((format!("version = 1\n[plugins.p]\nsha256 = {text}\n"), *v));
        }
        for (key, choices) in [("isolation", ISOLATIONS), ("confine", CONFINES)] {
            for (text, v) in choices {
                cases.push((format!("version = 1\n[plugins.p]\n{key} = {text}\n"), *v));
            }
        }
        for (written, _, v) in NAMES {
            cases.push((format!("version = 1\n[plugins.{written}]\n"), *v));
        }
        for (text, v) in cases {
            let result = Policy::parse(FILE, &text);
            match v {
                Good => assert!(result.is_ok(), "{text}: {result:?}"),
                Bad => assert!(result.is_err(), "{text}"),
                Syntax | Unsure => {}
            }
        }
    }

    #[test]
    fn the_plain_choice_is_a_valid_policy() {
        // No bytes at all: every choice is the plain one.
        let (doc, _, _) = generate(&[]);
        assert_eq!(doc.verdict(), Good);
        policy_parse(&[0]);
        for seed in [
            &[0u8, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1][..],
            &[0, 255, 7, 3, 1],
        ] {
            policy_parse(seed);
        }
    }
}
