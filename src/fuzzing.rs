//! Entry points for the fuzz targets in `fuzz/`, so that each target is a few lines
//! calling the very code `warden run` uses (as rustls does). Each function panics only
//! when an invariant is broken, which is what the fuzzer looks for.
//!
//! The structured targets (`policy_parse`'s second mode, `grant_intersection`) read
//! their choices from the raw input with `Source`, a few lines in the manner of
//! `arbitrary::Unstructured`, rather than from an `arbitrary`-derived struct in the
//! fuzz crate: that keeps the whole path from bytes to verdict in this module, so
//! `tests/all/fuzz_inputs.rs` replays seeds and regressions through exactly what the
//! fuzzer ran, on stable and without `arbitrary` as a dependency of warden.
//!
//! Not part of the public API.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod grant_intersection;
mod net_request;
pub mod oracle;
mod policy_parse;
mod source;
mod worker_message;

pub use grant_intersection::grant_intersection;
pub use net_request::net_request;
pub use policy_parse::policy_parse;
pub use worker_message::worker_message;

use crate::abi::{self, AbiViolation, GuestRegion};

/// `manifest_decode`: arbitrary bytes through decoding and validation. A manifest that
/// is accepted must survive a round trip through both encodings unchanged.
pub fn manifest_decode(data: &[u8]) {
    let Ok(manifest) = abi::parse_manifest(data) else {
        return;
    };
    for encoded in [
        rmp_serde::to_vec_named(&manifest).expect("an accepted manifest encodes"),
        rmp_serde::to_vec(&manifest).expect("an accepted manifest encodes"),
    ] {
        let again = abi::parse_manifest(&encoded)
            .unwrap_or_else(|e| panic!("re-encoded manifest rejected: {e}"));
        assert_eq!(again, manifest, "round trip changed the manifest");
    }
}

/// `memory_read`: a memory of `memory_size` bytes (each byte its index mod 251) and a
/// packed `(ptr, len)`. The answer must be exactly the requested slice, or the one
/// typed error an independent computation predicts.
pub fn memory_read(memory_size: u32, packed: i64) {
    let memory_size = (memory_size % (4 * 1024 * 1024)) as usize;
    let memory: Vec<u8> = (0..memory_size).map(|i| (i % 251) as u8).collect();
    let region = GuestRegion::unpack(packed);
    let (ptr, len) = (u64::from(region.ptr), u64::from(region.len));
    assert_eq!(
        GuestRegion::unpack(region.pack()),
        region,
        "pack/unpack disagree"
    );
    match abi::read_region(&memory, region, "fuzz") {
        Ok(slice) => {
            assert!(ptr != 0, "null pointer accepted");
            assert!(
                ptr + len <= memory_size as u64,
                "out-of-bounds read accepted"
            );
            assert_eq!(slice.len() as u64, len, "wrong length");
            for (i, b) in slice.iter().enumerate() {
                assert_eq!(*b, ((ptr as usize + i) % 251) as u8, "wrong bytes");
            }
        }
        Err(AbiViolation::NullResult { .. }) => assert!(ptr == 0 && len == 0),
        Err(AbiViolation::NullPointer { .. }) => assert!(ptr == 0 && len != 0),
        Err(AbiViolation::Overflow { .. }) => assert!(ptr != 0 && ptr + len > u64::from(u32::MAX)),
        Err(AbiViolation::OutOfBounds { memory_size: m, .. }) => {
            assert_eq!(m, memory_size);
            assert!(ptr != 0 && ptr + len <= u64::from(u32::MAX) && ptr + len > m as u64);
        }
        Err(other) => panic!("unexpected error for a read: {other}"),
    }
    // The allocation check agrees with the same arithmetic.
    let fits = ptr != 0 && ptr + len <= memory_size as u64;
    assert_eq!(
        abi::check_alloc(memory_size, region.ptr, region.len).is_ok(),
        fits,
        "check_alloc disagrees"
    );
}

/// `plugin_module`: whole modules with hostile bodies behind the ABI exports. Loading
/// and one execute must end in a result or a typed error within the limits.
pub fn plugin_module(wasm: &[u8]) {
    use crate::runtime::{Loader, LoaderConfig};
    use std::sync::OnceLock;
    static LOADER: OnceLock<Loader> = OnceLock::new();
    let loader = LOADER.get_or_init(|| {
        let mut config = LoaderConfig::new("/");
        config.limits.fuel = 200_000;
        config.limits.memory = 16 * 1024 * 1024;
        config.limits.timeout = std::time::Duration::from_secs(2);
        config.limits.max_output = 64 * 1024;
        config.limits.stack = 256 * 1024;
        Loader::new(config).expect("loader builds")
    });
    let Ok(loaded) = loader.load(wasm) else {
        return;
    };
    let report = loaded.instance.run(&["fuzz".into()]);
    assert!(
        report.fuel_consumed <= 200_000,
        "more fuel consumed than granted"
    );
    if let Err(e) = &report.result {
        // Every error maps to a documented exit code.
        assert!(
            matches!(e.exit_code(), 2 | 65 | 66 | 70 | 77 | 124 | 125),
            "{e}"
        );
    }
}
