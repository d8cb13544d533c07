//! Soak check: 10,000 executes of `hello`, then 10,000 audited executes of
//! `file-reader`, each through one loaded plugin, resident memory read from
//! `/proc/self/statm` after 100 and after 10,000. A per-call leak of even 512 bytes
//! would add about 5 MiB; the check allows no more than that. Then 10,000 audited
//! calls of `hello` from 256 threads at once through one host (its 64 call slots
//! full, the rest waiting their turn), resident memory once every thread has made its
//! first calls and after the 10,000.
//!
//! Its own test binary, so no other test allocates in the process while it measures.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    missing_docs
)]

use warden::abi::ExecuteResult;
use warden::host::{Loaded, Warden};
use warden::{Loader, LoaderConfig};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * rustix::param::page_size() as u64
}

/// Runs `call` 10,000 times and returns resident memory after 100 and after 10,000.
fn resident_over(mut call: impl FnMut()) -> (u64, u64) {
    let mut at_100 = 0;
    for i in 1..=10_000 {
        call();
        if i == 100 {
            at_100 = resident_bytes();
        }
    }
    (at_100, resident_bytes())
}

fn report(what: &str, (at_100, at_10_000): (u64, u64)) {
    let growth = at_10_000 as i64 - at_100 as i64;
    println!(
        "{what}: resident after the first executes: {:.2} MiB, after 10,000: {:.2} MiB (growth {:+.2} MiB)",
        at_100 as f64 / 1048576.0,
        at_10_000 as f64 / 1048576.0,
        growth as f64 / 1048576.0
    );
    assert!(
        growth < 5 * 1024 * 1024,
        "{what}: resident memory grew by {growth} bytes"
    );
}

/// One test, so the two measurements never overlap.
#[test]
fn resident_memory_is_flat_over_10_000_executes() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let wasm = std::fs::read(root.join("examples/plugins/hello.wasm")).unwrap();
    let loader = Loader::new(LoaderConfig::new("/")).unwrap();
    let hello = loader.load(&wasm).unwrap();
    let args = vec!["soak".to_string()];
    let expected = ExecuteResult::Success("Hello, soak!".into());
    report(
        "hello",
        resident_over(|| assert_eq!(hello.instance.execute(&args).unwrap(), expected)),
    );

    // file-reader through a granted directory, env and stdout, with every run
    // recorded in an audit log (run_start, run_end): the sandbox's WASI context, the
    // shadowed WASI calls and the log writer are rebuilt or used on every call.
    let work = tempfile::tempdir().unwrap();
    std::fs::create_dir(work.path().join("data")).unwrap();
    std::fs::write(work.path().join("data/hello.txt"), "greetings").unwrap();
    let warden = Warden::builder()
        .worker_program(env!("CARGO_BIN_EXE_warden"))
        .policy_file(root.join("policies/examples.toml"))
        .audit_log(work.path().join("audit.jsonl"))
        .workdir(work.path())
        .env([("HOME".to_string(), "/home/soak".to_string())])
        .without_cache()
        .build()
        .unwrap();
    let Loaded::Ready(reader) = warden
        .load(root.join("examples/plugins/file-reader.wasm"))
        .unwrap()
    else {
        panic!("the example policy does not refuse file-reader");
    };
    let args = vec!["read".to_string(), "hello.txt".to_string()];
    let expected = ExecuteResult::Success("greetings".into());
    report(
        "file-reader + audit log",
        resident_over(|| {
            let result = reader.run(&args).unwrap();
            assert_eq!(result.result.unwrap(), expected);
        }),
    );
    warden.flush().unwrap();
    let text = std::fs::read_to_string(work.path().join("audit.jsonl")).unwrap();
    let count = |event: &str| text.matches(&format!("\"event\":\"{event}\"")).count();
    assert_eq!((count("run_start"), count("run_end")), (10_000, 10_000));

    // 256 callers at once on one host, in warden's process: every call waits for one
    // of the 64 slots, none fails, and memory stays flat.
    let policy = work.path().join("in-process.toml");
    std::fs::write(
        &policy,
        "version = 1\n[defaults]\nisolation = \"in-process\"\nstdio = [\"stdout\"]\n",
    )
    .unwrap();
    let busy = Warden::builder()
        .policy_file(&policy)
        .audit_log(work.path().join("busy.jsonl"))
        .workdir(work.path())
        .without_cache()
        .build()
        .unwrap();
    let Loaded::Ready(hello) = busy.load(root.join("examples/plugins/hello.wasm")).unwrap() else {
        panic!("the built-in policy does not refuse hello");
    };
    // The baseline is taken once every thread has made its first calls (its stack,
    // its thread-locals, the malloc arena it lands in, the pool slots it reaches), so
    // that what grows after it is what the next 10,000 calls keep.
    const THREADS: usize = 256;
    const WARM_UP: usize = 4;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let warmed = std::sync::Barrier::new(THREADS);
    let baseline = std::sync::atomic::AtomicU64::new(0);
    let args = vec!["soak".to_string()];
    let call = || {
        let report = hello.run(&args).unwrap();
        assert_eq!(
            report.result.unwrap(),
            ExecuteResult::Success("Hello, soak!".into())
        );
    };
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..WARM_UP {
                    call();
                }
                if warmed.wait().is_leader() {
                    baseline.store(resident_bytes(), std::sync::atomic::Ordering::SeqCst);
                }
                warmed.wait();
                while done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < 10_000 {
                    call();
                }
            });
        }
    });
    report(
        "hello from 256 threads, 64 slots",
        (baseline.into_inner(), resident_bytes()),
    );
    busy.flush().unwrap();
    let text = std::fs::read_to_string(work.path().join("busy.jsonl")).unwrap();
    let count = |event: &str| text.matches(&format!("\"event\":\"{event}\"")).count();
    let calls = 10_000 + THREADS * WARM_UP;
    assert_eq!((count("run_start"), count("run_end")), (calls, calls));
    assert_eq!(text.matches("\"outcome\":\"success\"").count(), calls);
}
