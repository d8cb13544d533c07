//! warden's per-call cost next to raw wasmtime doing the same work, in the same run.
//!
//! Each group measures warden and a raw-wasmtime floor side by side:
//!
//! - `load`: compiling a plugin (and reading its manifest) vs `Module::new`, and a
//!   cached load vs `Module::deserialize`;
//! - `execute`: one `execute` of `hello`, and of `file-reader` reading a file through a
//!   preopen with env and stdout granted (also through the host with the audit log on:
//!   `run_start`, `run_end`), vs raw wasmtime with a pooling allocator doing the same work
//!   (fresh store and WASI context with the same preopen/env/stdout, instantiate,
//!   alloc, write args, call, read and decode the result, dealloc) with no limits at all;
//!   and the same raw wasmtime with warden's pool settings (`-raw-tuned`), so the
//!   ratio to it is what warden's sandbox itself costs.
//!
//! - `host`: one call of hello and of file-reader through `warden::host::Warden`,
//!   audited and unaudited, next to the tuned floor (`host/run`); the floor of the
//!   audit itself (`host/floor-*`): the two lines an audited call of that plugin
//!   appends (its `run_start` and `run_end`, the very bytes), each appended as the
//!   log's guarantees need and nothing more: `flock`, SHA-256, one `write(2)`,
//!   unlock, with no warden code; and calls per second of audited (and, with
//!   `sync_each_run`, synced) file-reader and of the tuned floor from 1 and 2 threads
//!   on one host (`host/throughput`). The floor's file is emptied (untimed) before
//!   each round of 10,000 appends, the audited calls' logs (here and in
//!   `execute/file-reader+audit-warden`) before a round once past 32 MiB. The audit's
//!   cost is also measured interleaved (printed, not criterion): 301 rounds of 200
//!   audited and 200 unaudited calls one right after the other, the median of the
//!   rounds' differences; and so are the 1- and 2-thread throughputs (printed): 41
//!   rounds of each kind of call from 1 thread and from 2 threads back to back, the
//!   median of the rounds' ratios.
//!
//! - `effect`: one call of the example `fetcher` that makes one GET through warden
//!   (audited) against a loopback server on a free port of 127.0.0.1 (`http_get-warden`), the
//!   same call without the request (`no-effect-warden`: `fetcher echo URL`), and the
//!   same client (ureq, configured as warden configures it) making the same request
//!   directly (`http_get-direct`). The ratio (get - no effect) / direct is what
//!   warden's checks (parse, resolve, address check, record) add to a request.
//!
//! - `isolation`: one host call of hello and of file-reader under
//!   `isolation = "process"` (a confined worker, reused) and `"in-process"`, and a
//!   whole cached `warden run hello` under each (`cli-run-hello-*`).
//!
//! - `concurrency` (printed after the groups): throughput and p99 latency of hello
//!   through one audited host from 1, 2, 64 and 256 callers at once, under each
//!   isolation.
//!
//! After the groups, the ratios warden / floor are printed from criterion's estimates
//! (medians).
//! Run with `cargo bench --bench execute`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs,
    unsafe_code
)]

use criterion::Criterion;
use std::hint::black_box;
use std::path::Path;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warden::abi::ExecuteResult;
use warden::cache::ModuleCache;
use warden::host::{Loaded, Plugin, PluginSource, Warden};
use warden::runtime::{KEEP_RESIDENT_MEMORY, KEEP_RESIDENT_TABLE};
use warden::{Loader, LoaderConfig};
use wasmtime::{
    Config, Enabled, Engine, InstancePre, Linker, Module, PoolingAllocationConfig, Store,
};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

fn plugin(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/plugins")
        .join(format!("{name}.wasm"));
    std::fs::read(path).unwrap()
}

/// How raw wasmtime's pooling allocator is set up.
#[derive(Clone, Copy)]
enum Pool {
    /// wasmtime's defaults: the floor the issue names.
    Default,
    /// The slot reuse warden configures (`warden::runtime::engine_config`): memory and
    /// tables kept resident and reset through `PAGEMAP_SCAN` where the kernel has it.
    /// Against this floor the ratio is the price of warden's sandbox alone.
    Tuned,
}

/// Raw wasmtime: the floor. Pooling allocator, no fuel, no epochs, no limits.
struct Raw {
    engine: Engine,
    pre: InstancePre<WasiP1Ctx>,
    /// The WASI context each call gets (preopens, env, stdout), built per call.
    wasi: Box<dyn Fn() -> WasiCtxBuilder + Send + Sync>,
}

impl Raw {
    fn new(
        wasm: &[u8],
        pool_kind: Pool,
        wasi: impl Fn() -> WasiCtxBuilder + Send + Sync + 'static,
    ) -> Raw {
        let mut config = Config::new();
        let mut pool = PoolingAllocationConfig::new();
        pool.total_memories(16)
            .total_tables(16)
            .total_core_instances(16);
        if matches!(pool_kind, Pool::Tuned) && PoolingAllocationConfig::is_pagemap_scan_available()
        {
            pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
                .table_keep_resident(KEEP_RESIDENT_TABLE)
                .pagemap_scan(Enabled::Yes);
        }
        config.allocation_strategy(pool);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c| c).unwrap();
        let pre = linker.instantiate_pre(&module).unwrap();
        Raw {
            engine,
            pre,
            wasi: Box::new(wasi),
        }
    }

    fn execute(&self, args: &[String]) -> ExecuteResult {
        let mut wasi = (self.wasi)();
        let mut store = Store::new(&self.engine, wasi.build_p1());
        let instance = self.pre.instantiate(&mut store).unwrap();
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "plugin_alloc")
            .unwrap();
        let dealloc = instance
            .get_typed_func::<(i32, i32), ()>(&mut store, "plugin_dealloc")
            .unwrap();
        let execute = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "plugin_execute")
            .unwrap();
        let bytes = rmp_serde::to_vec(args).unwrap();
        let ptr = alloc.call(&mut store, bytes.len() as i32).unwrap();
        memory.write(&mut store, ptr as usize, &bytes).unwrap();
        let packed = execute.call(&mut store, (ptr, bytes.len() as i32)).unwrap();
        dealloc.call(&mut store, (ptr, bytes.len() as i32)).unwrap();
        let (rptr, rlen) = (
            (packed as u64 >> 32) as usize,
            (packed as u64 & 0xFFFF_FFFF) as usize,
        );
        let result: ExecuteResult =
            rmp_serde::from_slice(&memory.data(&store)[rptr..rptr + rlen]).unwrap();
        dealloc
            .call(&mut store, (rptr as i32, rlen as i32))
            .unwrap();
        result
    }
}

fn load(c: &mut Criterion) {
    let wasm = plugin("hello");
    let loader = Loader::new(LoaderConfig::new("/")).unwrap();
    let raw_engine = Engine::default();
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("compile-warden", |b| {
        b.iter(|| black_box(loader.load(&wasm).unwrap()))
    });
    g.bench_function("compile-raw", |b| {
        b.iter(|| black_box(Module::new(&raw_engine, &wasm).unwrap()))
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = ModuleCache::open(dir.path()).unwrap();
    loader.load_cached(&wasm, &cache).unwrap();
    g.sample_size(50);
    g.bench_function("cache-warden", |b| {
        b.iter(|| black_box(loader.load_cached(&wasm, &cache).unwrap()))
    });
    let serialized = Module::new(&raw_engine, &wasm)
        .unwrap()
        .serialize()
        .unwrap();
    g.bench_function("cache-raw", |b| {
        // SAFETY: bytes serialized just above by the same engine.
        b.iter(|| black_box(unsafe { Module::deserialize(&raw_engine, &serialized) }.unwrap()))
    });
    g.finish();
}

fn execute(c: &mut Criterion) {
    let wasm = plugin("hello");
    let loader = Loader::new(LoaderConfig::new("/")).unwrap();
    let hello = loader.load(&wasm).unwrap();
    let hello_wasi = || {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true).arg("hello");
        wasi
    };
    let raw = Raw::new(&wasm, Pool::Default, hello_wasi);
    let tuned = Raw::new(&wasm, Pool::Tuned, hello_wasi);
    let args = vec!["bench".to_string()];
    let expected = ExecuteResult::Success("Hello, bench!".into());
    assert_eq!(hello.instance.execute(&args).unwrap(), expected);
    assert_eq!(raw.execute(&args), expected);
    assert_eq!(tuned.execute(&args), expected);

    let mut g = c.benchmark_group("execute");
    g.bench_function("hello-warden", |b| {
        b.iter(|| black_box(hello.instance.execute(&args).unwrap()))
    });
    g.bench_function("hello-raw", |b| b.iter(|| black_box(raw.execute(&args))));
    g.bench_function("hello-raw-tuned", |b| {
        b.iter(|| black_box(tuned.execute(&args)))
    });
    g.finish();
}

/// `policies/examples.toml` with `isolation` set in `[defaults]`, written once per
/// isolation into a private folder that lives as long as the bench.
fn examples_policy(isolation: &str) -> PathBuf {
    examples_policy_with(isolation, None)
}

/// [`examples_policy`], with `fetcher`'s endpoint on `port` of 127.0.0.1 (the
/// bench's own loopback server's) instead of the 8000 the file names.
fn examples_policy_with(isolation: &str, port: Option<u16>) -> PathBuf {
    static DIR: std::sync::LazyLock<tempfile::TempDir> =
        std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());
    let name = match port {
        Some(port) => format!("examples-{isolation}-{port}.toml"),
        None => format!("examples-{isolation}.toml"),
    };
    let path = DIR.path().join(name);
    if !path.exists() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut text = std::fs::read_to_string(root.join("policies/examples.toml")).unwrap();
        if let Some(port) = port {
            let fixed = "\"http://127.0.0.1:8000\"";
            assert!(
                text.contains(fixed),
                "policies/examples.toml no longer names {fixed}"
            );
            text = text.replace(fixed, &format!("\"http://127.0.0.1:{port}\""));
        }
        let text = text.replacen(
            "[defaults]\n",
            &format!("[defaults]\nisolation = \"{isolation}\"\n"),
            1,
        );
        std::fs::write(&path, text).unwrap();
    }
    path
}

/// A host for `policies/examples.toml` in `work`, with or without its audit log, its
/// plugins in warden's own process (the audit and sandbox costs, next to raw
/// wasmtime; `isolation` measures the worker's).
fn host(work: &Path, log: Option<&Path>) -> Warden {
    host_with(work, log, false, "in-process")
}

/// [`host`], `fsync`ing the log after every run's `run_start` and `run_end` when
/// `synced` (group commit shares the `fsync`s of threads running at once), under
/// `isolation`.
fn host_with(work: &Path, log: Option<&Path>, synced: bool, isolation: &str) -> Warden {
    host_of(&examples_policy(isolation), work, log, synced)
}

/// A host for the policy at `policy` in `work` (see [`host_with`]).
fn host_of(policy: &Path, work: &Path, log: Option<&Path>, synced: bool) -> Warden {
    let builder = Warden::builder()
        .policy_file(policy)
        .workdir(work)
        .env([("HOME".to_string(), "/home/bench".to_string())])
        .sync_each_run(synced)
        .without_cache();
    match log {
        Some(log) => builder.audit_log(log),
        None => builder.without_audit(),
    }
    .build()
    .unwrap()
}

fn ready(warden: &Warden, name: &str) -> Plugin {
    match warden
        .load(PluginSource::bytes(name, plugin(name)))
        .unwrap()
    {
        Loaded::Ready(plugin) => plugin,
        Loaded::Refused(r) => panic!("{}", r.reason()),
    }
}

/// Runs `call` `iters` times spread over `threads` threads; the wall time.
fn threaded(threads: u64, iters: u64, call: &(impl Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let n = iters / threads + u64::from(t < iters % threads);
            s.spawn(move || {
                for _ in 0..n {
                    call();
                }
            });
        }
    });
    start.elapsed()
}

/// How long `n` calls of `call` take, one after the other.
fn timed(n: u64, mut call: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        call();
    }
    start.elapsed()
}

/// Times `iters` calls made by `run(n)` in rounds of at most 10,000, emptying the
/// file at `log` (untimed) before a round once it holds more than `past` bytes: the
/// floor's file before every round (`past` 0), an audited log once past 32 MiB, so
/// that the audited calls and their floor append to files of a few MiB. Left to grow,
/// the log takes GBs over the bench, and the calls that meet the page cache's dirty
/// limit wait for its writeback to disk, a cost that follows the disk, not warden
/// (warden takes an emptied log as a new one: the chain starts again).
fn bounded_log(
    log: &Path,
    past: u64,
    iters: u64,
    mut run: impl FnMut(u64) -> Duration,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        empty_past(log, past);
        let n = left.min(10_000);
        total += run(n);
        left -= n;
    }
    total
}

/// Empties `log` when it holds more than `past` bytes.
fn empty_past(log: &Path, past: u64) {
    if std::fs::metadata(log).is_ok_and(|m| m.len() > past) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(log)
            .unwrap()
            .set_len(0)
            .unwrap();
    }
}

/// How large an audited bench's log may grow before [`bounded_log`] empties it.
const LOG_BOUND: u64 = 32 << 20;

/// The floor of an audited call: appending the same lines the audit log got for one
/// call (`run_start`, `run_end`) with only what the log's guarantees need: an
/// exclusive `flock`, the SHA-256 that chains the next line, one `write(2)`, unlock.
struct AppendFloor {
    path: PathBuf,
    file: std::fs::File,
    lines: Vec<Vec<u8>>,
}

impl AppendFloor {
    /// The last `run_start` and `run_end` lines of `plugin` in `log`.
    fn new(log: &Path, plugin: &str, dir: &Path) -> AppendFloor {
        let text = std::fs::read_to_string(log).unwrap();
        let last = |event: &str| {
            let line = text
                .lines()
                .rev()
                .find(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["event"] == event && v["plugin"]["name"] == plugin
                })
                .unwrap();
            format!("{line}\n").into_bytes()
        };
        let path = dir.join(format!("floor-{plugin}.jsonl"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        AppendFloor {
            path,
            file,
            lines: vec![last("run_start"), last("run_end")],
        }
    }

    /// Two appends.
    fn append(&self) {
        use sha2::Digest as _;
        use std::io::Write as _;
        for line in &self.lines {
            self.file.lock().unwrap();
            black_box(hex::encode(sha2::Sha256::digest(&line[..line.len() - 1])));
            (&self.file).write_all(line).unwrap();
            self.file.unlock().unwrap();
        }
    }

    /// `iters` rounds of `before` (nothing, or an unaudited call) and
    /// [`AppendFloor::append`], each 10,000 from an empty file (emptied untimed) so
    /// that the bench does not fill the disk.
    fn time(&self, iters: u64, before: impl Fn()) -> Duration {
        bounded_log(&self.path, 0, iters, |n| {
            timed(n, || {
                before();
                self.append();
            })
        })
    }
}

/// What [`interleave`] measured for each plugin: audited and unaudited ns a call
/// (medians of the rounds' means) and the median of the rounds' differences.
static INTERLEAVED: std::sync::Mutex<Vec<(&'static str, f64, f64, f64)>> =
    std::sync::Mutex::new(Vec::new());

/// The audit's cost measured a second way: rounds of [`INTERLEAVED_CALLS`] audited
/// and as many unaudited calls, one right after the other (which goes first
/// alternates), so that both meet the machine in the same state; criterion measures
/// the two seconds apart. The median of the rounds' differences is robust to a round
/// that met a stall. The log is emptied (untimed) between rounds once past 32 MiB.
fn interleave(name: &'static str, log: &Path, audited: &Plugin, plain: &Plugin, args: &[String]) {
    let round = |plugin: &Plugin| {
        let took = timed(INTERLEAVED_CALLS, || {
            black_box(plugin.run(args).unwrap());
        });
        took.as_nanos() as f64 / INTERLEAVED_CALLS as f64
    };
    let (mut with, mut without, mut differences) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..INTERLEAVED_ROUNDS {
        empty_past(log, LOG_BOUND);
        let (a, u) = in_turn(r, || round(audited), || round(plain));
        with.push(a);
        without.push(u);
        differences.push(a - u);
    }
    INTERLEAVED
        .lock()
        .unwrap()
        .push((name, median(with), median(without), median(differences)));
}

/// Calls of each kind in one round of [`interleave`].
const INTERLEAVED_CALLS: u64 = 200;

/// Rounds of [`interleave`] (odd: one median round).
const INTERLEAVED_ROUNDS: u64 = 301;

/// Runs `a` and `b` one right after the other, `a` first in even rounds `r` and `b`
/// first in odd ones (so that neither always meets the machine as the other leaves
/// it); their results in the order `(a, b)`.
fn in_turn<T>(r: u64, mut a: impl FnMut() -> T, mut b: impl FnMut() -> T) -> (T, T) {
    if r.is_multiple_of(2) {
        let first = a();
        (first, b())
    } else {
        let first = b();
        (a(), first)
    }
}

/// The middle value of `v` (the upper one of an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// What [`interleave_scaling`] measured for each kind of call: calls per second from
/// 1 and from 2 threads, and the median of the rounds' 2t/1t ratios; then the median
/// of the rounds' audited ratio over raw wasmtime's.
struct Scaling {
    kinds: Vec<(&'static str, f64, f64, f64)>,
    audited_over_raw: Option<f64>,
}

static SCALING: std::sync::Mutex<Scaling> = std::sync::Mutex::new(Scaling {
    kinds: Vec::new(),
    audited_over_raw: None,
});

/// Rounds of [`interleave_scaling`] (odd: one median round).
const SCALING_ROUNDS: u64 = 41;

/// One kind of call [`interleave_scaling`] measures.
struct ScalingKind<'a> {
    name: &'static str,
    /// Calls in each of a round's two measurements.
    calls: u64,
    call: &'a (dyn Fn() + Sync),
    /// The log the calls append to, emptied (untimed) between rounds once past 32 MiB.
    log: Option<&'a Path>,
}

/// Throughput from 1 and 2 threads measured a second way: in each of
/// [`SCALING_ROUNDS`] rounds every kind of call runs from 1 thread and from 2 threads
/// back to back (which goes first alternates), and the kinds one after the other, so
/// that the ratios compared meet the machine in the same state. On a shared 2-core
/// machine criterion's 1- and 2-thread figures, taken seconds apart, can each meet a
/// neighbour's load; a ratio of two of them then says more about the neighbour than
/// about warden.
fn interleave_scaling(kinds: &[ScalingKind<'_>]) {
    // For each kind, each round's seconds a call from 1 and from 2 threads.
    let mut rounds: Vec<Vec<(f64, f64)>> = vec![Vec::new(); kinds.len()];
    for r in 0..SCALING_ROUNDS {
        for (kind, times) in kinds.iter().zip(&mut rounds) {
            if let Some(log) = kind.log {
                empty_past(log, LOG_BOUND);
            }
            let calls = kind.calls;
            let run = |threads| threaded(threads, calls, &kind.call).as_secs_f64() / calls as f64;
            times.push(in_turn(r, || run(1), || run(2)));
        }
    }
    // Each round's 2t/1t ratio.
    let ratios: Vec<Vec<f64>> = rounds
        .iter()
        .map(|times| times.iter().map(|(one, two)| one / two).collect())
        .collect();
    let mut scaling = SCALING.lock().unwrap();
    for ((kind, times), ratios) in kinds.iter().zip(&rounds).zip(&ratios) {
        scaling.kinds.push((
            kind.name,
            1.0 / median(times.iter().map(|t| t.0).collect()),
            1.0 / median(times.iter().map(|t| t.1).collect()),
            median(ratios.clone()),
        ));
    }
    let position = |name| kinds.iter().position(|k| k.name == name);
    if let (Some(a), Some(w)) = (position("audited"), position("raw-tuned")) {
        scaling.audited_over_raw = Some(median(
            ratios[a]
                .iter()
                .zip(&ratios[w])
                .map(|(a, w)| a / w)
                .collect(),
        ));
    }
}

/// file-reader reading `data/hello.txt` with env and stdout granted, and hello, under
/// `policies/examples.toml` through the host (`warden::host::Warden`), with and
/// without the audit log, next to raw wasmtime with the same preopen, env and captured
/// stdout; then calls per second on one host from 1 and 2 threads.
fn file_reader_and_host(c: &mut Criterion) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "greetings").unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let audited_host = host(work.path(), Some(&log_dir.path().join("audit.jsonl")));
    let plain_host = host(work.path(), None);
    let (audited, plain) = (
        ready(&audited_host, "file-reader"),
        ready(&plain_host, "file-reader"),
    );
    let (hello_audited, hello_plain) = (ready(&audited_host, "hello"), ready(&plain_host, "hello"));
    let raw_wasi = |data: PathBuf| {
        move || {
            let mut wasi = WasiCtxBuilder::new();
            wasi.allow_blocking_current_thread(true)
                .arg("file-reader")
                .env("HOME", "/home/bench")
                .stdout(MemoryOutputPipe::new(1 << 20));
            wasi.preopened_dir(&data, "/data", FsPerms::ReadOnly)
                .unwrap();
            wasi
        }
    };
    let wasm = plugin("file-reader");
    let raw = Raw::new(&wasm, Pool::Default, raw_wasi(data.clone()));
    let tuned = Raw::new(&wasm, Pool::Tuned, raw_wasi(data.clone()));
    let hello_tuned = Raw::new(&plugin("hello"), Pool::Tuned, || {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true).arg("hello");
        wasi
    });
    let args = vec!["read".to_string(), "hello.txt".to_string()];
    let expected = ExecuteResult::Success("greetings".into());
    let hello_args = vec!["bench".to_string()];
    let hello_expected = ExecuteResult::Success("Hello, bench!".into());
    for p in [&audited, &plain] {
        assert_eq!(p.run(&args).unwrap().result.unwrap(), expected);
    }
    for p in [&hello_audited, &hello_plain] {
        assert_eq!(p.run(&hello_args).unwrap().result.unwrap(), hello_expected);
    }
    assert_eq!(raw.execute(&args), expected);
    assert_eq!(tuned.execute(&args), expected);
    assert_eq!(hello_tuned.execute(&hello_args), hello_expected);

    let mut g = c.benchmark_group("execute");
    g.bench_function("file-reader-warden", |b| {
        b.iter(|| black_box(plain.instance().execute(&args).unwrap()))
    });
    g.bench_function("file-reader-raw", |b| {
        b.iter(|| black_box(raw.execute(&args)))
    });
    g.bench_function("file-reader-raw-tuned", |b| {
        b.iter(|| black_box(tuned.execute(&args)))
    });
    let log = log_dir.path().join("audit.jsonl");
    g.bench_function("file-reader+audit-warden", |b| {
        b.iter_custom(|iters| {
            bounded_log(&log, LOG_BOUND, iters, |n| {
                timed(n, || {
                    black_box(audited.run(&args).unwrap());
                })
            })
        })
    });
    g.bench_function("file-reader+audit-raw", |b| {
        b.iter(|| black_box(raw.execute(&args)))
    });
    g.bench_function("file-reader+audit-raw-tuned", |b| {
        b.iter(|| black_box(tuned.execute(&args)))
    });
    g.finish();

    // host/run: one call through the host, audited and not, next to the tuned floor.
    let mut g = c.benchmark_group("host");
    g.bench_function("hello-audited", |b| {
        b.iter_custom(|iters| {
            bounded_log(&log, LOG_BOUND, iters, |n| {
                timed(n, || {
                    black_box(hello_audited.run(&hello_args).unwrap());
                })
            })
        })
    });
    g.bench_function("hello-unaudited", |b| {
        b.iter(|| black_box(hello_plain.run(&hello_args).unwrap()))
    });
    g.bench_function("hello-raw-tuned", |b| {
        b.iter(|| black_box(hello_tuned.execute(&hello_args)))
    });
    g.bench_function("file-reader-audited", |b| {
        b.iter_custom(|iters| {
            bounded_log(&log, LOG_BOUND, iters, |n| {
                timed(n, || {
                    black_box(audited.run(&args).unwrap());
                })
            })
        })
    });
    g.bench_function("file-reader-unaudited", |b| {
        b.iter(|| black_box(plain.run(&args).unwrap()))
    });
    g.bench_function("file-reader-raw-tuned", |b| {
        b.iter(|| black_box(tuned.execute(&args)))
    });
    // The floor's lines are those of the last audited call of each (the log may
    // have been emptied since their benches' first calls).
    black_box(hello_audited.run(&hello_args).unwrap());
    black_box(audited.run(&args).unwrap());
    audited_host.flush().unwrap();
    for (name, plain, audited, args) in [
        ("hello", &hello_plain, &hello_audited, &hello_args),
        ("file-reader", &plain, &audited, &args),
    ] {
        interleave(name, &log, audited, plain, args);
        let floor = AppendFloor::new(&log, name, log_dir.path());
        g.bench_function(format!("floor-{name}"), |b| {
            b.iter_custom(|iters| floor.time(iters, || ()))
        });
        // The same appends beside the unaudited call, as an audited call makes them
        // (caches as the call leaves them): minus `*-unaudited`, what they cost there.
        g.bench_function(format!("floor-{name}-beside-call"), |b| {
            b.iter_custom(|iters| {
                floor.time(iters, || {
                    black_box(plain.run(args).unwrap());
                })
            })
        });
    }
    // host/throughput: the same calls from 1 and 2 threads on one host (one loaded
    // plugin), and raw wasmtime from 1 and 2 threads.
    let audited_call = || {
        black_box(audited.run(&args).unwrap());
    };
    let raw_call = || {
        black_box(tuned.execute(&args));
    };
    let synced_log = log_dir.path().join("synced.jsonl");
    let synced_host = host_with(work.path(), Some(&synced_log), true, "in-process");
    let synced = ready(&synced_host, "file-reader");
    let synced_call = || {
        black_box(synced.run(&args).unwrap());
    };
    for threads in [1, 2] {
        g.bench_function(format!("throughput-synced-{threads}t"), |b| {
            b.iter_custom(|iters| {
                bounded_log(&synced_log, LOG_BOUND, iters, |n| {
                    threaded(threads, n, &synced_call)
                })
            })
        });
        g.bench_function(format!("throughput-audited-{threads}t"), |b| {
            b.iter_custom(|iters| {
                bounded_log(&log, LOG_BOUND, iters, |n| {
                    threaded(threads, n, &audited_call)
                })
            })
        });
        g.bench_function(format!("throughput-raw-tuned-{threads}t"), |b| {
            b.iter_custom(|iters| threaded(threads, iters, &raw_call))
        });
    }
    g.finish();
    interleave_scaling(&[
        ScalingKind {
            name: "audited",
            calls: 2_000,
            call: &audited_call,
            log: Some(&log),
        },
        ScalingKind {
            name: "synced",
            calls: 200,
            call: &synced_call,
            log: Some(&synced_log),
        },
        ScalingKind {
            name: "raw-tuned",
            calls: 4_000,
            call: &raw_call,
            log: None,
        },
    ]);
    audited_host.flush().unwrap();
    println!(
        "synced host: {} fsyncs for its runs (group commit)",
        synced_host.fsyncs()
    );
}

/// Reads criterion's median estimate (ns) for `group/function`: the machine may be
/// shared, and the median is the steadier figure.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

fn print_ratios() {
    println!("\nwarden / raw wasmtime (same run, criterion medians):");
    println!("  raw: wasmtime's default pooling allocator (the floor of issue #6)");
    println!("  tuned: raw with warden's pool settings (the price of the sandbox alone)");
    for (group, what) in [
        ("load", "compile"),
        ("load", "cache"),
        ("execute", "hello"),
        ("execute", "file-reader"),
        ("execute", "file-reader+audit"),
    ] {
        let w = median_ns(group, &format!("{what}-warden"));
        let r = median_ns(group, &format!("{what}-raw"));
        let t = median_ns(group, &format!("{what}-raw-tuned"));
        if let (Some(w), Some(r)) = (w, r) {
            print!(
                "  {group}/{what:<20} warden {:>10.1} µs   raw {:>10.1} µs   ratio {:.2}x",
                w / 1000.0,
                r / 1000.0,
                w / r
            );
            if let Some(t) = t {
                print!("   tuned {:>8.1} µs   ratio {:.2}x", t / 1000.0, w / t);
            }
            println!();
        }
    }
    println!("\nhost/run (one call through warden::host::Warden):");
    for what in ["hello", "file-reader"] {
        let audited = median_ns("host", &format!("{what}-audited"));
        let plain = median_ns("host", &format!("{what}-unaudited"));
        let tuned = median_ns("host", &format!("{what}-raw-tuned"));
        if let (Some(a), Some(u), Some(t)) = (audited, plain, tuned) {
            println!(
                "  {what:<12} audited {:>7.1} µs   unaudited {:>7.1} µs   raw-tuned {:>7.1} µs   audited/unaudited {:.2}x (target <= 1.3)   unaudited/raw-tuned {:.2}x (target <= 1.10)",
                a / 1000.0,
                u / 1000.0,
                t / 1000.0,
                a / u,
                u / t
            );
        }
    }
    println!("\nhost/audit (what the audit log adds to one call, and its floor):");
    println!("  floor: the same two lines appended with flock, SHA-256, write(2), unlock only");
    for what in ["hello", "file-reader"] {
        let audited = median_ns("host", &format!("{what}-audited"));
        let plain = median_ns("host", &format!("{what}-unaudited"));
        let floor = median_ns("host", &format!("floor-{what}"));
        let beside = median_ns("host", &format!("floor-{what}-beside-call"));
        if let (Some(a), Some(u), Some(f)) = (audited, plain, floor) {
            print!(
                "  {what:<12} audited - unaudited {:>6.2} µs (target <= 8)   floor {:>6.2} µs   ratio {:.2}x (target <= 1.5)",
                (a - u) / 1000.0,
                f / 1000.0,
                (a - u) / f
            );
            if let Some(b) = beside {
                print!(
                    "   floor beside the call {:>6.2} µs   ratio {:.2}x",
                    (b - u) / 1000.0,
                    (a - u) / (b - u)
                );
            }
            println!();
        }
    }
    for (what, audited, plain, difference) in INTERLEAVED.lock().unwrap().iter() {
        println!(
            "  {what:<12} interleaved: audited {:>6.2} µs   unaudited {:>6.2} µs   audited - unaudited {:>6.2} µs (median of {INTERLEAVED_ROUNDS} rounds of {INTERLEAVED_CALLS} calls each)",
            audited / 1000.0,
            plain / 1000.0,
            difference / 1000.0
        );
    }
    println!("\nhost/throughput (calls per second on one host):");
    let mut scaling = std::collections::HashMap::new();
    for what in ["audited", "synced", "raw-tuned"] {
        let one = median_ns("host", &format!("throughput-{what}-1t"));
        let two = median_ns("host", &format!("throughput-{what}-2t"));
        if let (Some(one), Some(two)) = (one, two) {
            println!(
                "  {what:<10} 1 thread {:>8.0}/s   2 threads {:>8.0}/s   2t/1t {:.2}x",
                1e9 / one,
                1e9 / two,
                one / two
            );
            scaling.insert(what, one / two);
        }
    }
    if let (Some(audited), Some(raw)) = (scaling.get("audited"), scaling.get("raw-tuned")) {
        println!(
            "  audited scaling / raw wasmtime's scaling {:.2} (target >= 0.9)",
            audited / raw
        );
    }
    if let Some(synced) = scaling.get("synced") {
        println!("  synced 2t/1t {synced:.2}x (target >= 1.6)");
    }
    let interleaved = SCALING.lock().unwrap();
    if !interleaved.kinds.is_empty() {
        println!(
            "  interleaved (median of {SCALING_ROUNDS} rounds, each kind from 1 and 2 threads back to back):"
        );
    }
    for (what, one, two, ratio) in &interleaved.kinds {
        println!(
            "  {what:<10} 1 thread {one:>8.0}/s   2 threads {two:>8.0}/s   2t/1t {ratio:.2}x (median of the rounds' ratios)"
        );
    }
    if let Some(r) = interleaved.audited_over_raw {
        println!("  interleaved: audited scaling / raw wasmtime's scaling {r:.2} (target >= 0.9)");
    }
    if let Some((.., synced)) = interleaved.kinds.iter().find(|k| k.0 == "synced") {
        println!("  interleaved: synced 2t/1t {synced:.2}x (target >= 1.6)");
    }
}

/// A loopback HTTP server on a free port of 127.0.0.1 (`fetcher` declares any port)
/// answering every request with `200 ok`, one connection at a time, each closed after
/// its answer; its port.
fn loopback_server() -> u16 {
    use std::io::{BufRead as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = std::io::BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            let mut stream = reader.into_inner();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    port
}

fn effect(c: &mut Criterion) {
    let port = loopback_server();
    let work = tempfile::tempdir().unwrap();
    let log = work.path().join("audit.jsonl");
    let policy = examples_policy_with("in-process", Some(port));
    let warden = host_of(&policy, work.path(), Some(&log), false);
    let fetcher = ready(&warden, "fetcher");
    let url = format!("http://127.0.0.1:{port}/bench");
    let url = url.as_str();
    let get = vec!["get".to_string(), url.to_string()];
    let echo = vec!["echo".to_string(), url.to_string()];
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(5)))
            .build(),
    );
    let mut g = c.benchmark_group("effect");
    g.bench_function("http_get-warden", |b| {
        b.iter(|| {
            let report = fetcher.run(black_box(&get)).unwrap();
            assert_eq!(report.exit_code(), 0);
        })
    });
    g.bench_function("no-effect-warden", |b| {
        b.iter(|| {
            let report = fetcher.run(black_box(&echo)).unwrap();
            assert_eq!(report.exit_code(), 0);
        })
    });
    g.bench_function("http_get-direct", |b| {
        b.iter(|| {
            let mut response = agent.get(black_box(url)).call().unwrap();
            let body = response.body_mut().read_to_vec().unwrap();
            assert_eq!(body, b"ok");
        })
    });
    g.finish();
}

fn print_effect_ratio() {
    let get = median_ns("effect", "http_get-warden");
    let none = median_ns("effect", "no-effect-warden");
    let direct = median_ns("effect", "http_get-direct");
    if let (Some(get), Some(none), Some(direct)) = (get, none, direct) {
        println!("\neffect/http_get (one GET to a loopback server):");
        println!(
            "  call with GET {:>7.1} µs   call without {:>7.1} µs   direct request {:>7.1} µs   (with - without) / direct {:.2}x (target <= 1.2)",
            get / 1000.0,
            none / 1000.0,
            direct / 1000.0,
            (get - none) / direct
        );
    }
}

/// The second wall's price: one call of hello and of file-reader through the host
/// (unaudited) with `isolation = "process"` (a worker, reused) and `"in-process"`;
/// and a whole cached `warden run hello` (a process, its audit log, its cache) under
/// each.
fn isolation(c: &mut Criterion) {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "greetings").unwrap();
    let process_host = host_with(work.path(), None, false, "process");
    let in_process_host = host_with(work.path(), None, false, "in-process");
    let mut g = c.benchmark_group("isolation");
    for (name, args) in [
        ("hello", vec!["bench".to_string()]),
        (
            "file-reader",
            vec!["read".to_string(), "hello.txt".to_string()],
        ),
    ] {
        let process = ready(&process_host, name);
        let in_process = ready(&in_process_host, name);
        assert_eq!(process.confinement().isolation.as_str(), "process");
        assert_eq!(
            process.run(&args).unwrap().result.unwrap(),
            in_process.run(&args).unwrap().result.unwrap()
        );
        g.bench_function(format!("{name}-process"), |b| {
            b.iter(|| black_box(process.run(&args).unwrap()))
        });
        g.bench_function(format!("{name}-in-process"), |b| {
            b.iter(|| black_box(in_process.run(&args).unwrap()))
        });
    }
    // Whole `warden run` processes, cache warm, each its own audit log.
    let state = tempfile::tempdir().unwrap();
    let hello = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/plugins/hello.wasm");
    let cli = |isolation: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_warden"));
        command
            .arg("run")
            .arg("--policy")
            .arg(examples_policy(isolation))
            .arg("--audit-log")
            .arg(state.path().join(format!("{isolation}.jsonl")))
            .arg(&hello)
            .current_dir(work.path())
            .env("XDG_CACHE_HOME", state.path().join("cache"))
            .stdout(std::process::Stdio::null());
        command
    };
    for isolation in ["process", "in-process"] {
        assert!(
            cli(isolation).status().unwrap().success(),
            "warden run under {isolation}"
        );
        g.bench_function(format!("cli-run-hello-{isolation}"), |b| {
            b.iter(|| assert!(cli(isolation).status().unwrap().success()))
        });
    }
    g.finish();
}

/// Throughput and p99 latency of hello through one host (audited, 64 call slots)
/// from 1, 2, 64 and 256 callers at once, under each isolation. Printed, not
/// criterion: every caller's latency counts, including the wait for a slot.
fn concurrency() {
    let work = tempfile::tempdir().unwrap();
    println!("\nconcurrency (hello through one audited host, 64 call slots):");
    for isolation in ["in-process", "process"] {
        let log = work.path().join(format!("{isolation}.jsonl"));
        let warden = host_with(work.path(), Some(&log), false, isolation);
        let hello = ready(&warden, "hello");
        let args = vec!["bench".to_string()];
        for callers in [1usize, 2, 64, 256] {
            let calls = (callers * 40).max(4_000);
            let done = std::sync::atomic::AtomicUsize::new(0);
            let started = Instant::now();
            let mut latencies: Vec<Duration> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..callers)
                    .map(|_| {
                        s.spawn(|| {
                            let mut mine = Vec::new();
                            while done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < calls {
                                let t = Instant::now();
                                let report = hello.run(&args).unwrap();
                                assert!(report.result.is_ok(), "{:?}", report.result);
                                mine.push(t.elapsed());
                            }
                            mine
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .flat_map(|h| h.join().unwrap())
                    .collect()
            });
            let wall = started.elapsed();
            latencies.sort();
            let p = |q: f64| {
                latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)]
            };
            println!(
                "  {isolation:<10} {callers:>3} callers: {:>8.0} calls/s   p50 {:>8.1} µs   p99 {:>8.1} µs",
                latencies.len() as f64 / wall.as_secs_f64(),
                p(0.50).as_secs_f64() * 1e6,
                p(0.99).as_secs_f64() * 1e6,
            );
        }
        if isolation == "process" {
            let (workers, resident) = worker_resident();
            println!(
                "  {workers} idle workers after the runs, {:.1} MiB resident each on average",
                resident as f64 / workers.max(1) as f64 / 1048576.0
            );
        }
        warden.flush().unwrap();
    }
}

/// How many child processes this process has, and their resident bytes in all.
fn worker_resident() -> (u64, u64) {
    let me = std::process::id().to_string();
    let page = rustix::param::page_size() as u64;
    let (mut count, mut bytes) = (0, 0);
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: fields after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        if rest.split_whitespace().nth(1) != Some(me.as_str()) {
            continue;
        }
        if let Ok(statm) = std::fs::read_to_string(entry.path().join("statm"))
            && let Some(pages) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        {
            count += 1;
            bytes += pages * page;
        }
    }
    (count, bytes)
}

fn print_isolation() {
    println!("\nisolation (the worker's price, same run):");
    for what in ["hello", "file-reader"] {
        let p = median_ns("isolation", &format!("{what}-process"));
        let i = median_ns("isolation", &format!("{what}-in-process"));
        if let (Some(p), Some(i)) = (p, i) {
            println!(
                "  host call {what:<12} process {:>8.1} µs   in-process {:>8.1} µs   the wall costs {:>6.1} µs a call (target <= 25)",
                p / 1000.0,
                i / 1000.0,
                (p - i) / 1000.0
            );
        }
    }
    let p = median_ns("isolation", "cli-run-hello-process");
    let i = median_ns("isolation", "cli-run-hello-in-process");
    if let (Some(p), Some(i)) = (p, i) {
        println!(
            "  cached `warden run hello`: process {:>6.2} ms   in-process {:>6.2} ms   ratio {:.2}x (target <= 1.25)",
            p / 1e6,
            i / 1e6,
            p / i
        );
    }
}

fn main() {
    // Plugins under `isolation = "process"` run in workers started from this
    // executable.
    warden::worker::main_if_worker();
    let mut c = Criterion::default().configure_from_args();
    load(&mut c);
    execute(&mut c);
    file_reader_and_host(&mut c);
    effect(&mut c);
    isolation(&mut c);
    c.final_summary();
    print_ratios();
    print_effect_ratio();
    print_isolation();
    concurrency();
}
