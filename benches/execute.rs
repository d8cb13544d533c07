//! warden's per-call cost next to raw wasmtime doing the same work, in the same run.
//!
//! Each group measures warden and a raw-wasmtime floor side by side:
//!
//! - `load`: compiling a plugin (and reading its manifest) vs `Module::new`, and a
//!   cached load vs `Module::deserialize`;
//! - `execute`: one `execute` of `hello` vs raw wasmtime with a pooling allocator doing
//!   the same work (fresh store and WASI context, instantiate, alloc, write args, call,
//!   read and decode the result, dealloc) with no limits at all.
//!
//! After the groups, the ratios warden / floor are printed from criterion's estimates.
//! Run with `cargo bench --bench execute`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs, unsafe_code)]

use criterion::Criterion;
use std::hint::black_box;
use std::path::PathBuf;
use warden::abi::ExecuteResult;
use warden::cache::ModuleCache;
use warden::{Loader, LoaderConfig};
use wasmtime::{Config, Engine, InstancePre, Linker, Module, PoolingAllocationConfig, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;

fn plugin(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("examples/plugins")
        .join(format!("{name}.wasm"));
    std::fs::read(path).unwrap()
}

/// Raw wasmtime: the floor. Pooling allocator, no fuel, no epochs, no limits.
struct Raw {
    engine: Engine,
    pre: InstancePre<WasiP1Ctx>,
}

impl Raw {
    fn new(wasm: &[u8]) -> Raw {
        let mut config = Config::new();
        let mut pool = PoolingAllocationConfig::new();
        pool.total_memories(16)
            .total_tables(16)
            .total_core_instances(16);
        config.allocation_strategy(pool);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wasm).unwrap();
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c| c).unwrap();
        let pre = linker.instantiate_pre(&module).unwrap();
        Raw { engine, pre }
    }

    fn execute(&self, args: &[String]) -> ExecuteResult {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true).arg("hello");
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
    let raw = Raw::new(&wasm);
    let args = vec!["bench".to_string()];
    let expected = ExecuteResult::Success("Hello, bench!".into());
    assert_eq!(hello.instance.execute(&args).unwrap(), expected);
    assert_eq!(raw.execute(&args), expected);

    let mut g = c.benchmark_group("execute");
    g.bench_function("hello-warden", |b| {
        b.iter(|| black_box(hello.instance.execute(&args).unwrap()))
    });
    g.bench_function("hello-raw", |b| b.iter(|| black_box(raw.execute(&args))));
    g.finish();
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
    for (group, what) in [
        ("load", "compile"),
        ("load", "cache"),
        ("execute", "hello"),
        ("execute", "file-reader"),
        ("execute", "file-reader+audit"),
    ] {
        let w = mean_ns(group, &format!("{what}-warden"));
        let r = mean_ns(group, &format!("{what}-raw"));
        if let (Some(w), Some(r)) = (w, r) {
            println!(
                "  {group}/{what:<20} warden {:>10.1} µs   raw {:>10.1} µs   ratio {:.2}x",
                w / 1000.0,
                r / 1000.0,
                w / r
            );
        }
    }
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    load(&mut c);
    execute(&mut c);
    c.final_summary();
    print_ratios();
}
