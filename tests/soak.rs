//! Soak check: 10,000 executes of `hello` through one loaded plugin, resident memory
//! read from `/proc/self/statm` after 100 and after 10,000. A per-call leak of even
//! 512 bytes would add about 5 MiB; the check allows no more than that.
//!
//! Its own test binary, so no other test allocates in the process while it measures.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use warden::abi::ExecuteResult;
use warden::{Loader, LoaderConfig};

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * rustix::param::page_size() as u64
}

#[test]
fn resident_memory_is_flat_over_10_000_executes() {
    let wasm = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/plugins/hello.wasm"
    ))
    .unwrap();
    let loader = Loader::new(LoaderConfig::new("/")).unwrap();
    let hello = loader.load(&wasm).unwrap();
    let args = vec!["soak".to_string()];
    let expected = ExecuteResult::Success("Hello, soak!".into());
    let mut at_100 = 0;
    for i in 1..=10_000 {
        assert_eq!(hello.instance.execute(&args).unwrap(), expected);
        if i == 100 {
            at_100 = resident_bytes();
        }
    }
    let at_10_000 = resident_bytes();
    let growth = at_10_000 as i64 - at_100 as i64;
    println!(
        "resident after 100 executes: {:.2} MiB, after 10,000: {:.2} MiB (growth {:+.2} MiB)",
        at_100 as f64 / 1048576.0,
        at_10_000 as f64 / 1048576.0,
        growth as f64 / 1048576.0
    );
    assert!(
        growth < 5 * 1024 * 1024,
        "resident memory grew by {growth} bytes"
    );
}
