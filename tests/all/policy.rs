//! Policy files: every malformed case of `POLICY.md` rule 9 is rejected at its line and
//! column; `warden policy check` and `warden run --policy` report it and exit as
//! `CLI.md` says.

use crate::cli::warden;
use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use warden::policy::{Mode, OnDenied, Policy};

/// Every error of `text` as `(line, column, message)`.
fn errors(text: &str) -> Vec<(usize, usize, String)> {
    match Policy::parse("p.toml", text) {
        Ok(_) => panic!("policy was accepted:\n{text}"),
        Err(e) => e
            .errors()
            .iter()
            .map(|e| (e.line, e.column, e.message.clone()))
            .collect(),
    }
}

/// Asserts `text` is rejected with exactly one error at `line:column` containing `msg`.
fn rejects(text: &str, line: usize, column: usize, msg: &str) {
    let found = errors(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let (l, c, m) = &found[0];
    assert_eq!((*l, *c), (line, column), "{m}");
    assert!(m.contains(msg), "{m:?} does not contain {msg:?}");
}

#[test]
fn unknown_keys_are_rejected_where_they_stand() {
    rejects(
        "version = 1\ncolour = 1\n",
        2,
        1,
        "unknown key `colour` in the top level",
    );
    rejects(
        "version = 1\n[defaults]\nfuell = 5\n",
        3,
        1,
        "unknown key `fuell` in `[defaults]`: did you mean `fuel`?",
    );
    rejects(
        "version = 1\n[defaults.fs]\nread = []\nwrtie = []\n",
        4,
        1,
        "unknown key `wrtie` in `[defaults.fs]`: did you mean `write`?",
    );
    rejects(
        "version = 1\n[plugins.x]\nenv.alow = []\n",
        3,
        5,
        "unknown key `alow` in `[plugins.x.env]`: did you mean `allow`?",
    );
    rejects(
        "version = 1\n[plugins.x]\nrequire_digest = true\n",
        3,
        1,
        "unknown key `require_digest` in `[plugins.x]`",
    );
    rejects(
        "version = 1\n[audit]\nlogargs = true\n",
        3,
        1,
        "did you mean `log_args`?",
    );
}

#[test]
fn wrong_types_are_rejected_at_the_value() {
    rejects(
        "version = 1\n[defaults]\nrequire_digest = \"yes\"\n",
        3,
        18,
        "`require_digest` must be `true` or `false`, found a string",
    );
    rejects(
        "version = 1\n[defaults]\nfuel = \"10\"\n",
        3,
        8,
        "`fuel` must be a positive integer, found a string",
    );
    rejects(
        "version = 1\n[defaults]\nstdio = \"stdout\"\n",
        3,
        9,
        "`defaults.stdio` must be an array, found a string",
    );
    rejects(
        "version = 1\n[defaults]\nfs.read = [\"./a\", 7]\n",
        3,
        19,
        "`defaults.fs.read[1]` must be a string, found an integer",
    );
    rejects(
        "version = 1\ndefaults = 3\n",
        2,
        12,
        "`defaults` must be a table, found an integer",
    );
    rejects(
        "version = 1\n[plugins]\nx = 3\n",
        3,
        5,
        "`plugins.x` must be a table, found an integer",
    );
    rejects(
        "version = 1\nmode = \"audti\"\n",
        2,
        8,
        "`mode` must be one of `enforce`, `audit`, found `audti`: did you mean `audit`?",
    );
    rejects(
        "version = 1\n[defaults]\non_denied = \"deny\"\n",
        3,
        13,
        "`on_denied` must be one of `run`, `refuse`",
    );
}

#[test]
fn a_missing_or_unknown_version_is_rejected() {
    rejects(
        "mode = \"enforce\"\n",
        1,
        1,
        "missing `version`: a policy must start with `version = 1`",
    );
    rejects(
        "# a comment\nversion = 2\n",
        2,
        11,
        "unknown policy version `2`: this warden reads only version 1",
    );
    rejects(
        "version = \"1\"\n",
        1,
        11,
        "`version` must be an integer, found a string",
    );
}

#[test]
fn bad_sizes_and_durations_are_rejected() {
    rejects(
        "version = 1\n[defaults]\nmemory = \"64 MBB\"\n",
        3,
        10,
        "`memory` is not a size: `64 MBB`",
    );
    rejects(
        "version = 1\n[plugins.x]\nmax_output = \"lots\"\n",
        3,
        14,
        "`max_output` is not a size: `lots`",
    );
    rejects(
        "version = 1\n[defaults]\nmemory = 1.5\n",
        3,
        10,
        "`memory` must be a size like `64 MiB`, found a float",
    );
    rejects(
        "version = 1\n[defaults]\ntimeout = \"5 secz\"\n",
        3,
        11,
        "`timeout` is not a duration: `5 secz`",
    );
    rejects(
        "version = 1\n[defaults]\ntimeout = 5\n",
        3,
        11,
        "write a unit, like `5s`",
    );
    rejects(
        "version = 1\n[plugins.x]\nstack = \"16 MiB\"\n",
        3,
        9,
        "`stack` of `16 MiB` is more than the maximum of 4 MiB",
    );
    rejects(
        "version = 1\n[defaults]\nmemory = \"5 GiB\"\n",
        3,
        10,
        "more than the maximum of 4 GiB",
    );
}

#[test]
fn zero_limits_are_rejected() {
    for (key, value, msg) in [
        ("fuel", "0", "`fuel` must be at least 1"),
        ("memory", "\"0 MiB\"", "`memory` must be more than 0 bytes"),
        ("stack", "0", "`stack` must be more than 0 bytes"),
        (
            "max_output",
            "\"0B\"",
            "`max_output` must be more than 0 bytes",
        ),
        ("timeout", "\"0s\"", "`timeout` must be longer than 0"),
    ] {
        let text = format!("version = 1\n[defaults]\n{key} = {value}\n");
        rejects(&text, 3, key.len() + 4, msg);
        let text = format!("version = 1\n\n[plugins.p]\n{key} = {value}\n");
        rejects(&text, 4, key.len() + 4, msg);
    }
}

#[test]
fn duplicate_tables_and_keys_are_rejected() {
    rejects(
        "version = 1\n[plugins.file-reader]\nfuel = 1\n\n[plugins.file-reader]\nfuel = 2\n",
        5,
        10,
        "`[plugins.file-reader]` is defined twice (first on line 2); merge the two tables",
    );
    rejects(
        "version = 1\n[plugins.a]\nfuel = 1\n[plugins.\"a\"]\n",
        4,
        10,
        "is defined twice",
    );
    rejects(
        "version = 1\n[defaults]\nfuel = 1\nfuel = 2\n",
        4,
        1,
        "`fuel` is set twice in the same table",
    );
}

#[test]
fn bad_values_of_every_kind_are_rejected() {
    rejects(
        "version = 1\n[plugins.x]\nsha256 = \"abc\"\n",
        3,
        10,
        "sha256` must be 64 hexadecimal digits, found `abc`",
    );
    rejects(
        "version = 1\n[plugins.\"two words\"]\n",
        2,
        10,
        "can never match a plugin",
    );
    rejects(
        "version = 1\n[defaults]\nstdio = [\"stdout\", \"stdinn\"]\n",
        3,
        20,
        "found `stdinn`: did you mean `stdin`?",
    );
    rejects(
        "version = 1\n[defaults]\nenv.deny = [\"A=B\"]\n",
        3,
        13,
        "`defaults.env.deny[0]` contains `=`",
    );
    rejects(
        "version = 1\n[defaults]\nfs.read = [\"~root/x\"]\n",
        3,
        12,
        "only `~` and `~/...`",
    );
    rejects(
        "version = 1\n[defaults]\nfs.deny = [\"\"]\n",
        3,
        12,
        "`defaults.fs.deny[0]` is empty",
    );
}

#[test]
fn every_problem_is_reported_in_one_pass() {
    let found = errors(
        "version = 1\nmode = \"loud\"\n[defaults]\nfuel = 0\ntimeout = \"soon\"\n[plugins.x]\nfs.reed = []\n",
    );
    let positions: Vec<(usize, usize)> = found.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(positions, [(2, 8), (4, 8), (5, 11), (7, 4)], "{found:#?}");
}

#[test]
fn syntax_errors_carry_their_position() {
    let found = errors("version = 1\n[defaults\nfuel = 1\n");
    assert!(
        found
            .iter()
            .any(|(l, c, m)| (*l, *c) == (2, 10) && m.starts_with("invalid TOML: ")),
        "{found:#?}"
    );
}

#[test]
fn a_valid_policy_keeps_every_setting() {
    let p = Policy::parse(
        "p.toml",
        r#"
version = 1
mode = "audit"
[defaults]
require_digest = true
on_denied = "refuse"
fuel = 1_000
timeout = "1m 30s"
[audit]
log_args = true
[plugins.file-reader]
sha256 = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
fs.read = ["./data"]
stack = "2 MiB"
"#,
    )
    .unwrap();
    assert_eq!(p.mode(), Mode::Audit);
    assert!(p.require_digest() && p.log_args());
    assert_eq!(p.on_denied(), OnDenied::Refuse);
    assert_eq!(p.default_limits().fuel, 1000);
    assert_eq!(p.default_limits().timeout.as_secs(), 90);
    let t = p.plugin("file-reader").unwrap();
    assert_eq!(t.sha256[0].value[31], 0xff);
    assert_eq!(t.sha256[0].key, "plugins.file-reader.sha256");
    assert_eq!(t.rules.fs_read[0].key, "plugins.file-reader.fs.read[0]");
    assert_eq!(t.rules.limits.stack, Some(2 << 20));
}

/// Writes a policy file with mode 0600 (whatever the umask).
pub fn policy_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

#[test]
fn a_policy_writable_by_group_or_others_is_rejected_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let path = policy_file(dir.path(), "p.toml", "version = 1\n");
    assert!(Policy::load(&path, false).is_ok());
    for mode in [0o620, 0o602, 0o666] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Policy::load(&path, false).unwrap_err().to_string();
        let expected = format!("{}:1:1: the policy file is writable by", path.display());
        assert!(err.starts_with(&expected), "{err}");
        assert!(err.contains(&format!("(mode {mode:04o})")), "{err}");
        assert!(Policy::load(&path, true).is_ok());
    }
}

#[test]
fn policy_check_prints_ok_or_every_error_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let good = policy_file(dir.path(), "good.toml", "version = 1\n");
    let bad = policy_file(
        dir.path(),
        "bad.toml",
        "version = 1\n[defaults]\nfuel = 0\nfss = {}\n",
    );
    let out = warden(&["policy", "check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}: ok\n", good.display())
    );
    let out = warden(&[
        "policy",
        "check",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let b = bad.display();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}: ok\n{b}:3:8: `fuel` must be at least 1: a limit of 0 would let no plugin run\n{b}:4:1: unknown key `fss` in `[defaults]`: did you mean `fs`?\n",
            good.display()
        )
    );
    std::fs::set_permissions(&good, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = warden(&["policy", "check", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let out = warden(&[
        "policy",
        "check",
        "--allow-insecure-policy",
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let out = warden(&["policy", "check", "/nonexistent/policy.toml"]);
    assert_eq!(out.status.code(), Some(66));
}

#[test]
fn run_under_an_invalid_policy_exits_78_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = policy_file(
        dir.path(),
        "bad.toml",
        "version = 1\n[defaults]\nfuel = 0\n",
    );
    let hello = example_plugin("hello");
    let out = warden(&[
        "run",
        "--policy",
        bad.to_str().unwrap(),
        hello.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(78));
    assert!(out.stdout.is_empty(), "the plugin ran");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:8: `fuel` must be at least 1", bad.display())),
        "{err}"
    );
    // The same file named by $WARDEN_POLICY.
    let out = crate::cli::warden_command()
        .args(["run", hello.to_str().unwrap()])
        .env("WARDEN_POLICY", &bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
}

#[test]
fn the_shipped_policies_pass_policy_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for name in ["default.toml", "examples.toml", "strict.toml"] {
        let path = root.join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = Policy::parse(name, &text) {
            panic!("{e}");
        }
    }
}

/// Asserts `out` exited with `code`, showing its stderr otherwise.
fn assert_exit(out: &std::process::Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_with(policy: &Path, workdir: &Path, plugin: &str, args: &[&str]) -> std::process::Output {
    let plugin = example_plugin(plugin);
    let mut all = vec![
        "run",
        "--policy",
        policy.to_str().unwrap(),
        "--workdir",
        workdir.to_str().unwrap(),
        plugin.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    warden(&all)
}

#[test]
fn refusals_exit_77_and_run_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wrong_pin = policy_file(
        dir.path(),
        "pin.toml",
        &format!(
            "version = 1\n[plugins.hello]\nsha256 = \"{}\"\n",
            "ab".repeat(32)
        ),
    );
    let no_pin = policy_file(
        dir.path(),
        "digest.toml",
        "version = 1\n[defaults]\nrequire_digest = true\n",
    );
    let refuse = policy_file(
        dir.path(),
        "refuse.toml",
        "version = 1\n[defaults]\non_denied = \"refuse\"\n",
    );
    for (policy, plugin, rule) in [
        (&wrong_pin, "hello", "`plugins.hello.sha256` pins"),
        (&no_pin, "hello", "`defaults.require_digest` is true"),
        (&refuse, "file-reader", "`defaults.on_denied` is `refuse`"),
    ] {
        let out = run_with(policy, dir.path(), plugin, &["print", "ran"]);
        assert_eq!(out.status.code(), Some(77), "{policy:?}");
        assert!(out.stdout.is_empty(), "the plugin ran");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(rule), "{err}");
    }
    // Without a denial, `refuse` runs the plugin.
    let out = run_with(&refuse, dir.path(), "hello", &[]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn strict_toml_runs_exactly_the_pinned_examples() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    std::fs::write(dir.path().join("data/n.txt"), "note").unwrap();
    let strict = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/strict.toml");
    let text = std::fs::read_to_string(&strict).unwrap();
    let strict = policy_file(dir.path(), "strict.toml", &text);
    let out = run_with(&strict, dir.path(), "file-reader", &["read", "n.txt"]);
    assert_exit(&out, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "note\n");
    let out = run_with(&strict, dir.path(), "file-writer", &["write", "o.txt", "x"]);
    assert_exit(&out, 0);
    // A missing `./out` is a denial, and strict refuses to run with less.
    std::fs::remove_dir_all(dir.path().join("out")).unwrap();
    let out = run_with(&strict, dir.path(), "file-writer", &["write", "o.txt", "x"]);
    assert_eq!(out.status.code(), Some(77));
    // A plugin with other bytes under a pinned name is refused.
    let mut p = WatPlugin::new("hello");
    p.result = result_bytes(&warden::abi::ExecuteResult::Success("impostor".into()));
    let impostor = dir.path().join("impostor.wasm");
    std::fs::write(&impostor, p.bytes()).unwrap();
    let out = warden(&[
        "run",
        "--policy",
        strict.to_str().unwrap(),
        impostor.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(77));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("impostor"));
}

#[test]
fn audit_mode_warns_on_every_run_and_grants_what_it_would_deny() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/n.txt"), "note").unwrap();
    let audit = policy_file(dir.path(), "audit.toml", "version = 1\nmode = \"audit\"\n");
    let enforce = policy_file(dir.path(), "enforce.toml", "version = 1\n");
    for _ in 0..2 {
        let out = run_with(&audit, dir.path(), "file-reader", &["read", "n.txt"]);
        assert_eq!(out.status.code(), Some(0));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "note\n");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("WARNING: the policy is in audit mode"),
            "{err}"
        );
    }
    let out = run_with(&enforce, dir.path(), "file-reader", &["read", "n.txt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("audit mode"));
}

/// A plugin named `deep` whose execute recurses `depth` calls deep.
fn deep_plugin(dir: &Path, depth: u32) -> PathBuf {
    let mut p = WatPlugin::new("deep");
    p.extra = r#"(func $rec (param $n i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n))
      (then (i32.const 0))
      (else (i32.add (i32.const 1) (call $rec (i32.sub (local.get $n) (i32.const 1)))))))"#
        .into();
    p.execute_fn = Some(format!(
        "(drop (call $rec (i32.const {depth}))) {}",
        WatPlugin::packed(RESULT_AT, p.result.len() as u32)
    ));
    let path = dir.join("deep.wasm");
    std::fs::write(&path, p.bytes()).unwrap();
    path
}

#[test]
fn per_plugin_limits_apply_and_a_new_stack_reloads_the_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let tight = policy_file(
        dir.path(),
        "tight.toml",
        "version = 1\n[plugins.hello]\nfuel = 10\n",
    );
    let out = run_with(&tight, dir.path(), "hello", &[]);
    assert_exit(&out, 125);
    assert!(String::from_utf8_lossy(&out.stderr).contains("fuel limit of 10"));

    // Deep enough to overflow the default 1 MiB wasm stack, not a 2 MiB one.
    let deep = deep_plugin(dir.path(), DEEP);
    let run = |policy: &Path| {
        warden(&[
            "run",
            "--policy",
            policy.to_str().unwrap(),
            deep.to_str().unwrap(),
        ])
    };
    let default = policy_file(dir.path(), "default.toml", "version = 1\n");
    let out = run(&default);
    assert_exit(&out, 125);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stack limit"));
    let stack = policy_file(
        dir.path(),
        "stack.toml",
        "version = 1\n[plugins.deep]\nstack = \"2 MiB\"\nfuel = 100_000_000\n",
    );
    let out = run(&stack);
    assert_exit(&out, 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

/// Recursion depth of [`deep_plugin`] for the stack test: about 48 bytes of wasm stack a
/// frame here, so some 1.5 MiB, between the default 1 MiB and the 2 MiB the test grants.
const DEEP: u32 = 32_000;

#[test]
fn policy_explain_prints_a_table_or_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/examples.toml");
    let policy = policy_file(
        dir.path(),
        "examples.toml",
        &std::fs::read_to_string(examples).unwrap(),
    );
    let reader = example_plugin("file-reader");
    let args = |json: bool| {
        let mut a = vec![
            "policy",
            "explain",
            "--policy",
            policy.to_str().unwrap(),
            "--workdir",
            dir.path().to_str().unwrap(),
        ];
        if json {
            a.push("--json");
        }
        a.push(reader.to_str().unwrap());
        warden(&a)
    };
    let out = args(false);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("table    [plugins.file-reader]"), "{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("granted  fs_read"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("/data") && row.contains("plugins.file-reader.fs.read[0]"));
    let out = args(true);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plugin"]["name"], "file-reader");
    assert_eq!(v["policy"]["mode"], "enforce");
    assert_eq!(v["decisions"][0]["rule"], "plugins.file-reader.fs.read[0]");
    assert_eq!(v["decisions"][0]["outcome"], "granted");
    assert_eq!(v["refusal"], serde_json::Value::Null);
    assert_eq!(v["decisions"].as_array().unwrap().len(), 4);
}

#[test]
fn policy_explain_shows_isolation_and_confine_with_the_deciding_rule() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy_file(
        dir.path(),
        "p.toml",
        "version = 1\n[defaults]\nisolation = \"in-process\"\n[plugins.hello]\nconfine = \"required\"\n",
    );
    let hello = example_plugin("hello");
    let explain = |policy: Option<&Path>, json: bool| {
        let mut a = vec!["policy", "explain"];
        if let Some(p) = policy {
            a.extend(["--policy", p.to_str().unwrap()]);
        }
        a.extend(["--workdir", dir.path().to_str().unwrap()]);
        if json {
            a.push("--json");
        }
        a.push(hello.to_str().unwrap());
        let out = warden(&a);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("isolation ") || l.starts_with("confine "))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let table = explain(Some(&policy), false);
    assert_eq!(
        lines(&table),
        [
            "isolation in-process (defaults.isolation)",
            "confine required (plugins.hello.confine)"
        ],
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_str(&explain(Some(&policy), true)).unwrap();
    assert_eq!(
        v["isolation"],
        serde_json::json!({"value": "in-process", "rule": "defaults.isolation"})
    );
    assert_eq!(
        v["confine"],
        serde_json::json!({"value": "required", "rule": "plugins.hello.confine"})
    );
    // The built-in policy writes neither: the defaults, decided by no key.
    let table = explain(None, false);
    assert_eq!(
        lines(&table),
        [
            "isolation process (default)",
            "confine best-effort (default)"
        ],
        "{table}"
    );
    let v: serde_json::Value = serde_json::from_str(&explain(None, true)).unwrap();
    assert_eq!(
        v["isolation"],
        serde_json::json!({"value": "process", "rule": "default"})
    );
    assert_eq!(
        v["confine"],
        serde_json::json!({"value": "best-effort", "rule": "default"})
    );
}

#[test]
fn policy_check_accepts_isolation_and_confine_and_warns_about_required_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let good = policy_file(
        dir.path(),
        "good.toml",
        "version = 1\n[defaults]\nisolation = \"process\"\nconfine = \"required\"\n[plugins.tool]\nisolation = \"in-process\"\nconfine = \"best-effort\"\n",
    );
    let out = warden(&["policy", "check", &path(&good)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}: ok\n", good.display())
    );
    let lint = policy_file(
        dir.path(),
        "lint.toml",
        "version = 1\n[plugins.tool]\nisolation = \"in-process\"\nconfine = \"required\"\n",
    );
    let out = warden(&["policy", "check", &path(&lint)]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with(&format!(
            "{}:4:11: warning: `plugins.tool.confine` = `required`: confine has no effect in-process (`plugins.tool.isolation` = `in-process`)",
            lint.display()
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with(": ok, with 1 warning(s)\n"), "{stdout}");
    let out = warden(&["policy", "check", "--deny-warnings", &path(&lint)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let bad = policy_file(
        dir.path(),
        "bad.toml",
        "version = 1\n[defaults]\nconfine = \"strict\"\n",
    );
    let out = warden(&["policy", "check", &path(&bad)]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "{}:3:11: `confine` must be one of `best-effort`, `required`, found `strict`\n",
            bad.display()
        )
    );
}

/// `text` with runs of spaces collapsed, so that column widths do not matter.
fn squeeze(text: &str) -> String {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_readme_shows_what_policy_explain_really_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let workdir = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir(workdir.join("data")).unwrap();
    std::fs::create_dir(workdir.join("out")).unwrap();
    for plugin in ["file-reader", "file-writer", "hello", "fetcher"] {
        let command = format!(
            "$ warden policy explain --policy policies/examples.toml examples/plugins/{plugin}.wasm\n"
        );
        let start = readme
            .find(&command)
            .unwrap_or_else(|| panic!("README lacks `{command}`"))
            + command.len();
        let rest = &readme[start..];
        let end = [rest.find("\n$ "), rest.find("\n```")]
            .into_iter()
            .flatten()
            .min()
            .unwrap();
        let shown = &rest[..end];
        // As in the README: from the repository root, HOME set, no APP_* variable.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_warden"))
            .current_dir(root)
            .env_clear()
            .env("HOME", "/root")
            .args([
                "policy",
                "explain",
                "--policy",
                "policies/examples.toml",
                "--workdir",
                workdir.to_str().unwrap(),
                &format!("examples/plugins/{plugin}.wasm"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let printed =
            String::from_utf8_lossy(&out.stdout).replace(workdir.to_str().unwrap(), "/srv/app");
        // The `kernel` line says what this machine's kernel enforces: the README shows
        // one machine's; every machine prints its own.
        let kernel = |text: &str| text.lines().filter(|l| l.starts_with("kernel ")).count();
        assert_eq!(kernel(&printed), 1, "{printed}");
        assert_eq!(
            kernel(shown),
            1,
            "the README shows a `kernel` line for {plugin}"
        );
        let without_kernel = |text: &str| {
            text.lines()
                .filter(|l| !l.starts_with("kernel "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            squeeze(&without_kernel(shown)),
            squeeze(&without_kernel(&printed)),
            "README is stale for {plugin}"
        );
    }
}

/// A uid that owns nothing on this machine (the tests run as root, as CI does, to
/// hand files to it).
const STRANGER: u32 = 48_213;

fn chown(path: &Path, uid: u32) -> bool {
    std::os::unix::fs::chown(path, Some(uid), None).is_ok()
}

#[test]
fn a_policy_owned_by_another_user_or_under_an_unsafe_folder_is_rejected_unless_allowed() {
    let root = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(root.path()).unwrap();
    let rejected = |path: &Path, expected: &str| {
        let err = Policy::load(path, false).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{}:1:1: ", path.display())) && err.contains(expected),
            "{err}\nexpected: {expected}"
        );
        assert!(Policy::load(path, true).is_ok(), "allowed with the flag");
        let out = warden(&["policy", "check", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let out = warden(&[
            "run",
            "--policy",
            path.to_str().unwrap(),
            example_plugin("hello").to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(78), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(expected));
    };

    // A 0600 file in a folder anyone may write (no sticky bit): anyone may replace it.
    let open = root.join("open");
    std::fs::create_dir(&open).unwrap();
    let path = policy_file(&open, "p.toml", "version = 1\n");
    assert!(Policy::load(&path, false).is_ok());
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    rejected(
        &path,
        &format!(
            "the folder `{}` above the policy file is writable by group and others (mode 0777)",
            open.display()
        ),
    );
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o770)).unwrap();
    rejected(&path, "is writable by its group (mode 0770)");
    // With the sticky bit (as /tmp has), nobody else can rename or remove it.
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
    assert!(Policy::load(&path, false).is_ok());

    // A file, or a folder above it, owned by another user.
    let theirs = root.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let path = policy_file(&theirs, "p.toml", "version = 1\n");
    assert!(chown(&path, STRANGER), "the tests run as root, as CI does");
    rejected(
        &path,
        &format!("the policy file is owned by uid {STRANGER}, not by root or you"),
    );
    assert!(chown(&path, 0) && chown(&theirs, STRANGER));
    rejected(
        &path,
        &format!(
            "the folder `{}` above the policy file is owned by uid {STRANGER}",
            theirs.display()
        ),
    );

    // A symlink is judged by where it leads.
    assert!(chown(&theirs, 0));
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let link = root.join("link.toml");
    std::os::unix::fs::symlink(open.join("p.toml"), &link).unwrap();
    let err = Policy::load(&link, false).unwrap_err().to_string();
    assert!(
        err.contains(&format!("the folder `{}`", open.display())),
        "{err}"
    );
}

#[test]
fn no_plugin_is_granted_the_policy_file_or_a_folder_that_holds_it() {
    let ws = tempfile::tempdir().unwrap();
    let ws = std::fs::canonicalize(ws.path()).unwrap();
    std::fs::create_dir_all(ws.join("out/policies")).unwrap();
    std::fs::create_dir(ws.join("data")).unwrap();
    // The policy lives in the folder the plugin may write.
    let policy = policy_file(
        &ws.join("out/policies"),
        "p.toml",
        "version = 1\n[plugins.file-writer]\nfs.read = [\"./data\"]\nfs.write = [\"./out\"]\nstdio = [\"stdout\"]\n",
    );
    let out = warden(&[
        "policy",
        "explain",
        "--json",
        "--policy",
        policy.to_str().unwrap(),
        "--workdir",
        ws.to_str().unwrap(),
        example_plugin("file-writer").to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = json["decisions"].as_array().unwrap();
    let out_item = items.iter().find(|i| i["request"] == "./out").unwrap();
    assert_eq!(out_item["outcome"], "denied", "{out_item}");
    assert_eq!(out_item["rule"], "builtin.protected", "{out_item}");
    assert!(
        out_item["reason"]
            .as_str()
            .unwrap()
            .contains("the policy file"),
        "{out_item}"
    );
    let data = items.iter().find(|i| i["request"] == "./data").unwrap();
    assert_eq!(data["outcome"], "granted", "{data}");
}

/// `net.allow` entries that add up to every address are as broad as one entry of
/// every address: `policy check` warns on the union (per scheme and port), at the
/// table's first entry that takes part, naming each; with `--deny-warnings` it fails.
#[test]
fn allow_entries_that_together_reach_every_address_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let halves = policy_file(
        dir.path(),
        "halves.toml",
        "version = 1\n[defaults.net]\ndeny = [\"10.0.0.0/8\"]\n[plugins.x]\nnet.allow = [\"http://0.0.0.0/1:*\", \"http://128.0.0.0/1:*\"]\n",
    );
    let out = warden(&["policy", "check", halves.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert_eq!(
        stdout,
        format!(
            "{h}:5:14: warning: `plugins.x.net.allow[0]` = `http://0.0.0.0/1:*`, `plugins.x.net.allow[1]` = `http://128.0.0.0/1:*` together reach every IPv4 address over http (port *), private ones included (they name them literally); allow the hosts or ranges the plugin needs\n{h}: ok, with 1 warning(s)\n",
            h = halves.display()
        )
    );
    let strict = warden(&[
        "policy",
        "check",
        "--deny-warnings",
        halves.to_str().unwrap(),
    ]);
    assert_eq!(strict.status.code(), Some(1));

    // Across `[defaults]` and a table, and in IPv6; not when no port is common.
    let split = policy_file(
        dir.path(),
        "split.toml",
        "version = 1\n[defaults.net]\ndeny = [\"10.0.0.0/8\"]\nallow = [\"https://[::/1]:443\"]\n[plugins.x]\nnet.allow = [\"https://[8000::/1]:443\"]\n[plugins.y]\nnet.allow = [\"https://[8000::/1]:444\"]\n",
    );
    let out = warden(&["policy", "check", split.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warnings: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(": warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(warnings[0].contains(":6:14: warning: "), "{stdout}");
    assert!(
        warnings[0].contains("together reach every IPv6 address over https (port 443)"),
        "{stdout}"
    );
}
