//! Redaction at the audit layer's choke point, and the records of effects: hostile
//! plugins that put a granted value into every string warden records about them
//! (URLs normalized, lower-cased, percent-encoded and cut, a result whose decode error
//! quotes the value, paths, header names, their own version), checked in the log,
//! in `warden run --json` and in `warden run -v`; requests that sleeps cannot push
//! out of the log; a request made past the deadline whose record does not claim an
//! address check. The property test over every record kind is in
//! [`crate::redaction_property`].

use crate::common::*;
use crate::network::{Server, hello, http};
use std::path::PathBuf;
use std::process::Output;
use warden::abi::{
    Capabilities, CommandSpec, Effect, ExecuteResult, NetPattern, PathPattern, PluginManifest,
    StdioCapability,
};
use warden::host::{Loaded, Warden};

// ---------------------------------------------------------------------------------
// A plugin that makes WASI calls, then returns a script of results, writing nothing.

/// A WASI call the probe makes at the start of `plugin_execute`, on descriptor 3 (its
/// first preopen).
#[derive(Debug, Clone)]
pub enum Call {
    /// `path_open` of the path (for reading, or created for writing).
    Open { path: Vec<u8>, create: bool },
    /// `path_symlink` of `link` to `target`.
    Symlink { target: Vec<u8>, link: Vec<u8> },
}

/// A hand-written plugin: its manifest, the WASI calls `plugin_execute` makes, and the
/// results it returns (the first from `plugin_execute`, the n-th from the n-th
/// `plugin_resume`). It prints nothing: what `warden run` shows of it is warden's.
#[derive(Debug, Clone)]
pub struct Probe {
    pub name: String,
    pub version: String,
    pub caps: Capabilities,
    pub calls: Vec<Call>,
    pub steps: Vec<Vec<u8>>,
}

/// Where the manifest goes; the results and the calls' paths go at [`BLOB_AT`].
const MANIFEST_AT: u32 = 1024;
const BLOB_AT: u32 = 65536;
/// `plugin_alloc` bumps from here (after up to 192 KiB of results and paths).
const HEAP_AT: u32 = 262_144;
/// Where `path_open` writes the descriptor it opened.
const SCRATCH: u32 = 512;

impl Probe {
    pub fn new(name: &str, caps: Capabilities) -> Probe {
        Probe {
            name: name.into(),
            version: "1.0.0".into(),
            caps,
            calls: Vec::new(),
            steps: Vec::new(),
        }
    }

    /// Returns `result` next.
    pub fn then(mut self, result: &ExecuteResult) -> Probe {
        self.steps.push(result_bytes(result));
        self
    }

    /// Returns these raw bytes next (a result that may not decode).
    pub fn then_bytes(mut self, bytes: Vec<u8>) -> Probe {
        self.steps.push(bytes);
        self
    }

    pub fn manifest(&self) -> Vec<u8> {
        let manifest = PluginManifest {
            api_version: 2,
            command: CommandSpec {
                name: self.name.clone(),
                about: "a hand-written probe".into(),
                version: Some(self.version.clone()),
                author: None,
                args: vec![],
                subcommands: vec![],
            },
            capabilities: self.caps.clone(),
        };
        rmp_serde::to_vec_named(&manifest).expect("manifest encodes")
    }

    pub fn wat(&self) -> String {
        let manifest = self.manifest();
        assert!(manifest.len() < (BLOB_AT - MANIFEST_AT) as usize);
        let mut blob = Vec::new();
        let mut arms = String::new();
        for (i, step) in self.steps.iter().enumerate() {
            let packed = WatPlugin::packed(BLOB_AT + blob.len() as u32, step.len() as u32);
            arms.push_str(&format!(
                "(if (i32.eq (local.get $i) (i32.const {i})) (then (return {packed})))\n"
            ));
            blob.extend(step);
        }
        let mut place = |bytes: &[u8]| {
            let at = BLOB_AT + blob.len() as u32;
            blob.extend(bytes);
            (at, bytes.len() as u32)
        };
        let mut calls = String::new();
        for call in &self.calls {
            match call {
                Call::Open { path, create } => {
                    let (at, len) = place(path);
                    // oflags O_CREAT (1), rights fd_read (2) | fd_write (64).
                    let (oflags, rights) = if *create { (1, 66) } else { (0, 2) };
                    calls.push_str(&format!(
                        "(drop (call $path_open (i32.const 3) (i32.const 0) (i32.const {at}) (i32.const {len}) \
                         (i32.const {oflags}) (i64.const {rights}) (i64.const 0) (i32.const 0) (i32.const {SCRATCH})))\n"
                    ));
                }
                Call::Symlink { target, link } => {
                    let (t_at, t_len) = place(target);
                    let (l_at, l_len) = place(link);
                    calls.push_str(&format!(
                        "(drop (call $path_symlink (i32.const {t_at}) (i32.const {t_len}) (i32.const 3) \
                         (i32.const {l_at}) (i32.const {l_len})))\n"
                    ));
                }
            }
        }
        assert!(BLOB_AT as usize + blob.len() < HEAP_AT as usize);
        format!(
            r#"(module
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 8)
  (global $bump (mut i32) (i32.const {HEAP_AT}))
  (global $n (mut i32) (i32.const 0))
  (data (i32.const {MANIFEST_AT}) "{manifest}")
  (data (i32.const {BLOB_AT}) "{blob}")
  (func (export "plugin_manifest") (result i64) {packed_manifest})
  (func (export "plugin_alloc") (param $size i32) (result i32)
    (local $p i32) (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (local.get $size))) (local.get $p))
  (func (export "plugin_dealloc") (param i32 i32))
  (func $step (param $i i32) (result i64)
    {arms}
    (unreachable))
  (func (export "plugin_execute") (param $ptr i32) (param $len i32) (result i64)
    {calls}
    {first})
  (func (export "plugin_resume") (param $id i32) (param $ptr i32) (param $len i32) (result i64)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (call $step (global.get $n)))
)"#,
            manifest = wat_bytes(&manifest),
            blob = wat_bytes(&blob),
            packed_manifest = WatPlugin::packed(MANIFEST_AT, manifest.len() as u32),
            // The first result without a call after the WASI calls: a call is where
            // the epoch deadline interrupts wasm code.
            first = match self.steps.first() {
                Some(step) => WatPlugin::packed(BLOB_AT, step.len() as u32),
                None => "(unreachable)".to_owned(),
            },
        )
    }

    pub fn bytes(&self) -> Vec<u8> {
        wat::parse_str(self.wat()).expect("probe WAT parses")
    }
}

pub fn get_with(url: &str, headers: &[(&str, &str)]) -> ExecuteResult {
    ExecuteResult::Effect(Effect::HttpGet {
        id: 1,
        url: url.into(),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    })
}

pub fn sleep(ms: u64) -> ExecuteResult {
    ExecuteResult::Effect(Effect::Sleep {
        id: 2,
        duration_ms: ms,
    })
}

/// A result that does not decode: a map whose one key is `variant`, which the decoder
/// quotes (`unknown variant ...`).
pub fn unknown_variant(variant: &str) -> Vec<u8> {
    let mut map = std::collections::BTreeMap::new();
    map.insert(variant.to_owned(), ());
    rmp_serde::to_vec(&map).expect("map encodes")
}

// ---------------------------------------------------------------------------------
// A folder with a policy, a plugin and a log, run through `warden run`.

pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(policy: &str, wasm: &[u8]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        crate::policy::policy_file(dir.path(), "policy.toml", policy);
        std::fs::write(dir.path().join("plugin.wasm"), wasm).unwrap();
        Site { dir }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn log(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    /// `warden run [flags] plugin.wasm` with `env` added to its environment.
    pub fn warden_run(&self, flags: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = crate::cli::warden_command();
        cmd.arg("run")
            .args(flags)
            .arg("--policy")
            .arg(self.path("policy.toml"))
            .arg("--audit-log")
            .arg(self.log())
            .arg("--workdir")
            .arg(self.dir.path())
            .arg(self.path("plugin.wasm"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    /// A host for this site with `env` as its environment.
    pub fn warden(&self, env: &[(&str, &str)]) -> Warden {
        Warden::builder()
            .worker_program(env!("CARGO_BIN_EXE_warden"))
            .policy_file(self.path("policy.toml"))
            .audit_log(self.log())
            .workdir(self.dir.path())
            .env(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
            .without_cache()
            .build()
            .unwrap()
    }

    pub fn records(&self, event: &str) -> Vec<serde_json::Value> {
        log_records(&self.log())
            .into_iter()
            .filter(|r| r["event"] == event)
            .collect()
    }

    /// The chain verifies and every `run_start` has its `run_end`.
    pub fn assert_log_complete(&self) {
        let all = log_records(&self.log());
        let starts = all.iter().filter(|r| r["event"] == "run_start").count();
        let ends = all.iter().filter(|r| r["event"] == "run_end").count();
        assert!(starts <= ends, "a run_start without its run_end");
        assert_log_verifies(&self.log());
    }
}

// ---------------------------------------------------------------------------------
// The oracle: does a text show a value, or a form of it? Written here, apart from
// warden's redactor: it decodes every `%XX`, folds ASCII case, reads JSON strings, and
// looks for every prefix of 8 bytes or more before a cut mark.

/// `text` with every `%XX` escape decoded (lossily).
fn percent_decoded(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            out.push(
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap(),
            );
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every string a line holds: the line, and when it is JSON, each string in it.
fn strings_of(line: &str) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            serde_json::Value::Object(o) => o.iter().for_each(|(k, v)| {
                out.push(k.clone());
                walk(v, out);
            }),
            _ => {}
        }
    }
    let mut out = vec![line.to_owned()];
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
        walk(&v, &mut out);
    }
    out
}

/// The first place `text` (log lines, command output) shows `value`: itself, in
/// another ASCII case, with any of its bytes percent-encoded, or a prefix of 8 bytes
/// or more right before a `...[cut]` mark.
pub fn leak(text: &str, value: &str) -> Option<String> {
    let wanted = value.to_ascii_lowercase();
    for line in text.lines() {
        for s in strings_of(line) {
            for view in [s.clone(), percent_decoded(&s)] {
                let view = view.to_ascii_lowercase();
                if view.contains(&wanted) {
                    return Some(format!("the value in {line:?}"));
                }
                for (at, _) in view.match_indices("...[cut]") {
                    let mut before = &view[..at];
                    loop {
                        let trimmed = before
                            .trim_end_matches('\u{fffd}')
                            .trim_end_matches(|c: char| c.is_ascii_hexdigit())
                            .trim_end_matches('%');
                        if trimmed.len() == before.len() {
                            break;
                        }
                        // A hex digit is trimmed only after a `%`.
                        if before[trimmed.len()..].starts_with('%')
                            || before[trimmed.len()..].starts_with('\u{fffd}')
                        {
                            before = trimmed;
                        } else {
                            break;
                        }
                    }
                    for k in 8..wanted.len() {
                        if before.as_bytes().ends_with(&wanted.as_bytes()[..k]) {
                            return Some(format!("{k} bytes of the value at a cut in {line:?}"));
                        }
                    }
                }
            }
        }
    }
    None
}

/// Asserts that none of `texts` shows any of `values`.
pub fn assert_no_leak(texts: &[(&str, &str)], values: &[&str]) {
    for (what, text) in texts {
        for value in values {
            if let Some(place) = leak(text, value) {
                panic!("{what} shows {value:?}: {place}");
            }
        }
    }
}

fn out_text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn caps(env: &[&str], net: Vec<NetPattern>) -> Capabilities {
    Capabilities {
        env_read: env.iter().map(|s| (*s).to_owned()).collect(),
        net,
        stdio: StdioCapability::default(),
        ..Capabilities::default()
    }
}

// ---------------------------------------------------------------------------------
// Defect 2: effect URLs.

/// A webhook URL held in a granted variable, normalized by the URL parser (`:443`
/// added); a key in a host, lower-cased; a value with characters the parser
/// percent-encodes, and partly percent-encoded by the plugin itself in lower-case hex;
/// a key straddling the 2,048-byte cut of a URL. None of them, in any of those forms,
/// is in the log, in `--json` or in `-v`.
#[test]
fn effect_urls_never_show_a_granted_value_in_any_form() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let hook = "https://hooks.example.test/services/T0123/B0456/XyZsecretPATH";
    let key = "MiXeDcAsEkEy42";
    let pass = "s3cret value \"with\" <odd> chars é";
    let cut_key = "CutKeyQ7w8e9r0t1y2u3";
    // Port 1 is not declared: refused, and shown by -v.
    let base = "http://127.0.0.1:1/";
    // The key starts 10 bytes before the cut: its first 10 bytes are all that is left.
    let filler = "a".repeat(2048 - base.len() - 10);
    let lower_hex: String = key.bytes().map(|b| format!("%{b:02x}")).collect();
    let probe = Probe::new(
        "url-probe",
        caps(
            &["APP_HOOK", "APP_KEY", "APP_PASS", "APP_CUT"],
            vec![http("127.0.0.1", port)],
        ),
    )
    // Refused (undeclared), shown by -v: the webhook, normalized with `:443`.
    .then(&get_with(hook, &[]))
    // Refused: the key as a host, which the parser lower-cases.
    .then(&get_with(&format!("https://{key}.example.test/x"), &[]))
    // Sent: the value percent-encoded by the parser (upper hex), and the key by the
    // plugin (lower hex), and as a dropped header's name.
    .then(&get_with(
        &format!("http://127.0.0.1:{port}/{pass}/{lower_hex}"),
        &[(&format!("proxy-{key}"), "x")],
    ))
    // Refused (undeclared port): the key straddling the cut.
    .then(&get_with(&format!("{base}{filler}{cut_key}"), &[]))
    .then(&ExecuteResult::Success("done".into()));
    let policy = format!(
        "version = 1\n[plugins.url-probe]\nenv.allow = [\"APP_*\"]\nnet.allow = [\"http://127.0.0.1:{port}\"]\n"
    );
    let site = Site::new(&policy, &probe.bytes());
    let env = [
        ("APP_HOOK", hook),
        ("APP_KEY", key),
        ("APP_PASS", pass),
        ("APP_CUT", cut_key),
    ];
    let verbose = site.warden_run(&["-v"], &env);
    assert_eq!(verbose.status.code(), Some(0), "{:?}", out_text(&verbose));
    let json = site.warden_run(&["--json"], &env);
    assert_eq!(json.status.code(), Some(0), "{:?}", out_text(&json));
    // The sent request reached the server, both times.
    assert_eq!(server.seen().len(), 2);

    let log = std::fs::read_to_string(site.log()).unwrap();
    let (v_out, v_err) = out_text(&verbose);
    let (j_out, j_err) = out_text(&json);
    let texts = [
        ("the log", log.as_str()),
        ("-v stdout", v_out.as_str()),
        ("-v stderr", v_err.as_str()),
        ("--json stdout", j_out.as_str()),
        ("--json stderr", j_err.as_str()),
    ];
    assert_no_leak(
        &texts,
        &[
            hook,
            "https://hooks.example.test:443/services/T0123/B0456/XyZsecretPATH",
            "XyZsecretPATH",
            key,
            pass,
            cut_key,
        ],
    );

    // Not vacuous: the records are there, redacted where the values were.
    let urls: Vec<String> = site
        .records("effect")
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 8, "{urls:?}");
    assert_eq!(urls[0], "<redacted:APP_HOOK>");
    assert_eq!(urls[1], "https://<redacted:APP_KEY>.example.test:443/x");
    assert!(
        urls[2].ends_with("/<redacted:APP_PASS>/<redacted:APP_KEY>"),
        "{}",
        urls[2]
    );
    assert!(
        urls[3].ends_with("aaaa<redacted:APP_CUT>...[cut]"),
        "{}",
        &urls[3][urls[3].len() - 40..]
    );
    let effects = site.records("effect");
    assert_eq!(effects[2]["dropped_headers"][0], "proxy-<redacted:APP_KEY>");
    assert!(
        v_err.contains("refused http_get <redacted:APP_HOOK> by `builtin.net.undeclared`"),
        "{v_err}"
    );
    let report: serde_json::Value = serde_json::from_str(j_out.trim()).unwrap();
    assert_eq!(
        report["effects"][1]["url"],
        "https://<redacted:APP_KEY>.example.test:443/x"
    );
    site.assert_log_complete();
}

// ---------------------------------------------------------------------------------
// Defect 3: `run_end.error`.

/// A plugin returns a result that does not decode, whose error quotes a granted value
/// (`unknown variant <APP_KEY value>`): the value is in no `run_end`, no `--json`
/// output and no error line.
#[test]
fn an_error_that_quotes_a_granted_value_is_redacted_everywhere() {
    let secret = "Unknown-Variant-S3cret";
    let probe =
        Probe::new("result-probe", caps(&["APP_KEY"], vec![])).then_bytes(unknown_variant(secret));
    let site = Site::new(
        "version = 1\n[plugins.result-probe]\nenv.allow = [\"APP_KEY\"]\n",
        &probe.bytes(),
    );
    let env = [("APP_KEY", secret)];
    let plain = site.warden_run(&[], &env);
    let verbose = site.warden_run(&["-v"], &env);
    let json = site.warden_run(&["--json"], &env);
    for out in [&plain, &verbose, &json] {
        assert_eq!(out.status.code(), Some(65), "{:?}", out_text(out));
    }
    let log = std::fs::read_to_string(site.log()).unwrap();
    let (p_out, p_err) = out_text(&plain);
    let (v_out, v_err) = out_text(&verbose);
    let (j_out, j_err) = out_text(&json);
    assert_no_leak(
        &[
            ("the log", &log),
            ("stdout", &p_out),
            ("stderr", &p_err),
            ("-v stdout", &v_out),
            ("-v stderr", &v_err),
            ("--json stdout", &j_out),
            ("--json stderr", &j_err),
        ],
        &[secret],
    );
    let ends = site.records("run_end");
    assert_eq!(ends.len(), 3);
    for end in &ends {
        let error = end["error"].as_str().unwrap();
        assert!(
            error.contains("unknown variant `<redacted:APP_KEY>`"),
            "{error}"
        );
    }
    assert!(
        p_err.contains("unknown variant `<redacted:APP_KEY>`"),
        "{p_err}"
    );
    let report: serde_json::Value = serde_json::from_str(j_out.trim()).unwrap();
    assert!(
        report["output"]
            .as_str()
            .unwrap()
            .contains("unknown variant `<redacted:APP_KEY>`"),
        "{report}"
    );
    site.assert_log_complete();
}

// ---------------------------------------------------------------------------------
// Defect 4: sleeps and requests.

/// 64 `Sleep(0)`, then a request that reaches its server: the request has its own
/// record, and `run_end` counts and sums the sleeps.
#[test]
fn sleeps_never_push_a_request_out_of_the_log() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let mut probe = Probe::new("sleepy", caps(&[], vec![http("127.0.0.1", port)]));
    for _ in 0..64 {
        probe = probe.then(&sleep(0));
    }
    let probe = probe
        .then(&get_with(
            &format!("http://127.0.0.1:{port}/after-sleeping"),
            &[],
        ))
        .then(&ExecuteResult::Success("done".into()));
    let site = Site::new(
        &format!("version = 1\n[plugins.sleepy]\nnet.allow = [\"http://127.0.0.1:{port}\"]\n"),
        &probe.bytes(),
    );
    let warden = site.warden(&[]);
    let Loaded::Ready(plugin) = warden.load(site.path("plugin.wasm")).unwrap() else {
        panic!("refused")
    };
    let report = plugin.run(&[]).unwrap();
    assert_eq!(report.result, Ok(ExecuteResult::Success("done".into())));
    warden.flush().unwrap();
    assert_eq!(
        server.seen().len(),
        1,
        "the request reached the server once"
    );
    let effects = site.records("effect");
    let requests: Vec<&serde_json::Value> =
        effects.iter().filter(|e| e["kind"] == "http_get").collect();
    assert_eq!(requests.len(), 1, "{effects:?}");
    let request = requests[0];
    assert_eq!(request["outcome"], "performed", "{request}");
    assert_eq!(request["status"], 200, "{request}");
    assert_eq!(
        request["url"],
        format!("http://127.0.0.1:{port}/after-sleeping")
    );
    assert_eq!(request["checked"], serde_json::json!(["url", "address"]));
    let sleeps = effects.iter().filter(|e| e["kind"] == "sleep").count();
    assert_eq!(sleeps, warden::audit::MAX_LOGGED_SLEEPS);
    let end = site.records("run_end").pop().unwrap();
    assert_eq!(end["sleeps"], 64, "{end}");
    assert_eq!(end["slept_ms"], 0, "{end}");
    assert!(end.get("effects_dropped").is_none(), "{end}");
    site.assert_log_complete();
}

// ---------------------------------------------------------------------------------
// Defect 1 (recording side): a request past the deadline.

/// The plugin blocks in `path_open` of a FIFO (a host call, which the epoch does not
/// interrupt) until well past its 200 ms deadline, then asks for a request to a
/// loopback literal: the request ends as the call's timeout before its address is
/// checked, and its record says it passed the URL check only.
#[test]
fn a_request_past_the_deadline_does_not_claim_an_address_check() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let probe = {
        let mut p = Probe::new("late", caps(&[], vec![http("127.0.0.1", port)]));
        p.caps.fs_read.push(PathPattern {
            pattern: "./pipes".into(),
            recursive: false,
        });
        p.calls.push(Call::Open {
            path: b"fifo".to_vec(),
            create: false,
        });
        p.then(&get_with(&format!("http://127.0.0.1:{port}/late"), &[]))
            .then(&ExecuteResult::Success("done".into()))
    };
    let site = Site::new(
        &format!(
            // In warden's own process: a worker blocked in `open` past its deadline is
            // killed there and never gets to ask (`confine::a_worker_stuck_past_its_deadline_is_killed`).
            "version = 1\n[plugins.late]\nisolation = \"in-process\"\ntimeout = \"200ms\"\nfs.read = [\"./pipes\"]\nnet.allow = [\"http://127.0.0.1:{port}\"]\n"
        ),
        &probe.bytes(),
    );
    std::fs::create_dir(site.path("pipes")).unwrap();
    let fifo = site.path("pipes/fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let warden = site.warden(&[]);
    let Loaded::Ready(plugin) = warden.load(site.path("plugin.wasm")).unwrap() else {
        panic!("refused")
    };
    // The writer opens the FIFO (which lets the plugin's open return) ten deadlines
    // after the call starts.
    let writer = std::thread::spawn(move || {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::thread::sleep(std::time::Duration::from_secs(2));
        // Non-blocking: it opens only while the plugin waits to read, and never
        // hangs the test if it does not.
        for _ in 0..400 {
            if let Ok(file) = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&fifo)
            {
                return Some(file);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        None
    });
    let report = plugin.run(&[]).unwrap();
    assert!(
        writer.join().unwrap().is_some(),
        "the plugin never opened the FIFO"
    );
    assert_eq!(report.exit_code(), 124, "{:?}", report.result);
    warden.flush().unwrap();
    assert!(
        server.seen().is_empty(),
        "nothing may be sent past the deadline"
    );
    let effects = site.records("effect");
    assert_eq!(effects.len(), 1, "{effects:?}");
    let late = &effects[0];
    assert_eq!(late["outcome"], "failed", "{late}");
    assert_eq!(late["limit"], "timeout", "{late}");
    assert_eq!(late["checked"], serde_json::json!(["url"]), "{late}");
    assert!(late.get("address").is_none(), "{late}");
    site.assert_log_complete();
}
