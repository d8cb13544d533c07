//! Replays the committed fuzz seeds and crash regressions through the same
//! `warden::fuzzing` entry points the fuzz targets call, so a fixed crash stays fixed
//! without the nightly toolchain.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("fuzz/corpus").join(target),
        root.join("tests/fuzz-regressions").join(target),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() && path.extension().is_none_or(|e| e != "md") {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out
}

#[test]
fn manifest_decode_inputs() {
    let all = inputs("manifest_decode");
    assert!(all.len() >= 8, "seeds are missing");
    for (path, bytes) in all {
        warden::fuzzing::manifest_decode(&bytes);
        // The seeds named after example plugins are valid in both encodings.
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with("-named.mpk") || name.ends_with("-array.mpk") {
            warden::abi::parse_manifest(&bytes)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn memory_read_inputs() {
    for (_, bytes) in inputs("memory_read") {
        let mut size = [0u8; 4];
        let mut packed = [0u8; 8];
        let n = bytes.len().min(4);
        size[..n].copy_from_slice(&bytes[..n]);
        if bytes.len() > 4 {
            let m = (bytes.len() - 4).min(8);
            packed[..m].copy_from_slice(&bytes[4..4 + m]);
        }
        warden::fuzzing::memory_read(u32::from_le_bytes(size), i64::from_le_bytes(packed));
    }
}

#[test]
fn policy_parse_inputs() {
    let all = inputs("policy_parse");
    // The example policies are seeds (as text); so are a few structured inputs.
    assert!(all.len() >= 6, "seeds are missing");
    for (path, bytes) in all {
        warden::fuzzing::policy_parse(&bytes);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("policies-") {
            let text = String::from_utf8(bytes).unwrap();
            warden::policy::Policy::parse(&name, &text).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn grant_intersection_inputs() {
    let all = inputs("grant_intersection");
    assert!(all.len() >= 4, "seeds are missing");
    for (_, bytes) in all {
        warden::fuzzing::grant_intersection(&bytes);
    }
}

#[test]
fn net_request_inputs() {
    let all = inputs("net_request");
    assert!(all.len() >= 8, "seeds are missing");
    for (_, bytes) in all {
        warden::fuzzing::net_request(&bytes);
    }
}

#[test]
fn plugin_module_regressions() {
    // Only regressions here: seeds are raw bytes for wasm-smith, not modules.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions/plugin_module");
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            warden::fuzzing::plugin_module(&std::fs::read(path).unwrap());
        }
    }
}

#[test]
fn worker_message_inputs() {
    let all = inputs("worker_message");
    assert!(all.len() >= 5, "seeds are missing");
    for (_, bytes) in all {
        warden::fuzzing::worker_message(&bytes);
    }
}
