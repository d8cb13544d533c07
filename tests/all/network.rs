//! Network effects (`POLICY.md` rule 7) against servers these tests start on
//! loopback: allowed requests end to end, SSRF attempts refused with their rule and
//! nothing reaching the server that must not be reached, the bounds, HTTPS with a
//! private CA, and the policy keys' errors.
//!
//! Most tests use a hand-written WAT plugin (`scripted`) whose manifest declares what
//! the test needs and whose calls return a fixed script of effects; it writes every
//! answer it is resumed with to stdout, framed, so the test sees exactly what the
//! plugin got. The end-to-end test uses the example `fetcher` through `warden run`.

use crate::common::*;
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use warden::abi::{
    Capabilities, Effect, EffectResult, ExecuteResult, NetPattern, NetProtocol, StdioCapability,
};
use warden::host::{Loaded, Warden};
use warden::runtime::RunReport;

// ---------------------------------------------------------------------------------
// A loopback HTTP(S) server that records what reaches it.

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers.
pub enum Reply {
    /// 200 with this body and an `x-test: yes` header.
    Ok(Vec<u8>),
    /// 302 to this location.
    Redirect(String),
    /// Accept, read the request, never answer.
    Hang,
    /// 200 with `len` bytes of 0xFF (not UTF-8), announced by `Content-Length` or
    /// sent chunked; the server records how much of it it could write.
    Flood { len: usize, announced: bool },
}

pub struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Body bytes each `Flood` reply managed to write before the client hung up.
    sent: Arc<Mutex<Vec<usize>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    /// Stops accepting and closes the listener, so the port is free again.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(t) = self.accepting.take() {
            let _ = t.join();
        }
    }
}

impl Server {
    /// Serves on `127.0.0.1:port` (0: any free port), plain or with `tls`.
    pub fn start(
        port: u16,
        tls: Option<Arc<rustls::ServerConfig>>,
        route: fn(&Seen) -> Reply,
    ) -> Server {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot listen on 127.0.0.1:{port}: {e}"));
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let sent = Arc::new(Mutex::new(Vec::new()));
        let sent_log = Arc::clone(&sent);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let accepting = std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if stopped.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let log = Arc::clone(&log);
                let sent = Arc::clone(&sent_log);
                let tls = tls.clone();
                std::thread::spawn(move || {
                    let _ = match tls {
                        Some(config) => {
                            let Ok(conn) = rustls::ServerConnection::new(config) else {
                                return;
                            };
                            serve_one(rustls::StreamOwned::new(conn, stream), &log, &sent, route)
                        }
                        None => serve_one(stream, &log, &sent, route),
                    };
                });
            }
        });
        Server {
            addr,
            seen,
            sent,
            stop,
            accepting: Some(accepting),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How much of each `Flood` body was written, once the replies are over (the
    /// server thread ends its reply when the client hangs up; this waits for it).
    fn sent(&self, replies: usize) -> Vec<usize> {
        for _ in 0..600 {
            let sent = self.sent.lock().unwrap().clone();
            if sent.len() >= replies {
                return sent;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the server never finished its replies");
    }
}

fn serve_one<S: std::io::Read + std::io::Write>(
    stream: S,
    log: &Mutex<Vec<Seen>>,
    sent: &Mutex<Vec<usize>>,
    route: fn(&Seen) -> Reply,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let seen = Seen {
        method,
        path,
        headers,
        body,
    };
    log.lock().unwrap().push(seen.clone());
    let mut stream = reader.into_inner();
    match route(&seen) {
        Reply::Ok(body) => {
            write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-test: yes\r\nconnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        Reply::Redirect(to) => write!(
            stream,
            "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )?,
        Reply::Hang => std::thread::sleep(Duration::from_secs(60)),
        Reply::Flood { len, announced } => {
            let written = flood(&mut stream, len, announced);
            sent.lock().unwrap().push(written);
        }
    }
    stream.flush()
}

/// Writes a 200 whose body is `len` bytes of 0xFF; returns how many body bytes were
/// written before the client closed the connection.
fn flood<S: std::io::Write>(stream: &mut S, len: usize, announced: bool) -> usize {
    let head = if announced {
        format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n")
    } else {
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".into()
    };
    if stream.write_all(head.as_bytes()).is_err() {
        return 0;
    }
    let chunk = vec![0xFF_u8; 64 * 1024];
    let mut written = 0;
    while written < len {
        let part = &chunk[..chunk.len().min(len - written)];
        let ok = if announced {
            stream.write_all(part)
        } else {
            write!(stream, "{:x}\r\n", part.len())
                .and_then(|()| stream.write_all(part))
                .and_then(|()| stream.write_all(b"\r\n"))
        };
        if ok.is_err() {
            return written;
        }
        written += part.len();
    }
    if !announced {
        let _ = stream.write_all(b"0\r\n\r\n");
    }
    let _ = stream.flush();
    written
}

pub fn hello(_: &Seen) -> Reply {
    Reply::Ok(b"hello from the server".to_vec())
}

fn echo(seen: &Seen) -> Reply {
    Reply::Ok(seen.body.clone())
}

fn big(_: &Seen) -> Reply {
    Reply::Ok(vec![b'x'; 2 << 20])
}

fn hang(_: &Seen) -> Reply {
    Reply::Hang
}

// ---------------------------------------------------------------------------------
// The scripted plugin.

const PROBE: &str = "net-probe";

fn pattern(protocol: NetProtocol, host: &str, port: Option<u16>) -> NetPattern {
    NetPattern {
        host: host.into(),
        port,
        protocol,
    }
}

pub fn http(host: &str, port: u16) -> NetPattern {
    pattern(NetProtocol::Http, host, Some(port))
}

pub fn get(url: &str) -> ExecuteResult {
    ExecuteResult::Effect(Effect::HttpGet {
        id: 7,
        url: url.into(),
        headers: vec![],
    })
}

/// A plugin declaring `net` (and stdout) whose `plugin_execute` returns `script[0]`
/// and whose n-th `plugin_resume` writes its input to stdout (a 4-byte little-endian
/// length, then the bytes) and returns `script[n]`.
pub fn scripted(net: Vec<NetPattern>, script: &[ExecuteResult]) -> Vec<u8> {
    let caps = Capabilities {
        net,
        stdio: StdioCapability {
            stdout: true,
            ..StdioCapability::default()
        },
        ..Capabilities::default()
    };
    let mut plugin = WatPlugin::new(PROBE);
    plugin.manifest = manifest_bytes_with(PROBE, 2, caps);
    let mut blob = Vec::new();
    let mut arms = String::new();
    for (i, step) in script.iter().enumerate() {
        let bytes = result_bytes(step);
        let packed = WatPlugin::packed(RESULT_AT + blob.len() as u32, bytes.len() as u32);
        arms.push_str(&format!(
            "(if (i32.eq (local.get $i) (i32.const {i})) (then (return {packed})))\n"
        ));
        blob.extend(bytes);
    }
    plugin.result = blob;
    plugin.imports = r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#.into();
    plugin.execute_fn = Some("(call $step (i32.const 0))".into());
    plugin.extra = format!(
        r#"(global $n (mut i32) (i32.const 0))
  (func $step (param $i i32) (result i64)
    {arms}
    (unreachable))
  (func (export "plugin_resume") (param $id i32) (param $ptr i32) (param $len i32) (result i64)
    (i32.store (i32.const 512) (local.get $len))
    (i32.store (i32.const 520) (i32.const 512))
    (i32.store (i32.const 524) (i32.const 4))
    (i32.store (i32.const 528) (local.get $ptr))
    (i32.store (i32.const 532) (local.get $len))
    ;; one iovec per call: wasmtime-wasi writes only the first of several
    (drop (call $fd_write (i32.const 1) (i32.const 520) (i32.const 1) (i32.const 540)))
    (drop (call $fd_write (i32.const 1) (i32.const 528) (i32.const 1) (i32.const 540)))
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (call $step (global.get $n)))"#
    );
    plugin.bytes()
}

/// The answers the scripted plugin was resumed with, from its stdout.
fn answers(stdout: &[u8]) -> Vec<EffectResult> {
    let mut out = Vec::new();
    let mut rest = stdout;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
        assert!(
            rest.len() >= 4 + len,
            "a torn frame: {:?}",
            &stdout[..stdout.len().min(64)]
        );
        out.push(rmp_serde::from_slice(&rest[4..4 + len]).expect("an EffectResult"));
        rest = &rest[4 + len..];
    }
    out
}

/// A working directory with a policy, a plugin file and an audit log.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(policy: &str, wasm: &[u8]) -> Site {
        let dir = tempfile::tempdir().unwrap();
        crate::policy::policy_file(dir.path(), "policy.toml", policy);
        std::fs::write(dir.path().join("plugin.wasm"), wasm).unwrap();
        Site { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn log(&self) -> PathBuf {
        self.path("audit.jsonl")
    }

    /// Loads and runs the plugin through the embedding API.
    fn run(&self) -> (RunReport, Vec<EffectResult>) {
        let warden = Warden::builder()
            .worker_program(env!("CARGO_BIN_EXE_warden"))
            .policy_file(self.path("policy.toml"))
            .audit_log(self.log())
            .workdir(self.dir.path())
            .without_cache()
            .build()
            .unwrap();
        let plugin = match warden.load(self.path("plugin.wasm")).unwrap() {
            Loaded::Ready(p) => p,
            Loaded::Refused(r) => panic!("refused: {}", r.reason()),
        };
        let report = plugin.run(&[]).unwrap();
        let got = answers(&report.stdout);
        (report, got)
    }

    /// Runs the plugin through `warden run`.
    fn warden_run(&self, args: &[&str]) -> std::process::Output {
        crate::cli::warden_command()
            .arg("run")
            .arg("--policy")
            .arg(self.path("policy.toml"))
            .arg("--audit-log")
            .arg(self.log())
            .arg("--workdir")
            .arg(self.dir.path())
            .arg(self.path("plugin.wasm"))
            .args(args)
            .output()
            .unwrap()
    }

    fn records(&self, event: &str) -> Vec<serde_json::Value> {
        log_records(&self.log())
            .into_iter()
            .filter(|r| r["event"] == event)
            .collect()
    }

    /// Every run id has its `run_end`, and the chain verifies.
    fn assert_log_complete(&self) {
        let all = log_records(&self.log());
        let starts = all.iter().filter(|r| r["event"] == "run_start").count();
        let ends = all.iter().filter(|r| r["event"] == "run_end").count();
        assert_eq!(starts, ends, "a run_start without its run_end");
        let out = crate::cli::warden_command()
            .args(["audit", "verify"])
            .arg(self.log())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// A server answering with `route`, and a site whose plugin declares and is allowed
/// `http://127.0.0.1:PORT` (plus the policy lines `extra`) and GETs `/` `gets` times.
fn one_server(route: fn(&Seen) -> Reply, extra: &str, gets: usize) -> (Server, Site) {
    let server = Server::start(0, None, route);
    let port = server.port();
    let url = format!("http://127.0.0.1:{port}/");
    let mut script: Vec<ExecuteResult> = (0..gets).map(|_| get(&url)).collect();
    script.push(ExecuteResult::Success("done".into()));
    let wasm = scripted(vec![http("127.0.0.1", port)], &script);
    let table = format!("net.allow = [\"http://127.0.0.1:{port}\"]\n{extra}");
    (server, Site::new(&policy(&table), &wasm))
}

fn policy(table: &str) -> String {
    format!("version = 1\n[plugins.{PROBE}]\nstdio = [\"stdout\"]\n{table}\n")
}

fn refused_answer(a: &EffectResult) -> &str {
    match a {
        EffectResult::Error(e) => e,
        other => panic!("the plugin got {other:?}, not a refusal"),
    }
}

// ---------------------------------------------------------------------------------
// Allowed requests.

/// `fetcher` declares `http://127.0.0.1` (any port): a GET and a POST through `warden run`,
/// with status, headers and body back to the plugin and complete `effect` records.
#[test]
fn fetcher_gets_and_posts_through_warden_run() {
    let server = Server::start(0, None, echo);
    let port = server.port();
    let dir = tempfile::tempdir().unwrap();
    let policy = crate::policy::policy_file(
        dir.path(),
        "policy.toml",
        &format!("version = 1\n[plugins.fetcher]\nnet.allow = [\"http://127.0.0.1:{port}\"]\n"),
    );
    let log = dir.path().join("audit.jsonl");
    let run = |args: &[&str]| {
        crate::cli::warden_command()
            .arg("run")
            .arg("--policy")
            .arg(&policy)
            .arg("--audit-log")
            .arg(&log)
            .arg(example_plugin("fetcher"))
            .args(args)
            .output()
            .unwrap()
    };

    let out = run(&[
        "get",
        &format!("http://127.0.0.1:{port}/items?token=s3cret"),
        "x-plugin:one",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("HTTP 200\n"), "{stdout}");
    assert!(stdout.contains("x-test: yes\n"), "{stdout}");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/items?token=s3cret");
    assert_eq!(seen[0].header("x-plugin"), Some("one"));
    assert_eq!(
        seen[0].header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );

    let out = run(&[
        "post",
        &format!("http://127.0.0.1:{port}/submit"),
        "{\"a\":1}",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("\n\n{\"a\":1}"),
        "the echoed body: {stdout}"
    );
    let seen = server.seen();
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].body, b"{\"a\":1}");
    assert_eq!(seen[1].header("content-type"), Some("application/json"));

    let effects: Vec<_> = log_records(&log)
        .into_iter()
        .filter(|r| r["event"] == "effect")
        .collect();
    assert_eq!(effects.len(), 2);
    let get = &effects[0];
    assert_eq!(get["kind"], "http_get");
    assert_eq!(get["outcome"], "performed");
    assert_eq!(
        get["url"],
        format!("http://127.0.0.1:{port}/items"),
        "no query in the record"
    );
    assert_eq!(get["address"], format!("127.0.0.1:{port}"));
    assert_eq!(get["status"], 200);
    assert_eq!(get["rule"], "plugins.fetcher.net.allow[0]");
    assert_eq!(get["bytes_out"], 0);
    assert!(get["duration_ms"].is_number());
    let post = &effects[1];
    assert_eq!(post["kind"], "http_post");
    assert_eq!(post["bytes_out"], 7);
    assert_eq!(post["bytes_in"], 7);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("s3cret"), "a URL query reached the log");
    assert!(!text.contains("{\\\"a\\\":1}"), "a body reached the log");
}

/// The headers that steer the connection are warden's: a plugin's `Host` and
/// `Content-Length` are dropped (and named in the record), others pass.
#[test]
fn connection_headers_are_wardens_own() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let url = format!("http://127.0.0.1:{port}/");
    let wasm = scripted(
        vec![http("127.0.0.1", port)],
        &[
            ExecuteResult::Effect(Effect::HttpGet {
                id: 1,
                url: url.clone(),
                headers: vec![
                    ("Host".into(), "metadata.internal".into()),
                    ("Content-Length".into(), "9999".into()),
                    ("Proxy-Authorization".into(), "x".into()),
                    ("X-Ok".into(), "1".into()),
                ],
            }),
            ExecuteResult::Success("done".into()),
        ],
    );
    let site = Site::new(
        &policy(&format!("net.allow = [\"http://127.0.0.1:{port}\"]")),
        &wasm,
    );
    let (report, got) = site.run();
    assert_eq!(report.exit_code(), 0);
    match &got[0] {
        EffectResult::Http(r) => {
            assert_eq!(r.status, 200);
            assert_eq!(r.body, "hello from the server");
            assert!(r.headers.iter().any(|(k, v)| k == "x-test" && v == "yes"));
        }
        other => panic!("{other:?}"),
    }
    let seen = server.seen();
    assert_eq!(
        seen[0].header("host"),
        Some(format!("127.0.0.1:{port}").as_str())
    );
    assert_eq!(seen[0].header("x-ok"), Some("1"));
    assert_eq!(seen[0].header("proxy-authorization"), None);
    let effect = &site.records("effect")[0];
    assert_eq!(
        effect["dropped_headers"],
        serde_json::json!(["Host", "Content-Length", "Proxy-Authorization"])
    );
    site.assert_log_complete();
}

// ---------------------------------------------------------------------------------
// SSRF.

/// Asserts the plugin's answers were all refusals with these rules, recorded as
/// `denied` effects, and that `server` saw nothing.
fn assert_all_refused(site: &Site, got: &[EffectResult], rules: &[&str], server: &Server) {
    assert_eq!(got.len(), rules.len(), "{got:?}");
    for a in got {
        assert!(
            refused_answer(a).starts_with("warden refused the request: "),
            "{a:?}"
        );
    }
    let effects = site.records("effect");
    let recorded: Vec<&str> = effects
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, rules);
    for e in &effects {
        assert_eq!(e["outcome"], "denied", "{e}");
        assert!(e["reason"].as_str().is_some_and(|r| !r.is_empty()), "{e}");
    }
    assert!(
        server.seen().is_empty(),
        "a refused request reached the server"
    );
    site.assert_log_complete();
}

/// `localhost` and the names under it (RFC 6761), named in an allow entry, reach a
/// loopback server, however they are spelt; numeric spellings of loopback and a port
/// no allow entry names stay refused, and nothing of those reaches the server.
#[test]
fn localhost_allowed_by_name_reaches_loopback_and_nothing_else() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    // Another port, refused before anything connects to it.
    let other = if port == u16::MAX { port - 1 } else { port + 1 };
    let script: Vec<ExecuteResult> = [
        format!("http://localhost:{port}/a"),
        format!("HTTP://LOCALHOST.:{port}/b"),
        format!("http://api.localhost:{port}/c"),
        format!("http://localhost:{other}/"),
        format!("http://2130706433:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
    ]
    .iter()
    .map(|u| get(u))
    .chain([ExecuteResult::Success("done".into())])
    .collect();
    let declared = vec![
        pattern(NetProtocol::Http, "localhost", None),
        pattern(NetProtocol::Http, "*.localhost", None),
    ];
    let wasm = scripted(declared, &script);
    let site = Site::new(
        &policy(&format!(
            "net.allow = [\"http://localhost:{port}\", \"http://*.localhost:{port}\"]"
        )),
        &wasm,
    );
    let (report, got) = site.run();
    assert_eq!(report.exit_code(), 0);
    assert_eq!(got.len(), 6, "{got:?}");
    for answer in &got[..3] {
        assert!(
            matches!(answer, EffectResult::Http(r) if r.status == 200),
            "{answer:?}"
        );
    }
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        ["/a", "/b", "/c"],
        "only the loopback names got through"
    );
    for answer in &got[3..] {
        assert!(
            refused_answer(answer).starts_with("warden refused the request: "),
            "{answer:?}"
        );
    }
    let effects = site.records("effect");
    let rules: Vec<&str> = effects
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        [
            &format!("plugins.{PROBE}.net.allow[0]"),
            &format!("plugins.{PROBE}.net.allow[0]"),
            &format!("plugins.{PROBE}.net.allow[1]"),
            "builtin.net.undeclared",
            "builtin.net.undeclared",
            "builtin.net.undeclared",
        ]
    );
    assert_eq!(effects[0]["address"], format!("127.0.0.1:{port}"));
    assert_eq!(
        effects[1]["url"],
        format!("http://localhost:{port}/b"),
        "normalized"
    );
    site.assert_log_complete();
}

/// Every hint a refusal gives is an allow entry that works, in the plugin's own
/// table by its real name: applied to the policy as it says, the request goes through.
#[test]
fn a_refusals_hint_is_a_fix_that_works() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    // The entry and the table a reason's hint names:
    // "add `\"ENTRY\"` ... to `net.allow` of `[TABLE]`".
    let hint = |reason: &str| -> (String, String) {
        let entry = reason
            .split_once("add `\"")
            .and_then(|(_, r)| r.split_once("\"`"))
            .unwrap_or_else(|| panic!("no entry in the hint: {reason}"))
            .0;
        let table = reason
            .split_once("to `net.allow` of `[")
            .and_then(|(_, r)| r.split_once("]`"))
            .unwrap_or_else(|| panic!("no table in the hint: {reason}"))
            .0;
        (entry.to_owned(), table.to_owned())
    };
    let apply = |site: &Site, text: &str| {
        crate::policy::policy_file(site.dir.path(), "policy.toml", text);
    };

    // Audit mode reaches no loopback address: the refusal of `localhost` says which
    // entry would.
    let script = [
        get(&format!("http://localhost:{port}/")),
        ExecuteResult::Success("done".into()),
    ];
    let wasm = scripted(vec![pattern(NetProtocol::Http, "localhost", None)], &script);
    let audit = format!("version = 1\nmode = \"audit\"\n[plugins.{PROBE}]\nstdio = [\"stdout\"]\n");
    let site = Site::new(&audit, &wasm);
    let (_, got) = site.run();
    assert!(refused_answer(&got[0]).contains("add `"), "{got:?}");
    let effect = &site.records("effect")[0];
    assert_eq!(effect["rule"], "builtin.net.non_global");
    let (entry, table) = hint(effect["reason"].as_str().unwrap());
    assert_eq!(entry, format!("http://localhost:{port}"));
    assert_eq!(table, format!("plugins.{PROBE}"));
    apply(&site, &format!("{audit}net.allow = [\"{entry}\"]\n"));
    let (_, got) = site.run();
    assert!(
        matches!(&got[0], EffectResult::Http(r) if r.status == 200),
        "{got:?}"
    );
    assert_eq!(server.seen().len(), 1);

    // Enforce mode, and the policy has no table for the plugin: the denied
    // declaration's hint names the table by the plugin's real name.
    let script = [
        get(&format!("http://127.0.0.1:{port}/")),
        ExecuteResult::Success("done".into()),
    ];
    let wasm = scripted(vec![pattern(NetProtocol::Http, "127.0.0.1", None)], &script);
    let base = "version = 1\n[defaults]\nstdio = [\"stdout\"]\n";
    let site = Site::new(base, &wasm);
    let (_, got) = site.run();
    assert!(
        refused_answer(&got[0]).starts_with("warden refused"),
        "{got:?}"
    );
    let deny = &site.records("deny")[0];
    let (entry, table) = hint(deny["reason"].as_str().unwrap());
    assert_eq!(table, format!("plugins.{PROBE}"), "{deny}");
    apply(
        &site,
        &format!("{base}[{table}]\nnet.allow = [\"{entry}\"]\n"),
    );
    let (_, got) = site.run();
    assert!(
        matches!(&got[0], EffectResult::Http(r) if r.status == 200),
        "{got:?}"
    );
    assert_eq!(server.seen().len(), 2);
}

/// An allow entry for every IPv6 address does not reach `127.0.0.1` through its
/// IPv4-mapped spelling: the address is judged by the IPv4 address it carries.
#[test]
fn an_ipv4_mapped_address_is_judged_as_ipv4() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let wasm = scripted(
        vec![http("::ffff:127.0.0.1", port)],
        &[
            get(&format!("http://[::ffff:7f00:1]:{port}/")),
            ExecuteResult::Success("done".into()),
        ],
    );
    let site = Site::new(&policy("net.allow = [\"http://[::/0]:*\"]"), &wasm);
    let (_, got) = site.run();
    assert_all_refused(&site, &got, &["builtin.net.non_global"], &server);
}

/// A redirect is not followed: the 3xx goes back to the plugin, and its request to
/// where it points is refused like any other.
#[test]
fn a_redirect_to_a_denied_place_is_not_followed() {
    let target = Server::start(0, None, hello);
    let secret = format!("http://127.0.0.1:{}/secret", target.port());
    static LOCATION: Mutex<String> = Mutex::new(String::new());
    *LOCATION.lock().unwrap() = secret.clone();
    fn redirect(_: &Seen) -> Reply {
        Reply::Redirect(LOCATION.lock().unwrap().clone())
    }
    let front = Server::start(0, None, redirect);
    let port = front.port();
    let wasm = scripted(
        vec![http("127.0.0.1", port)],
        &[
            get(&format!("http://127.0.0.1:{port}/start")),
            get(&secret),
            ExecuteResult::Success("done".into()),
        ],
    );
    let site = Site::new(
        &policy(&format!("net.allow = [\"http://127.0.0.1:{port}\"]")),
        &wasm,
    );
    let (_, got) = site.run();
    match &got[0] {
        EffectResult::Http(r) => {
            assert_eq!(r.status, 302);
            assert!(
                r.headers
                    .iter()
                    .any(|(k, v)| k == "location" && *v == secret)
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(refused_answer(&got[1]).contains("outside every granted declaration"));
    assert_eq!(front.seen().len(), 1);
    assert!(target.seen().is_empty(), "the redirect was followed");
    let effects = site.records("effect");
    assert_eq!(effects[0]["status"], 302);
    assert_eq!(effects[1]["rule"], "builtin.net.undeclared");
    site.assert_log_complete();
}

/// A declared endpoint the policy does not allow is denied at load, and a request to
/// it is refused with that denial's rule; `tcp` is denied with its reason.
#[test]
fn undeclared_unallowed_and_tcp_endpoints_are_refused() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let wasm = scripted(
        vec![
            http("127.0.0.1", port),
            pattern(NetProtocol::Tcp, "127.0.0.1", Some(port)),
        ],
        &[
            get(&format!("http://127.0.0.1:{port}/")),
            get("https://example.com/"),
            ExecuteResult::Success("done".into()),
        ],
    );
    let site = Site::new(&policy("net.allow = [\"https://example.com\"]"), &wasm);
    let (_, got) = site.run();
    let denies = site.records("deny");
    assert_eq!(denies.len(), 2);
    assert_eq!(denies[0]["request"], format!("http://127.0.0.1:{port}"));
    assert!(
        denies[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no `net.allow` entry covers it")
    );
    assert_eq!(denies[1]["request"], format!("tcp://127.0.0.1:{port}"));
    assert!(
        denies[1]["reason"]
            .as_str()
            .unwrap()
            .contains("no raw sockets")
    );
    assert_all_refused(&site, &got, &["none", "builtin.net.undeclared"], &server);
}

/// A declaration with no port means any port, as the SDK means it: it is granted as
/// its intersection with the allow entries (`http://127.0.0.1` ∩
/// `http://127.0.0.1:PORT` = `http://127.0.0.1:PORT`), which the `grant` record and
/// `explain` show, and the policy's entry decides the port: another port of the same
/// address stays out of reach.
#[test]
fn a_declaration_without_a_port_reaches_the_port_the_policy_allows() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let other = if port == u16::MAX { port - 1 } else { port + 1 };
    let wasm = scripted(
        vec![pattern(NetProtocol::Http, "127.0.0.1", None)],
        &[
            get(&format!("http://127.0.0.1:{port}/")),
            get(&format!("http://127.0.0.1:{other}/")),
            ExecuteResult::Success("done".into()),
        ],
    );
    let site = Site::new(
        &policy(&format!("net.allow = [\"http://127.0.0.1:{port}\"]")),
        &wasm,
    );
    let (report, got) = site.run();
    assert_eq!(report.exit_code(), 0, "{:?}", report.result);
    match &got[0] {
        EffectResult::Http(r) => {
            assert_eq!((r.status, r.body.as_str()), (200, "hello from the server"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        refused_answer(&got[1]).contains("outside every granted declaration"),
        "{got:?}"
    );
    assert_eq!(server.seen().len(), 1);
    let grant = &site
        .records("grant")
        .into_iter()
        .find(|g| g["capability"] == "net")
        .expect("the declaration is granted");
    assert_eq!(grant["request"], "http://127.0.0.1:*");
    assert_eq!(
        grant["reach"],
        serde_json::json!([format!("http://127.0.0.1:{port}")])
    );
    assert_eq!(grant["rule"], format!("plugins.{PROBE}.net.allow[0]"));
    let effects = site.records("effect");
    assert_eq!(effects[0]["outcome"], "performed");
    assert_eq!(effects[0]["rule"], format!("plugins.{PROBE}.net.allow[0]"));
    assert_eq!(effects[1]["rule"], "builtin.net.undeclared");
    site.assert_log_complete();

    let out = crate::cli::warden_command()
        .args(["policy", "explain", "--policy"])
        .arg(site.path("policy.toml"))
        .arg(site.path("plugin.wasm"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.contains("http://127.0.0.1:*"))
        .unwrap_or_else(|| panic!("no net row: {text}"));
    assert!(row.starts_with("granted"), "{row}");
    assert!(
        row.contains(&format!("may reach `http://127.0.0.1:{port}`")),
        "{row}"
    );
}

/// A deny entry wins over an allow entry, by name and by address range.
#[test]
fn deny_entries_win_by_name_and_by_range() {
    let server = Server::start(0, None, hello);
    let port = server.port();
    let wasm = scripted(
        vec![http("127.0.0.1", port)],
        &[
            get(&format!("http://127.0.0.1:{port}/")),
            ExecuteResult::Success("done".into()),
        ],
    );
    let site = Site::new(
        &policy(&format!(
            "net.allow = [\"http://127.0.0.0/8:{port}\"]\nnet.deny = [\"127.0.0.0/24\"]"
        )),
        &wasm,
    );
    let (_, got) = site.run();
    assert_eq!(
        site.records("deny")[0]["rule"],
        format!("plugins.{PROBE}.net.deny[0]")
    );
    assert_all_refused(
        &site,
        &got,
        &[&format!("plugins.{PROBE}.net.deny[0]")],
        &server,
    );
}

// ---------------------------------------------------------------------------------
// Bounds.

#[test]
fn a_response_past_max_response_is_refused_and_the_limit_recorded() {
    // Announced by `Content-Length`: refused before a byte of the body is read.
    let (server, site) = one_server(big, "net.max_response = \"64 KiB\"", 1);
    let (_, got) = site.run();
    assert!(
        refused_answer(&got[0]).contains("larger than 64 KiB (`max_response`)"),
        "{got:?}"
    );
    let effect = &site.records("effect")[0];
    assert_eq!(effect["outcome"], "failed");
    assert_eq!(effect["limit"], "max_response");
    assert_eq!(effect["bytes_in"], 0);
    assert_eq!(server.seen().len(), 1);
    site.assert_log_complete();

    // Sent chunked: read up to the bound, not a byte further.
    fn chunked(_: &Seen) -> Reply {
        Reply::Flood {
            len: 2 << 20,
            announced: false,
        }
    }
    let (_server, site) = one_server(chunked, "net.max_response = \"64 KiB\"", 1);
    let (_, got) = site.run();
    assert!(
        refused_answer(&got[0])
            .contains("larger than 64 KiB (`max_response`); warden stopped reading there"),
        "{got:?}"
    );
    let effect = &site.records("effect")[0];
    assert_eq!(effect["limit"], "max_response");
    assert_eq!(effect["bytes_in"], 65536);
    site.assert_log_complete();
}

/// Defect 11: a 64 MiB body that is not UTF-8, for a plugin whose memory ceiling is
/// 16 MiB, under a `max_response` of 64 MiB. Its `Content-Length` alone says the
/// answer can never fit: the request fails with the `memory` limit before the body is
/// read (the server could not write it all before warden hung up), and the call goes
/// on. warden never holds the body, its lossy decoding and its encoding at once.
#[test]
fn an_answer_past_the_plugins_memory_is_refused_before_its_body_is_read() {
    const LEN: usize = 64 << 20;
    fn flood_64_mib(_: &Seen) -> Reply {
        Reply::Flood {
            len: LEN,
            announced: true,
        }
    }
    let (server, site) = one_server(
        flood_64_mib,
        "memory = \"16 MiB\"\nnet.max_response = \"64 MiB\"",
        1,
    );
    let (report, got) = site.run();
    assert_eq!(
        report.exit_code(),
        0,
        "the call goes on: {:?}",
        report.result
    );
    assert_eq!(
        refused_answer(&got[0]),
        "the request failed: the response body is larger than 16 MiB, the plugin's memory ceiling (`memory`): its `Content-Length` is 67108864 bytes; warden read none of it"
    );
    let effect = &site.records("effect")[0];
    assert_eq!(effect["outcome"], "failed");
    assert_eq!(effect["limit"], "memory");
    assert_eq!(effect["bytes_in"], 0);
    let sent = server.sent(1);
    assert!(
        sent[0] < LEN,
        "the server wrote the whole body: warden read it ({} bytes)",
        sent[0]
    );
    site.assert_log_complete();
}

/// Without a `Content-Length`, a body is read only up to what the plugin's memory
/// could hold; and a body that fits as bytes but not as the text the plugin receives
/// (each invalid byte becomes a 3-byte U+FFFD) is refused as well, not handed over.
#[test]
fn an_unannounced_body_is_read_only_as_far_as_the_plugins_memory() {
    // Far more than loopback's socket buffers hold, so the server can only write it
    // all if warden reads it all.
    fn flood_256_mib(_: &Seen) -> Reply {
        Reply::Flood {
            len: 256 << 20,
            announced: false,
        }
    }
    fn flood_512_kib(_: &Seen) -> Reply {
        Reply::Flood {
            len: 512 << 10,
            announced: false,
        }
    }
    let limits = "memory = \"1 MiB\"\nnet.max_response = \"64 MiB\"";
    let (server, site) = one_server(flood_256_mib, limits, 1);
    let (report, got) = site.run();
    assert_eq!(report.exit_code(), 0, "{:?}", report.result);
    assert_eq!(
        refused_answer(&got[0]),
        "the request failed: the response body is larger than 1 MiB, the plugin's memory ceiling (`memory`); warden stopped reading there"
    );
    let effect = &site.records("effect")[0];
    assert_eq!(effect["limit"], "memory");
    assert_eq!(effect["bytes_in"], 1 << 20);
    assert!(server.sent(1)[0] < 256 << 20, "the whole body was read");
    site.assert_log_complete();

    let (_server, site) = one_server(flood_512_kib, limits, 1);
    let (report, got) = site.run();
    assert_eq!(report.exit_code(), 0, "{:?}", report.result);
    let answer = refused_answer(&got[0]);
    assert!(
        answer.starts_with("the request failed: the response body is 1536 KiB as the UTF-8 text the plugin receives (each invalid byte sequence becomes 3 bytes); the whole answer, ")
            && answer.ends_with(" bytes, is larger than 1 MiB, the plugin's memory ceiling (`memory`)"),
        "{answer}"
    );
    let effect = &site.records("effect")[0];
    assert_eq!(effect["limit"], "memory");
    assert_eq!(effect["bytes_in"], 512 << 10);
    site.assert_log_complete();
}

#[test]
fn a_server_that_never_answers_ends_at_request_timeout() {
    let (_server, site) = one_server(hang, "net.request_timeout = \"300ms\"", 1);
    let (report, got) = site.run();
    assert_eq!(
        report.exit_code(),
        0,
        "the call goes on after a failed request"
    );
    assert!(
        refused_answer(&got[0]).contains("`request_timeout`"),
        "{got:?}"
    );
    let effect = &site.records("effect")[0];
    assert_eq!(effect["outcome"], "failed");
    assert_eq!(effect["limit"], "request_timeout");
    site.assert_log_complete();
}

#[test]
fn a_request_never_outlives_the_calls_own_timeout() {
    let (_server, site) = one_server(hang, "net.request_timeout = \"1m\"\ntimeout = \"700ms\"", 1);
    let out = site.warden_run(&[]);
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(site.records("limit_exceeded")[0]["limit"], "timeout");
    assert_eq!(site.records("effect")[0]["limit"], "timeout");
    assert_eq!(site.records("run_end")[0]["outcome"], "limit");
    site.assert_log_complete();
}

#[test]
fn requests_past_max_requests_are_refused() {
    let (server, site) = one_server(hello, "net.max_requests = 2", 3);
    let (_, got) = site.run();
    assert!(matches!(got[0], EffectResult::Http(_)));
    assert!(matches!(got[1], EffectResult::Http(_)));
    assert!(refused_answer(&got[2]).contains("more than 2 requests"));
    assert_eq!(server.seen().len(), 2);
    let third = &site.records("effect")[2];
    assert_eq!(third["outcome"], "denied");
    assert_eq!(third["rule"], format!("plugins.{PROBE}.net.max_requests"));
    site.assert_log_complete();
}

#[test]
fn a_sleep_past_the_timeout_ends_the_call_at_its_timeout() {
    let wasm = scripted(
        vec![],
        &[
            ExecuteResult::Effect(Effect::Sleep {
                id: 1,
                duration_ms: 10,
            }),
            ExecuteResult::Effect(Effect::Sleep {
                id: 2,
                duration_ms: 600_000,
            }),
            ExecuteResult::Success("done".into()),
        ],
    );
    let site = Site::new(&policy("timeout = \"500ms\""), &wasm);
    let out = site.warden_run(&[]);
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let effects = site.records("effect");
    assert_eq!(effects[0]["outcome"], "performed");
    assert_eq!(effects[0]["sleep_ms"], 10);
    assert_eq!(effects[1]["outcome"], "failed");
    assert_eq!(effects[1]["limit"], "timeout");
    assert_eq!(site.records("limit_exceeded")[0]["limit"], "timeout");
    site.assert_log_complete();
}

// ---------------------------------------------------------------------------------
// HTTPS with a private CA.

/// A CA, and a server certificate it signed for `127.0.0.1` and `localhost`.
fn test_pki() -> (String, Arc<rustls::ServerConfig>) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

#[test]
fn https_reaches_a_server_of_a_ca_the_policy_names_and_no_other() {
    let (ca_pem, config) = test_pki();
    let server = Server::start(0, Some(config), hello);
    let port = server.port();
    let url = format!("https://127.0.0.1:{port}/tls");
    let wasm = scripted(
        vec![pattern(NetProtocol::Https, "127.0.0.1", Some(port))],
        &[get(&url), ExecuteResult::Success("done".into())],
    );
    let allow = format!("net.allow = [\"https://127.0.0.1:{port}\"]");

    let site = Site::new(
        &policy(&format!("{allow}\nnet.tls_roots = [\"./ca.pem\"]")),
        &wasm,
    );
    std::fs::write(site.path("ca.pem"), &ca_pem).unwrap();
    let (_, got) = site.run();
    match &got[0] {
        EffectResult::Http(r) => assert_eq!(r.body, "hello from the server"),
        other => panic!("{other:?}"),
    }
    assert_eq!(site.records("effect")[0]["status"], 200);
    assert_eq!(server.seen().len(), 1);

    let untrusting = Site::new(&policy(&allow), &wasm);
    let (_, got) = untrusting.run();
    assert!(
        refused_answer(&got[0]).starts_with("the request failed: "),
        "{got:?}"
    );
    assert_eq!(untrusting.records("effect")[0]["outcome"], "failed");
    assert_eq!(
        server.seen().len(),
        1,
        "no request without a trusted certificate"
    );
}

// ---------------------------------------------------------------------------------
// The policy keys, and what `explain` and `inspect` show.

#[test]
fn bad_net_keys_are_rejected_at_their_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    for (text, at, says) in [
        ("net.allow = [\"api.example.com\"]", "3:14", "has no scheme"),
        (
            "net.allow = [\"https://x.example:9..1\"]",
            "3:14",
            "upside down",
        ),
        (
            "net.deny = [\"10.0.0.1/8\"]",
            "3:13",
            "bits set past its prefix",
        ),
        ("net.deny = [\"10.0.0.0/40\"]", "3:13", "not a CIDR range"),
        ("net.max_requests = 0", "3:20", "at least 1"),
        ("net.request_timeout = 5", "3:23", "must be a duration"),
        ("net.max_response = \"lots\"", "3:20", "is not a size"),
        ("net.alow = []", "3:5", "did you mean `allow`"),
    ] {
        let text = format!("version = 1\n[plugins.x]\n{text}\n");
        let path = crate::policy::policy_file(dir.path(), "p.toml", &text);
        let out = crate::cli::warden(&["policy", "check", path.to_str().unwrap()]);
        let stderr = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert!(
            stderr.contains(&format!("p.toml:{at}: ")),
            "{text}: {stderr}"
        );
        assert!(stderr.contains(says), "{text}: {stderr}");
    }
}

#[test]
fn explain_and_inspect_show_net_patterns_as_urls() {
    let dir = tempfile::tempdir().unwrap();
    let policy = crate::policy::policy_file(
        dir.path(),
        "p.toml",
        "version = 1\n[plugins.fetcher]\nnet.allow = [\"http://127.0.0.1:8000\"]\n",
    );
    let fetcher = example_plugin("fetcher");
    let out = crate::cli::warden(&[
        "policy",
        "explain",
        "--policy",
        policy.to_str().unwrap(),
        fetcher.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle}: {text}"))
            .to_owned()
    };
    let local = line("http://127.0.0.1:8000");
    assert!(
        local.contains("granted") && local.contains("plugins.fetcher.net.allow[0]"),
        "{local}"
    );
    let out = crate::cli::warden(&["inspect", fetcher.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("net       http://127.0.0.1:*\n"), "{text}");
}
