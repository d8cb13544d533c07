//! The `warden` binary: commands, output and exit codes (`CLI.md`).

use crate::common::*;
use std::process::{Command, Output};

/// Where the `warden` processes this test binary starts keep their state: an audit log
/// and a module cache private to this test run, never the user's own.
pub fn test_state_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("temp dir"))
        .path()
}

/// The `warden` binary with no policy from the environment, and its audit log,
/// module cache and state folder (checkpoint files) in [`test_state_dir`].
pub fn warden_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.env_remove("WARDEN_POLICY")
        .env("WARDEN_AUDIT_LOG", test_state_dir().join("audit.jsonl"))
        .env("XDG_CACHE_HOME", test_state_dir().join("cache"))
        .env("XDG_STATE_HOME", test_state_dir().join("state"));
    cmd
}

pub fn warden(args: &[&str]) -> Output {
    warden_command().args(args).output().expect("warden runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_hello_prints_the_greeting() {
    let hello = example_plugin("hello");
    let out = warden(&["run", hello.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Hello, World!\n");
    let out = warden(&["run", hello.to_str().unwrap(), "--", "Grace"]);
    assert_eq!(stdout(&out), "Hello, Grace!\n");
}

#[test]
fn run_plugin_error_exits_with_its_code() {
    let reader = example_plugin("file-reader");
    let out = warden(&["run", reader.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("file-reader: usage: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_missing_file_exits_66() {
    let out = warden(&["run", "/nonexistent/plugin.wasm"]);
    assert_eq!(out.status.code(), Some(66));
    assert!(stderr(&out).contains("cannot read plugin `/nonexistent/plugin.wasm`"));
}

#[test]
fn run_not_wasm_exits_65() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.wasm");
    std::fs::write(&path, b"#!/bin/sh\necho hi\n").unwrap();
    let out = warden(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    assert!(
        stderr(&out).contains("not a valid WebAssembly module"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn run_json_reports_the_call() {
    let hello = example_plugin("hello");
    let out = warden(&["run", "--json", hello.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "success");
    assert_eq!(v["output"], "Hello, World!");
    assert_eq!(v["exit_code"], 0);
    assert!(v["fuel_consumed"].as_u64().unwrap() > 0);
}

#[test]
fn inspect_json_shows_capabilities_and_sha256() {
    let reader = example_plugin("file-reader");
    let out = warden(&["inspect", "--json", reader.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    use sha2::Digest;
    let expected = hex::encode(sha2::Sha256::digest(std::fs::read(&reader).unwrap()));
    assert_eq!(v["sha256"], expected);
    assert_eq!(v["name"], "file-reader");
    assert_eq!(v["api_version"], 2);
    assert_eq!(v["capabilities"]["fs_read"][0]["pattern"], "./data");
    assert_eq!(v["capabilities"]["env_read"][1], "APP_*");
    assert_eq!(v["capabilities"]["stdio"]["stdout"], true);
}

#[test]
fn hostile_error_text_is_escaped() {
    // A plugin whose error message carries a terminal escape sequence.
    let mut p = WatPlugin::new("esc");
    p.result = result_bytes(&warden::abi::ExecuteResult::Error(
        warden::abi::ExecuteError {
            code: 1,
            message: "\u{1b}[2J\u{1b}[Hall clear".into(),
        },
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("esc.wasm");
    std::fs::write(&path, p.bytes()).unwrap();
    let out = warden(&["run", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("\\u{1b}[2J"), "{err:?}");
}

fn warden_with_cache(cache: &std::path::Path, args: &[&str]) -> Output {
    warden_command()
        .args(args)
        .env("XDG_CACHE_HOME", cache)
        .output()
        .expect("warden runs")
}

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn run_caches_compiled_modules_and_recompiles_a_corrupt_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let hello = example_plugin("hello");
    let hello = hello.to_str().unwrap();
    let dir = tmp.path().join("warden");

    let out = warden_with_cache(tmp.path(), &["run", "--no-cache", hello]);
    assert_eq!(stdout(&out), "Hello, World!\n");
    assert!(cache_entries(&dir).is_empty(), "--no-cache wrote the cache");

    let out = warden_with_cache(tmp.path(), &["run", hello]);
    assert_eq!(stdout(&out), "Hello, World!\n");
    let entries = cache_entries(&dir);
    assert_eq!(entries.len(), 1, "{entries:?}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&entries[0]).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "cache entry mode {mode:o}");
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "cache dir mode {mode:o}");

    // Corrupt the entry in the middle: the run recompiles and succeeds.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&entries[0], &bytes).unwrap();
    let out = warden_with_cache(tmp.path(), &["run", hello, "--", "again"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Hello, again!\n");
    assert_ne!(
        std::fs::read(&entries[0]).unwrap(),
        bytes,
        "corrupt entry was not rewritten"
    );

    // A foreign file in place of the entry (here: plain garbage) is never trusted.
    std::fs::write(&entries[0], b"\x7fELF not a warden entry").unwrap();
    let out = warden_with_cache(tmp.path(), &["run", hello]);
    assert_eq!(stdout(&out), "Hello, World!\n");
}

#[test]
fn a_plugin_error_code_never_claims_one_of_wardens_own_exit_codes() {
    use warden::abi::{ExecuteError, ExecuteResult};
    let dir = tempfile::tempdir().unwrap();
    for (code, expected) in [
        (3, 3),
        (101, 101),
        (0, 1),
        (74, 1),
        (77, 1),
        (124, 1),
        (65, 1),
    ] {
        let mut p = WatPlugin::new("coder");
        p.result = result_bytes(&ExecuteResult::Error(ExecuteError {
            code,
            message: format!("failed with {code}"),
        }));
        let path = dir.path().join(format!("coder-{code}.wasm"));
        std::fs::write(&path, p.bytes()).unwrap();
        let out = warden(&["run", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(expected), "plugin code {code}");
        assert!(stderr(&out).contains(&format!("failed with {code}")));
    }
}

/// A plugin code above 125 exits 1: 126 reads as "not executable", 127 as "not
/// found" and 128+N as "killed by signal N" to a shell. 101 stays the plugin's (a
/// panic in warden no longer exits 101: see the next test).
#[test]
fn a_plugin_code_above_125_exits_1() {
    use warden::abi::{ExecuteError, ExecuteResult};
    let dir = tempfile::tempdir().unwrap();
    for (code, expected) in [
        (101, 101),
        (125, 1),
        (126, 1),
        (127, 1),
        (128, 1),
        (137, 1),
        (200, 1),
        (255, 1),
    ] {
        let mut p = WatPlugin::new("coder");
        p.result = result_bytes(&ExecuteResult::Error(ExecuteError {
            code,
            message: format!("failed with {code}"),
        }));
        let path = dir.path().join(format!("coder-{code}.wasm"));
        std::fs::write(&path, p.bytes()).unwrap();
        let out = warden(&["run", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(expected), "plugin code {code}");
        assert!(stderr(&out).contains(&format!("failed with {code}")));
        // `--json` keeps the plugin's own code in its result.
        let out = warden(&["run", "--json", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(expected), "plugin code {code}");
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["exit_code"], expected, "{json}");
    }
}

/// In a child process of this test binary (`PANIC_CHILD` says which thread panics):
/// the hook the `warden` binary installs, then a panic.
fn panic_child() {
    let Some(mode) = std::env::var_os("WARDEN_TEST_PANIC_CHILD") else {
        return;
    };
    warden::exit::install_panic_hook();
    let message = "an assertion about `\u{1b}[2J\nok: \u{202e}` failed";
    let code = if mode == "main" {
        // The main thread's panic unwinds to `catch_panic` (the binary's
        // `exit_code_of` calls it), which returns 70.
        std::thread::Builder::new()
            .name("main".into())
            .spawn(move || warden::exit::catch_panic(|| panic!("{message}")))
            .unwrap()
            .join()
            .unwrap()
    } else {
        // Any other thread's panic: the hook itself exits 70.
        std::thread::spawn(move || panic!("{message}")).join().ok();
        0
    };
    std::process::exit(i32::from(code));
}

/// A panic in warden prints one escaped line and exits 70, never 101 (which a plugin
/// may return), whichever thread it happens on.
#[test]
fn a_panic_in_warden_prints_one_line_and_exits_70() {
    panic_child();
    for mode in ["main", "other"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cli::a_panic_in_warden_prints_one_line_and_exits_70",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("WARDEN_TEST_PANIC_CHILD", mode)
            .output()
            .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(70), "{mode}: {err}");
        let lines: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("warden: internal error"))
            .collect();
        assert_eq!(lines.len(), 1, "{mode}: {err}");
        assert!(
            lines[0].contains(r"an assertion about `\u{1b}[2J\nok: \u{202e}` failed"),
            "{mode}: {err}"
        );
        assert!(
            !err.contains('\u{1b}') && !err.contains('\u{202e}'),
            "{mode}: {err}"
        );
        assert!(lines[0].ends_with("; please report it"), "{mode}: {err}");
    }
}

#[test]
fn run_never_runs_another_plugins_cache_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("warden");
    let hello = example_plugin("hello");
    let reader = example_plugin("file-reader");
    let (hello, reader) = (hello.to_str().unwrap(), reader.to_str().unwrap());

    let out = warden_with_cache(tmp.path(), &["run", hello, "--", "print"]);
    assert_eq!(stdout(&out), "Hello, print!\n");
    let hello_entry = cache_entries(&dir);
    assert_eq!(hello_entry.len(), 1, "{hello_entry:?}");
    let out = warden_with_cache(tmp.path(), &["run", reader, "--", "print", "B"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reader_output = stdout(&out);
    assert!(reader_output.starts_with("B\n"), "{reader_output}");
    let reader_entry: Vec<_> = cache_entries(&dir)
        .into_iter()
        .filter(|e| *e != hello_entry[0])
        .collect();
    assert_eq!(reader_entry.len(), 1, "{reader_entry:?}");

    // hello's intact entry under file-reader's name: file-reader's code still runs.
    std::fs::copy(&hello_entry[0], &reader_entry[0]).unwrap();
    let out = warden_with_cache(tmp.path(), &["run", reader, "--", "print", "B"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        reader_output,
        "another plugin's compiled code ran"
    );
    let out = warden_with_cache(tmp.path(), &["run", hello, "--", "print"]);
    assert_eq!(stdout(&out), "Hello, print!\n");
}

#[test]
fn run_with_a_symlinked_cache_directory_compiles_without_it() {
    let tmp = tempfile::tempdir().unwrap();
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
    let hello = example_plugin("hello");
    let hello = hello.to_str().unwrap();

    // `$XDG_CACHE_HOME/warden` is a symlink; then `$XDG_CACHE_HOME` itself is one.
    let xdg = tmp.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    std::os::unix::fs::symlink(&elsewhere, xdg.join("warden")).unwrap();
    let linked_xdg = tmp.path().join("linked-xdg");
    std::os::unix::fs::symlink(&elsewhere, &linked_xdg).unwrap();
    for cache_home in [&xdg, &linked_xdg] {
        let out = warden_with_cache(cache_home, &["run", hello]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "Hello, World!\n");
        let err = stderr(&out);
        assert!(
            err.contains("symbolic link") && err.contains("compiling without the cache"),
            "{err}"
        );
        let used: Vec<_> = std::fs::read_dir(&elsewhere).unwrap().collect();
        assert!(
            used.is_empty(),
            "the cache was used through a symlink: {used:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Plugin-controlled text on the terminal and in `--json`.

/// A manifest whose free-text fields are `text` and which declares `fs_read` of
/// `path`.
fn hostile_manifest(name: &str, text: &str, path: &str) -> Vec<u8> {
    use warden::abi::{Capabilities, CommandSpec, PathPattern, PluginManifest};
    rmp_serde::to_vec_named(&PluginManifest {
        api_version: 2,
        command: CommandSpec {
            name: name.into(),
            about: text.into(),
            version: Some(text.into()),
            author: Some(text.into()),
            args: vec![],
            subcommands: vec![],
        },
        capabilities: Capabilities {
            fs_read: vec![PathPattern {
                pattern: path.into(),
                recursive: false,
            }],
            ..Capabilities::default()
        },
    })
    .unwrap()
}

/// Writes `plugin` to `dir/NAME.wasm`.
fn write_plugin(dir: &std::path::Path, name: &str, plugin: &WatPlugin) -> String {
    let path = dir.join(format!("{name}.wasm"));
    std::fs::write(&path, plugin.bytes()).unwrap();
    path.to_str().unwrap().to_owned()
}

/// No raw ESC, BEL, CR, C1 control or bidi override.
fn assert_no_raw_controls(what: &str, bytes: &[u8]) {
    for b in [0x1b, 0x07, b'\r'] {
        assert!(
            !bytes.contains(&b),
            "{what}: raw {b:#x} in {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
    let text = String::from_utf8_lossy(bytes);
    for c in ['\u{9b}', '\u{202e}', '\u{2066}', '\u{2028}'] {
        assert!(
            !text.contains(c),
            "{what}: raw U+{:04X} in {text:?}",
            u32::from(c)
        );
    }
}

#[test]
fn refusal_messages_escape_the_declared_path() {
    // `on_denied = "refuse"` and a declared path that clears the screen, sets the
    // window title, rings the bell and starts a fake line.
    let dir = tempfile::tempdir().unwrap();
    let path = "./x\u{1b}[2J\u{1b}]0;owned\u{7}\rwarden: all 3 grants ok\u{202e}txt";
    let mut p = WatPlugin::new("refused");
    p.manifest = hostile_manifest("refused", "about", path);
    let plugin = write_plugin(dir.path(), "refused", &p);
    let policy = crate::policy::policy_file(
        dir.path(),
        "refuse.toml",
        "version = 1\n[defaults]\non_denied = \"refuse\"\n",
    );
    let policy = policy.to_str().unwrap();
    let log = dir.path().join("audit.jsonl");
    let workdir = dir.path().to_str().unwrap();
    let run = |json: bool| {
        let mut cmd = warden_command();
        cmd.args([
            "run",
            "--policy",
            policy,
            "--workdir",
            workdir,
            "--audit-log",
        ])
        .arg(&log);
        if json {
            cmd.arg("--json");
        }
        cmd.arg(&plugin).output().unwrap()
    };

    let out = run(false);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert_no_raw_controls("run stderr", &out.stderr);
    assert_no_raw_controls("run stdout", &out.stdout);
    let err = stderr(&out);
    assert!(err.contains("refused to run plugin `refused`"), "{err}");
    assert!(
        err.contains("\\u{1b}[2J\\u{1b}]0;owned\\u{7}\\rwarden: all 3 grants ok\\u{202e}txt"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let out = run(true);
    assert_eq!(out.status.code(), Some(77));
    assert_no_raw_controls("run --json stdout", &out.stdout);
    assert_no_raw_controls("run --json stderr", &out.stderr);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "refused");
    assert_eq!(v["denials"][0]["request"], path);

    let out = warden(&[
        "policy",
        "explain",
        "--policy",
        policy,
        "--workdir",
        workdir,
        &plugin,
    ]);
    assert_eq!(out.status.code(), Some(77), "{}", stderr(&out));
    assert_no_raw_controls("policy explain", &out.stdout);
    assert!(
        stdout(&out).contains("refused (exit 77)"),
        "{}",
        stdout(&out)
    );

    let out = warden(&["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_no_raw_controls("audit log", &std::fs::read(&log).unwrap());
}

/// A C1 CSI (U+009B, "clear screen" on terminals that take 8-bit controls) and a
/// right-to-left override (U+202E, which shows `exe.txt` as `txt.exe`).
const SNEAKY: &str = "left\u{9b}2Jright\u{202e}exe.txt\u{2066}\u{2028}end";

#[test]
fn json_output_escapes_c1_and_bidi_controls_and_keeps_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let workdir = dir.path().to_str().unwrap();
    let log = dir.path().join("audit.jsonl");
    let path = format!("./data{SNEAKY}");
    let mut p = WatPlugin::new("sneaky");
    p.manifest = hostile_manifest("sneaky", SNEAKY, &path);
    p.result = result_bytes(&warden::abi::ExecuteResult::Success(SNEAKY.into()));
    let ok = write_plugin(dir.path(), "sneaky", &p);
    p.result = result_bytes(&warden::abi::ExecuteResult::Error(
        warden::abi::ExecuteError {
            code: 1,
            message: SNEAKY.into(),
        },
    ));
    let failing = write_plugin(dir.path(), "failing", &p);
    let run = |args: &[&str]| {
        warden_command()
            .args(["run", "--workdir", workdir, "--audit-log"])
            .arg(&log)
            .args(args)
            .output()
            .unwrap()
    };

    // run --json: the plugin's output, its error message, the declared path.
    for (plugin, code, outcome) in [(&ok, 0, "success"), (&failing, 1, "plugin_error")] {
        let out = run(&["--json", plugin]);
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert_no_raw_controls("run --json", &out.stdout);
        let text = stdout(&out);
        assert!(
            text.contains("\\u009b") && text.contains("\\u202e"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["outcome"], outcome);
        assert_eq!(v["output"], SNEAKY);
        assert_eq!(v["denials"][0]["request"], path.as_str());
    }

    // inspect --json: about, version, author, the declared path.
    let out = warden(&["inspect", "--json", &ok]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_raw_controls("inspect --json", &out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in ["about", "version", "author"] {
        assert_eq!(v[field], SNEAKY, "{field}");
    }
    assert_eq!(v["capabilities"]["fs_read"][0]["pattern"], path.as_str());

    // policy explain --json: the version and the declared item.
    let out = warden(&["policy", "explain", "--workdir", workdir, "--json", &ok]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_raw_controls("policy explain --json", &out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["plugin"]["version"], SNEAKY);
    assert_eq!(v["decisions"][0]["request"], path.as_str());

    // Plain output: visible escapes on stdout and stderr.
    let out = run(&[&ok]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_raw_controls("run stdout", &out.stdout);
    assert_eq!(
        stdout(&out),
        "left\\u{9b}2Jright\\u{202e}exe.txt\\u{2066}\\u{2028}end\n"
    );
    let out = run(&[&failing]);
    assert_eq!(out.status.code(), Some(1));
    assert_no_raw_controls("run stderr", &out.stderr);
    assert!(
        stderr(&out).contains("right\\u{202e}exe.txt"),
        "{}",
        stderr(&out)
    );
    for args in [
        vec!["inspect", ok.as_str()],
        vec!["policy", "explain", "--workdir", workdir, ok.as_str()],
    ] {
        let out = warden(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_no_raw_controls(args[0], &out.stdout);
        assert!(stdout(&out).contains("\\u{202e}"), "{}", stdout(&out));
    }

    // The audit log holds the declared path escaped the same way, and verifies.
    let text = std::fs::read(&log).unwrap();
    assert_no_raw_controls("audit log", &text);
    assert!(String::from_utf8_lossy(&text).contains("./dataleft\\u009b2Jright\\u202eexe.txt"));
    let out = warden(&["audit", "verify", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn run_verbose_and_json_say_what_confines_the_plugin() {
    let hello = example_plugin("hello");
    let out = warden(&["run", "-v", hello.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Hello, World!\n");
    let line = stderr(&out);
    assert!(
        line.lines()
            .any(|l| l.starts_with("warden: confinement: process, ")
                && l.contains("syscalls enforced")),
        "{line}"
    );
    let out = warden(&["run", "--json", hello.to_str().unwrap()]);
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["confinement"]["isolation"], "process", "{value}");
    assert_eq!(
        value["confinement"]["syscalls"]["status"], "enforced",
        "{value}"
    );
}

#[test]
fn a_rejected_cache_entry_prints_one_warning_line() {
    let cache = tempfile::tempdir().unwrap();
    let hello = example_plugin("hello");
    let run = |env: &[(&str, &str)]| {
        let mut cmd = warden_command();
        cmd.env("XDG_CACHE_HOME", cache.path())
            .env_remove("WARDEN_LOG")
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(["run", hello.to_str().unwrap()]).output().unwrap()
    };
    let first = run(&[]);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(stderr(&first), "", "a clean run prints no diagnostics");
    // Corrupt every compiled entry in place (same owner and mode): the next run ignores it,
    // says so once on stderr, and still prints the greeting on stdout alone.
    let dir = cache.path().join("warden");
    let mut corrupted = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            std::fs::write(&path, bytes).unwrap();
            corrupted += 1;
        }
    }
    assert!(corrupted >= 1, "no cache entry under {}", dir.display());
    let second = run(&[]);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert_eq!(stdout(&second), "Hello, World!\n");
    let warnings: Vec<String> = stderr(&second).lines().map(str::to_owned).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("warden: WARN ")
            && warnings[0].contains("ignoring compiled-module cache entry; recompiling"),
        "{warnings:?}"
    );
    // `WARDEN_LOG=error` silences it.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            std::fs::write(&path, b"not an entry").unwrap();
        }
    }
    let quiet = run(&[("WARDEN_LOG", "error")]);
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(stderr(&quiet), "");
}

#[test]
fn a_file_that_is_not_wasm_gets_one_line_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes, expected) in [
        (
            "text.wasm",
            &b"hello, this is text\n"[..],
            "the file is not a WebAssembly module (it does not start with `\\0asm`)",
        ),
        (
            "component.wasm",
            &b"\0asm\x0d\0\x01\0"[..],
            "the file is a WebAssembly component; warden runs core modules (wasm32-wasip1)",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = warden(&["run", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(65));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn help_names_every_subcommand_and_run_json_fields() {
    let out = warden(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let help = stdout(&out);
    for word in [
        "check",
        "explain",
        "suggest",
        "pin",
        "verify",
        "show",
        "summary",
        "checkpoint",
        "keygen",
    ] {
        assert!(help.contains(word), "`warden --help` omits {word}:\n{help}");
    }
    let out = warden(&["run", "--help"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let help = stdout(&out);
    for field in [
        "stdout",
        "stderr",
        "runtime_denials_dropped",
        "run_id",
        "confinement",
    ] {
        assert!(
            help.contains(field),
            "`warden run --help` omits {field}:\n{help}"
        );
    }
}

#[test]
fn audit_show_refuses_an_unknown_event_with_a_suggestion() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("audit.jsonl");
    std::fs::write(&log, "").expect("empty log");
    let log = log.to_str().expect("utf-8 path");
    let out = warden(&["audit", "show", "--event", "bogus", log]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("bogus"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    // A near miss gets clap's did-you-mean.
    let out = warden(&["audit", "show", "--event", "run_ends", log]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("run_ends"), "{}", stderr(&out));
    assert!(stderr(&out).contains("run_end"), "{}", stderr(&out));
    // Every event a record can have is accepted.
    for event in [
        "policy_loaded",
        "policy_rejected",
        "plugin_loaded",
        "plugin_rejected",
        "grant",
        "deny",
        "run_start",
        "runtime_deny",
        "limit_exceeded",
        "effect",
        "access",
        "checkpoint",
        "run_end",
    ] {
        let out = warden(&["audit", "show", "--event", event, log]);
        assert_eq!(out.status.code(), Some(0), "{event}: {}", stderr(&out));
    }
}

/// `audit show`, `audit summary` and `policy suggest` given a file that is not an
/// audit log: exit 65, one line naming the file and its first line that is not a
/// record, never an empty answer.
#[test]
fn reviewer_commands_refuse_a_file_that_is_not_an_audit_log() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_json = dir.path().join("notes.txt");
    std::fs::write(&not_json, "hello\nworld\n").expect("write");
    let not_records = dir.path().join("other.jsonl");
    std::fs::write(&not_records, "{\"a\":1}\n{\"b\":2}\n").expect("write");
    // A record line, then a foreign one: the first bad line is the second.
    let later = dir.path().join("later.jsonl");
    let log = test_state_dir().join("for-later.jsonl");
    let hello = example_plugin("hello");
    let log_arg = format!("--audit-log={}", log.display());
    let out = warden(&["run", &log_arg, hello.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let first = std::fs::read_to_string(&log)
        .expect("log")
        .lines()
        .next()
        .expect("a record")
        .to_owned();
    std::fs::write(&later, format!("{first}\nnot a record\n")).expect("write");
    for (file, line) in [(&not_json, 1), (&not_records, 1), (&later, 2)] {
        let path = file.to_str().expect("utf-8 path");
        for args in [
            &["audit", "show", path][..],
            &["audit", "show", "--json", path],
            &["audit", "summary", path],
            &["audit", "summary", "--json", path],
            &["policy", "suggest", path],
        ] {
            let out = warden(args);
            assert_eq!(out.status.code(), Some(65), "{args:?}: {}", stderr(&out));
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(path), "{args:?}: {err}");
            assert!(err.contains(&format!("line {line} ")), "{args:?}: {err}");
            if line == 1 {
                assert!(out.stdout.is_empty(), "{args:?}: {}", stdout(&out));
            }
        }
    }
}

#[test]
fn completions_cover_every_command_and_refuse_an_unknown_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = warden(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for word in [
            "run",
            "inspect",
            "policy",
            "suggest",
            "pin",
            "audit",
            "checkpoint",
        ] {
            assert!(script.contains(word), "{shell} completions omit {word}");
        }
    }
    let out = warden(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("possible values: bash"),
        "{}",
        stderr(&out)
    );
}

/// The man pages in `docs/man/` are what `warden man-pages` writes today: a help text
/// changed without `docs/man/generate.sh` fails here.
#[test]
fn the_committed_man_pages_are_current() {
    let dir = tempfile::tempdir().unwrap();
    let out = warden(&["man-pages", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/man");
    let names = |d: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".1"))
            .collect();
        v.sort();
        v
    };
    let written = names(dir.path());
    assert!(
        written.contains(&"warden-policy-pin.1".to_owned()),
        "{written:?}"
    );
    assert_eq!(written, names(&committed), "run docs/man/generate.sh");
    for name in &written {
        let fresh = std::fs::read(dir.path().join(name)).unwrap();
        let kept = std::fs::read(committed.join(name)).unwrap();
        assert!(
            fresh == kept,
            "docs/man/{name} is stale: run docs/man/generate.sh"
        );
    }
}

#[test]
fn since_takes_rfc3339_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let hello = example_plugin("hello");
    let out = warden_command()
        .env("WARDEN_AUDIT_LOG", &log)
        .args(["run", hello.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let show = |since: &str| {
        warden(&[
            "audit",
            "show",
            "--json",
            "--since",
            since,
            log.to_str().unwrap(),
        ])
    };
    // Every record of the run is after 2020, wherever the offset puts midnight.
    let out = show("2020-01-01T00:00:00+02:00");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("\"event\":\"run_end\""),
        "{}",
        stdout(&out)
    );
    let out = show("2999-01-01T00:00:00-05:00");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stdout(&out).contains("\"event\""), "{}", stdout(&out));
    let out = show("2020-13-01T00:00:00+02:00");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn everything_after_the_plugin_path_belongs_to_the_plugin() {
    let hello = example_plugin("hello");
    let hello = hello.to_str().unwrap();
    for (args, greeting) in [
        (vec!["--json"], "Hello, --json!\n"),
        (vec!["-v"], "Hello, -v!\n"),
        (vec!["--policy", "/nonexistent"], "Hello, --policy!\n"),
        (vec!["--", "Grace"], "Hello, Grace!\n"),
        (vec!["--", "--", "x"], "Hello, --!\n"),
    ] {
        let out = warden(&[&["run", hello][..], &args].concat());
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert_eq!(stdout(&out), greeting, "{args:?}");
        assert_eq!(stderr(&out), "", "{args:?}");
    }
    // Before the path, the same flag is warden's.
    let out = warden(&["run", "--json", hello, "Ada"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["output"], "Hello, Ada!");
    let out = warden(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<PLUGIN.wasm>"), "{}", stderr(&out));
}
