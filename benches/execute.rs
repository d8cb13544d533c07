//! warden's per-call cost next to raw wasmtime doing the same work, in the same run.
//!
//! Each group measures warden and a raw-wasmtime floor side by side:
//!
//! - `load`: compiling a plugin (and reading its manifest) vs `Module::new`, and a
//!   cached load vs `Module::deserialize`;
//! - `execute`: one `execute` of `hello`, and of `file-reader` reading a file through a
//!   preopen with env and stdout granted (also with the audit log on: `run_start`,
//!   `run_end`, synced), vs raw wasmtime with a pooling allocator doing the same work
//!   (fresh store and WASI context with the same preopen/env/stdout, instantiate,
//!   alloc, write args, call, read and decode the result, dealloc) with no limits at all;
//!   and the same raw wasmtime with warden's pool settings (`-raw-tuned`), so the
//!   ratio to it is what warden's sandbox itself costs.
//!
//! After the groups, the ratios warden / floor are printed from criterion's estimates.
//! Run with `cargo bench --bench execute`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unsafe_code)]

use criterion::Criterion;
use std::hint::black_box;
use std::path::PathBuf;
use warden::abi::ExecuteResult;
use warden::audit::{AuditLog, Rotation, RunStart};
use warden::cache::ModuleCache;
use warden::grant::{Host, decide};
use warden::policy::Policy;
use warden::runtime::{KEEP_RESIDENT_MEMORY, KEEP_RESIDENT_TABLE};
use warden::sandbox::Sandbox;
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
    wasi: Box<dyn Fn() -> WasiCtxBuilder>,
}

impl Raw {
    fn new(wasm: &[u8], pool_kind: Pool, wasi: impl Fn() -> WasiCtxBuilder + 'static) -> Raw {
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

/// file-reader reading `data/hello.txt` and an env var's worth of grants, under
/// `policies/examples.toml`, with and without the audit log, next to raw wasmtime
/// with the same preopen, env and captured stdout.
fn file_reader(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "greetings").unwrap();
    let wasm = plugin("file-reader");

    let text = std::fs::read_to_string(root.join("policies/examples.toml")).unwrap();
    let policy = Policy::parse("examples.toml", &text).unwrap();
    let loader = Loader::new(LoaderConfig::new(work.path())).unwrap();
    let mut loaded = loader.load(&wasm).unwrap();
    let mut host = Host::from_process(work.path());
    host.env = vec![("HOME".into(), "/home/bench".into())];
    let decisions = decide(
        &loaded.manifest.capabilities,
        &loaded.manifest.command.name,
        loaded.instance.sha256(),
        &policy,
        &host,
    );
    assert!(decisions.refusal().is_none());
    loaded.instance.set_limits(decisions.limits().clone());
    loaded
        .instance
        .set_sandbox(Sandbox::from_decisions(&decisions));
    let reader = loaded.instance;

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
    let raw = Raw::new(&wasm, Pool::Default, raw_wasi(data.clone()));
    let tuned = Raw::new(&wasm, Pool::Tuned, raw_wasi(data.clone()));
    let args = vec!["read".to_string(), "hello.txt".to_string()];
    let expected = ExecuteResult::Success("greetings".into());
    assert_eq!(reader.execute(&args).unwrap(), expected);
    assert_eq!(raw.execute(&args), expected);
    assert_eq!(tuned.execute(&args), expected);

    let log_dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(log_dir.path().join("audit.jsonl"), Rotation::Never).unwrap();
    let audited = || {
        let rec = log.run().unwrap();
        rec.run_start(RunStart {
            args: &args,
            load: None,
            log_args: false,
            limits: reader.limits(),
        })
        .unwrap();
        let report = reader.run(&args);
        rec.run_finished(&report, 0).unwrap();
        report
    };
    assert_eq!(audited().result.unwrap(), expected);

    let mut g = c.benchmark_group("execute");
    g.bench_function("file-reader-warden", |b| {
        b.iter(|| black_box(reader.execute(&args).unwrap()))
    });
    g.bench_function("file-reader-raw", |b| {
        b.iter(|| black_box(raw.execute(&args)))
    });
    g.bench_function("file-reader-raw-tuned", |b| {
        b.iter(|| black_box(tuned.execute(&args)))
    });
    g.bench_function("file-reader+audit-warden", |b| {
        b.iter(|| black_box(audited()))
    });
    g.bench_function("file-reader+audit-raw", |b| {
        b.iter(|| black_box(raw.execute(&args)))
    });
    g.bench_function("file-reader+audit-raw-tuned", |b| {
        b.iter(|| black_box(tuned.execute(&args)))
    });
    g.finish();
    drop(log);
}

/// Reads criterion's mean estimate (ns) for `group/function`.
fn mean_ns(group: &str, function: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn print_ratios() {
    println!("\nwarden / raw wasmtime (same run, criterion means):");
    println!("  raw: wasmtime's default pooling allocator (the floor of issue #6)");
    println!("  tuned: raw with warden's pool settings (the price of the sandbox alone)");
    for (group, what) in [
        ("load", "compile"),
        ("load", "cache"),
        ("execute", "hello"),
        ("execute", "file-reader"),
        ("execute", "file-reader+audit"),
    ] {
        let w = mean_ns(group, &format!("{what}-warden"));
        let r = mean_ns(group, &format!("{what}-raw"));
        let t = mean_ns(group, &format!("{what}-raw-tuned"));
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
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    load(&mut c);
    execute(&mut c);
    file_reader(&mut c);
    c.final_summary();
    print_ratios();
}
