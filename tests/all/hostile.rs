//! Hostile plugins, hand-written in WAT. Each case asserts the exact error (kind, call,
//! limit) and then that the same loader still runs a good plugin normally.

use crate::common::*;
use std::time::Duration;
use warden::abi::{
    AbiViolation, Capabilities, DecodeError, ExecuteResult, ManifestError, ValidationError,
};
use warden::runtime::{GuestCall, RuntimeError, RuntimeErrorKind};
use warden::{LimitKind, Limits, Loader};

/// Loads `plugin` and expects the load to fail with `kind` in `call`.
fn expect_load_error(loader: &Loader, plugin: &WatPlugin, call: Option<GuestCall>) -> RuntimeError {
    let err = loader
        .load(&plugin.bytes())
        .expect_err("hostile plugin must not load");
    assert_eq!(err.call, call, "wrong call for {err}");
    assert_still_runs_hello(loader);
    err
}

/// Loads `plugin` (which must load) and expects its execute to fail.
fn expect_run_error(loader: &Loader, plugin: &WatPlugin) -> RuntimeError {
    let loaded = loader.load(&plugin.bytes()).expect("plugin loads");
    let err = loaded
        .instance
        .execute(&[])
        .expect_err("hostile execute must fail");
    assert_eq!(
        err.plugin.as_deref(),
        Some(loaded.manifest.command.name.as_str())
    );
    assert_still_runs_hello(loader);
    err
}

fn limit(limit: LimitKind, value: u64) -> RuntimeErrorKind {
    RuntimeErrorKind::Limit { limit, value }
}

#[test]
fn endless_loop_runs_out_of_fuel() {
    let loader = loader();
    let mut p = WatPlugin::new("spin");
    p.execute_fn = Some("(loop $l (br $l)) (unreachable)".into());
    let err = expect_run_error(&loader, &p);
    assert_eq!(err.call, Some(GuestCall::Execute));
    assert_eq!(err.kind, limit(LimitKind::Fuel, 10_000_000));
    assert_eq!(err.exit_code(), 125);
}

#[test]
fn endless_loop_with_ample_fuel_hits_the_wall_clock() {
    let loader = loader_with(Limits {
        fuel: u64::MAX / 4,
        timeout: Duration::from_millis(200),
        ..Limits::default()
    });
    let mut p = WatPlugin::new("spin");
    p.execute_fn = Some("(loop $l (br $l)) (unreachable)".into());
    let err = expect_run_error(&loader, &p);
    assert_eq!(err.call, Some(GuestCall::Execute));
    assert_eq!(err.kind, limit(LimitKind::Timeout, 200));
    assert_eq!(err.exit_code(), 124);
}

#[test]
fn memory_grow_bomb_hits_the_memory_ceiling() {
    let loader = loader();
    let mut p = WatPlugin::new("bomb");
    // Grow one page at a time until growth fails; then trap.
    p.execute_fn = Some(
        "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) (unreachable)"
            .into(),
    );
    let err = expect_run_error(&loader, &p);
    assert_eq!(err.kind, limit(LimitKind::Memory, 64 * 1024 * 1024));
    assert_eq!(err.exit_code(), 125);
}

#[test]
fn initial_memory_past_the_ceiling_is_refused_at_instantiation() {
    let loader = loader();
    let mut p = WatPlugin::new("fat");
    p.memory = r#"(memory (export "memory") 2000)"#.into(); // 125 MiB
    let err = expect_load_error(&loader, &p, Some(GuestCall::Instantiate));
    assert_eq!(err.kind, limit(LimitKind::Memory, 64 * 1024 * 1024));
}

#[test]
fn unbounded_recursion_overflows_the_wasm_stack() {
    let loader = loader();
    let mut p = WatPlugin::new("deep");
    p.execute_fn = Some("(call $recurse (i32.const 0)) (unreachable)".into());
    p.extra =
        "(func $recurse (param i32) (call $recurse (i32.add (local.get 0) (i32.const 1))))".into();
    let err = expect_run_error(&loader, &p);
    assert_eq!(err.kind, limit(LimitKind::Stack, 1024 * 1024));
}

#[test]
fn manifest_pointer_out_of_bounds() {
    let loader = loader();
    let mut p = WatPlugin::new("oob");
    p.manifest_fn = Some(WatPlugin::packed(4 * 65536 - 4, 16));
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Abi(AbiViolation::OutOfBounds {
            what: "manifest",
            ptr: 4 * 65536 - 4,
            len: 16,
            memory_size: 4 * 65536
        })
    );
    assert_eq!(err.exit_code(), 65);
}

#[test]
fn manifest_length_all_ones_is_refused_before_reading() {
    let loader = loader();
    let mut p = WatPlugin::new("huge");
    p.manifest_fn = Some(WatPlugin::packed(MANIFEST_AT, 0xFFFF_FFFF));
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::ManifestTooLarge {
            len: 0xFFFF_FFFF,
            max: 1024 * 1024
        }
    );
}

#[test]
fn manifest_claiming_100_mib_is_refused() {
    let loader = loader();
    let mut p = WatPlugin::new("huge");
    p.manifest_fn = Some(WatPlugin::packed(MANIFEST_AT, 100 * 1024 * 1024));
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::ManifestTooLarge {
            len: 100 * 1024 * 1024,
            max: 1024 * 1024
        }
    );
}

#[test]
fn pointer_plus_length_overflowing_32_bits() {
    let loader = loader();
    let mut p = WatPlugin::new("wrap");
    p.manifest_fn = Some(WatPlugin::packed(0xFFFF_FF00, 0x200));
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Abi(AbiViolation::Overflow {
            what: "manifest",
            ptr: 0xFFFF_FF00,
            len: 0x200
        })
    );
}

#[test]
fn packed_pointer_with_high_bit_set_is_read_unsigned() {
    let loader = loader();
    let mut p = WatPlugin::new("neg");
    p.manifest_fn = Some(WatPlugin::packed(0x8000_0000, 8));
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Abi(AbiViolation::OutOfBounds {
            what: "manifest",
            ptr: 0x8000_0000,
            len: 8,
            memory_size: 4 * 65536
        })
    );
}

#[test]
fn null_manifest_means_the_guest_failed_to_serialize() {
    let loader = loader();
    let mut p = WatPlugin::new("null");
    p.manifest_fn = Some("(i64.const 0)".into());
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Abi(AbiViolation::NullResult { what: "manifest" })
    );
}

#[test]
fn alloc_returning_zero_is_an_abi_violation() {
    let loader = loader();
    let mut p = WatPlugin::new("nullalloc");
    p.alloc_fn = Some("(i32.const 0)".into());
    let err = expect_run_error(&loader, &p);
    assert_eq!(err.call, Some(GuestCall::Alloc));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Abi(AbiViolation::AllocFailed { size: 1 })
    );
}

#[test]
fn alloc_returning_a_pointer_past_the_end_is_an_abi_violation() {
    let loader = loader();
    let mut p = WatPlugin::new("wildalloc");
    p.alloc_fn = Some("(i32.const -16)".into()); // 0xFFFF_FFF0
    let err = expect_run_error(&loader, &p);
    assert_eq!(err.call, Some(GuestCall::Alloc));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Abi(AbiViolation::AllocOutOfBounds {
            size: 1,
            ptr: 0xFFFF_FFF0,
            memory_size: 4 * 65536
        })
    );
}

#[test]
fn wrong_api_version_is_refused() {
    let loader = loader();
    let mut p = WatPlugin::new("old");
    p.manifest = manifest_bytes_with("old", 1, Capabilities::default());
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Manifest(ManifestError::Invalid(ValidationError::ApiVersion {
            found: 1
        }))
    );
}

#[test]
fn bytes_that_are_not_messagepack_are_refused() {
    let loader = loader();
    let mut p = WatPlugin::new("junk");
    p.manifest = vec![0xc1; 8]; // 0xc1 is "never used" in MessagePack
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert!(
        matches!(
            &err.kind,
            RuntimeErrorKind::Manifest(ManifestError::Decode(DecodeError::Malformed {
                what: "manifest",
                ..
            }))
        ),
        "{err}"
    );
}

#[test]
fn trailing_bytes_after_the_manifest_are_refused() {
    let loader = loader();
    let mut p = WatPlugin::new("tail");
    p.manifest.extend_from_slice(b"\xc0\xc0\xc0");
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Manifest(ManifestError::Decode(DecodeError::TrailingBytes {
            what: "manifest",
            trailing: 3
        }))
    );
}

#[test]
fn messagepack_nested_100_000_deep_is_refused() {
    let loader = loader();
    let mut p = WatPlugin::new("nest");
    // fixmap {"zz": [[[[...]]]]}: an unknown field (which the decoder must walk to
    // skip) holding 100,000 one-element arrays.
    let mut bytes = vec![0x81, 0xa2, b'z', b'z'];
    bytes.extend(std::iter::repeat_n(0x91u8, 100_000));
    bytes.push(0x02);
    p.manifest = bytes;
    // The nested manifest is larger than the gap before the result data; move it.
    p.result = Vec::new();
    p.memory = r#"(memory (export "memory") 4)"#.into();
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Manifest(ManifestError::Decode(DecodeError::TooDeep {
            what: "manifest"
        }))
    );
}

#[test]
fn missing_exports_are_named() {
    let loader = loader();
    let p = WatPlugin::new("x");
    for name in [
        "plugin_manifest",
        "plugin_alloc",
        "plugin_dealloc",
        "plugin_execute",
    ] {
        let wat = p.wat().replace(&format!("(export \"{name}\")"), "");
        let err = loader.load(&wat::parse_str(&wat).unwrap()).expect_err(name);
        assert_eq!(err.kind, RuntimeErrorKind::MissingExport { name }, "{name}");
        assert_eq!(err.exit_code(), 65);
    }
    let wat = p.wat().replace("(export \"memory\")", "");
    let err = loader
        .load(&wat::parse_str(&wat).unwrap())
        .expect_err("memory");
    assert_eq!(err.kind, RuntimeErrorKind::MissingExport { name: "memory" });
    assert_still_runs_hello(&loader);
}

#[test]
fn abi_export_with_the_wrong_signature() {
    let loader = loader();
    let p = WatPlugin::new("sig");
    let wat = p.wat().replace(
        "(func (export \"plugin_manifest\") (result i64)",
        "(func (export \"plugin_manifest\") (result i32) (drop",
    );
    let wat = wat.replacen(
        "(func (export \"plugin_alloc\")",
        "(i32.const 0))\n(func (export \"plugin_alloc\")",
        1,
    );
    let err = loader
        .load(&wat::parse_str(&wat).unwrap())
        .expect_err("wrong signature");
    assert_eq!(
        err.kind,
        RuntimeErrorKind::ExportSignature {
            name: "plugin_manifest",
            expected: "() -> i64",
            found: "a function () -> (i32)".into()
        }
    );
    assert_still_runs_hello(&loader);
}

#[test]
fn trap_inside_plugin_manifest() {
    let loader = loader();
    let mut p = WatPlugin::new("trap");
    p.manifest_fn = Some("(unreachable)".into());
    let err = expect_load_error(&loader, &p, Some(GuestCall::Manifest));
    assert_eq!(
        err.kind,
        RuntimeErrorKind::Trap {
            message: "wasm trap: wasm `unreachable` instruction executed".into()
        }
    );
    assert_eq!(err.exit_code(), 70);
}

#[test]
fn result_larger_than_the_output_limit() {
    let loader = loader_with(Limits {
        max_output: 64,
        ..Limits::default()
    });
    let mut p = WatPlugin::new("big");
    p.result = result_bytes(&ExecuteResult::Success("x".repeat(100)));
    let err = expect_run_error(&loader, &p);
    assert_eq!(err.kind, limit(LimitKind::Output, 64));
    assert_eq!(err.exit_code(), 125);
}

#[test]
fn import_warden_does_not_provide() {
    let loader = loader();
    let mut p = WatPlugin::new("imp");
    p.imports = r#"(import "env" "steal_secrets" (func))"#.into();
    let err = expect_load_error(&loader, &p, None);
    assert_eq!(
        err.kind,
        RuntimeErrorKind::UnsupportedImport {
            module: "env".into(),
            name: "steal_secrets".into()
        }
    );
    let mut p = WatPlugin::new("imp");
    p.imports = r#"(import "wasi_snapshot_preview1" "sock_magic" (func))"#.into();
    let err = expect_load_error(&loader, &p, None);
    assert_eq!(
        err.kind,
        RuntimeErrorKind::UnsupportedImport {
            module: "wasi_snapshot_preview1".into(),
            name: "sock_magic".into()
        }
    );
}

#[test]
fn imported_memory_is_not_provided() {
    let loader = loader();
    let mut p = WatPlugin::new("impmem");
    p.imports = r#"(import "env" "memory" (memory 1))"#.into();
    p.memory = String::new();
    let wat = p.wat().replace(
        r#"(import "env" "memory" (memory 1))"#,
        r#"(import "env" "memory" (memory 4)) (export "memory" (memory 0))"#,
    );
    let err = loader
        .load(&wat::parse_str(&wat).unwrap())
        .expect_err("imported memory");
    assert_eq!(
        err.kind,
        RuntimeErrorKind::UnsupportedImport {
            module: "env".into(),
            name: "memory".into()
        }
    );
}

#[test]
fn start_function_that_never_returns() {
    let loader = loader_with(Limits {
        fuel: u64::MAX / 4,
        timeout: Duration::from_millis(200),
        ..Limits::default()
    });
    let mut p = WatPlugin::new("start");
    p.extra = "(func $forever (loop $l (br $l))) (start $forever)".into();
    let err = expect_load_error(&loader, &p, Some(GuestCall::Instantiate));
    assert_eq!(err.kind, limit(LimitKind::Timeout, 200));
    // With default fuel the same start function runs out of fuel instead.
    let loader = crate::common::loader();
    let err = expect_load_error(&loader, &p, Some(GuestCall::Instantiate));
    assert_eq!(err.kind, limit(LimitKind::Fuel, 10_000_000));
}

#[test]
fn two_memories_are_refused() {
    let loader = loader();
    let mut p = WatPlugin::new("twomem");
    p.extra = "(memory $second 1)".into();
    let err = loader.load(&p.bytes()).expect_err("two memories");
    match &err.kind {
        RuntimeErrorKind::Compile { message } => {
            assert!(message.contains("multiple memories"), "{message}")
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    assert_eq!(err.exit_code(), 65);
    assert_still_runs_hello(&loader);
}

#[test]
fn shared_memory_is_refused() {
    let loader = loader();
    let mut p = WatPlugin::new("shared");
    p.memory = r#"(memory (export "memory") 4 4 shared)"#.into();
    let err = loader.load(&p.bytes()).expect_err("shared memory");
    match &err.kind {
        RuntimeErrorKind::Compile { message } => {
            assert!(message.contains("shared"), "{message}")
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
    assert_still_runs_hello(&loader);
}

#[test]
fn stdout_flood_is_capped() {
    let loader = loader_with(Limits {
        max_output: 4096,
        ..Limits::default()
    });
    let mut p = WatPlugin::new("flood");
    p.imports = r#"(import "wasi_snapshot_preview1" "fd_write"
        (func $fd_write (param i32 i32 i32 i32) (result i32)))"#
        .into();
    // iovec at 200000: { buf = 1024, len = 1000 }; write it to fd 1 forever.
    p.execute_fn = Some(
        "(i32.store (i32.const 200000) (i32.const 1024)) \
         (i32.store (i32.const 200004) (i32.const 1000)) \
         (loop $l (drop (call $fd_write (i32.const 1) (i32.const 200000) (i32.const 1) (i32.const 200008))) (br $l)) \
         (unreachable)"
            .into(),
    );
    let loaded = loader.load(&p.bytes()).unwrap();
    let report = loaded.instance.run(&[]);
    let err = report.result.expect_err("flood must stop");
    assert_eq!(err.kind, limit(LimitKind::Stdout, 4096));
    assert_eq!(err.exit_code(), 125);
    assert!(
        report.stdout.len() <= 4096,
        "captured {} bytes",
        report.stdout.len()
    );
    assert_still_runs_hello(&loader);
}

#[test]
fn result_region_out_of_bounds_and_undecodable_result() {
    let loader = loader();
    let mut p = WatPlugin::new("badresult");
    p.execute_fn = Some(WatPlugin::packed(0x7FFF_FFF0, 32));
    let err = expect_run_error(&loader, &p);
    assert!(matches!(
        err.kind,
        RuntimeErrorKind::Abi(AbiViolation::OutOfBounds {
            what: "execute result",
            ..
        })
    ));

    let mut p = WatPlugin::new("junkresult");
    p.result = vec![0xc1, 0xc1];
    let err = expect_run_error(&loader, &p);
    assert!(
        matches!(
            err.kind,
            RuntimeErrorKind::Result(DecodeError::Malformed { .. })
        ),
        "{err}"
    );
}

#[test]
fn state_does_not_leak_between_calls() {
    // A global counter incremented by each execute: a fresh store per call means it
    // always starts from zero, so the result is the same every time.
    let loader = loader();
    let mut p = WatPlugin::new("counter");
    p.extra = "(global $count (mut i32) (i32.const 0))".into();
    p.execute_fn = Some(format!(
        "(global.set $count (i32.add (global.get $count) (i32.const 1))) \
         (if (i32.ne (global.get $count) (i32.const 1)) (then unreachable)) {}",
        WatPlugin::packed(RESULT_AT, p.result.len() as u32)
    ));
    let loaded = loader.load(&p.bytes()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            loaded.instance.execute(&[]).unwrap(),
            ExecuteResult::Success("ok".into())
        );
    }
}

#[test]
fn memory_and_tables_are_reset_between_calls_in_a_reused_pool_slot() {
    // The pool keeps a slot's pages resident and restores only what a call dirtied
    // (`PAGEMAP_SCAN`) or decommits it: either way the next call, which lands in the
    // same slot, must see the module's original contents. Each call checks, then
    // overwrites: a data-segment word, a zero page, a page it grows, a table entry.
    let loader = loader();
    let mut p = WatPlugin::new("dirty");
    p.extra = r#"(data (i32.const 300) "orig")
  (table $t 2 funcref)
  (elem declare func $marker)
  (func $marker)"#
        .into();
    p.execute_fn = Some(format!(
        "(if (i32.ne (i32.load (i32.const 300)) (i32.const 0x6769726f)) (then unreachable)) \
         (i32.store (i32.const 300) (i32.const 0x6c697665)) \
         (if (i32.ne (i32.load (i32.const 200000)) (i32.const 0)) (then unreachable)) \
         (i32.store (i32.const 200000) (i32.const 42)) \
         (if (i32.ne (memory.grow (i32.const 1)) (i32.const 4)) (then unreachable)) \
         (if (i32.ne (i32.load (i32.const 262144)) (i32.const 0)) (then unreachable)) \
         (i32.store (i32.const 262144) (i32.const 42)) \
         (if (i32.eqz (ref.is_null (table.get $t (i32.const 0)))) (then unreachable)) \
         (table.set $t (i32.const 0) (ref.func $marker)) {}",
        WatPlugin::packed(RESULT_AT, p.result.len() as u32)
    ));
    let loaded = loader.load(&p.bytes()).unwrap();
    for call in 0..5 {
        assert_eq!(
            loaded.instance.execute(&[]).unwrap(),
            ExecuteResult::Success("ok".into()),
            "call {call} saw what an earlier call wrote"
        );
    }
}

#[test]
fn modules_using_wasm_gc_exceptions_or_threads_are_refused_before_anything_runs() {
    for (what, field, expected) in [
        ("gc", r#"(type $point (struct (field i32)))"#, "gc"),
        (
            "exceptions",
            r#"(tag $oops) (func $throws (throw $oops))"#,
            "exception",
        ),
        (
            "threads",
            r#"(func $atomic (drop (i32.atomic.load (i32.const 0))))"#,
            "thread",
        ),
    ] {
        let mut p = WatPlugin::new("proposal");
        p.extra = field.to_owned();
        let err = loader().load(&p.bytes()).unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err.kind, warden::runtime::RuntimeErrorKind::Compile { .. }),
            "{what}: {err:?}"
        );
        assert!(
            message.starts_with("plugin not a valid WebAssembly module for warden: ")
                || message.contains("not a valid WebAssembly module for warden"),
            "{what}: {message}"
        );
        assert!(message.contains(expected), "{what}: {message}");
        assert_eq!(err.exit_code(), 65, "{what}");
    }
}
