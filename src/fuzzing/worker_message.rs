//! `worker_message`: bytes a worker might send, through the parent's reader and
//! checks (`crate::worker::wire`), as warden reads them from a worker whose guest
//! escaped wasm.
//!
//! Input: a stream of frames (length, then msgpack), read as the parent reads its
//! channel; then the same bytes read as one frame's body.
//!
//! Invariants: nothing panics and nothing allocates past the frame bound; a report
//! that is accepted is within every limit the parent enforces: streams and the
//! result within `max_output`, at most `MAX_RUNTIME_DENIALS` denials and
//! `MAX_ACCESSES` uses, each naming a WASI call from warden's own list and, when it
//! names a preopen, one the plugin really has, with the host path warden derives
//! from its own sandbox; error texts within `MAX_WORKER_TEXT`.

use crate::abi::ExecuteResult;
use crate::limits::Limits;
use crate::runtime::observed::{MAX_ACCESSES, MAX_RUNTIME_DENIALS};
use crate::sandbox::{Sandbox, StdioGrant};
use crate::worker::wire::{self, FromWorker, MAX_WORKER_TEXT, ReportParts};
use std::sync::LazyLock;

/// The sandbox the reports are checked against: two preopens.
static SANDBOX: LazyLock<Sandbox> = LazyLock::new(|| {
    let dir = || {
        cap_std::fs::Dir::open_ambient_dir("/", cap_std::ambient_authority())
            .expect("the root directory opens")
    };
    Sandbox::for_worker(
        vec![
            (dir(), "/data".to_owned(), "/srv/app/data".into(), false),
            (dir(), "/out".to_owned(), "/srv/app/out".into(), true),
        ],
        Vec::new(),
        StdioGrant::default(),
        true,
    )
});

/// Small limits, so that the bounds are reachable.
fn limits() -> Limits {
    Limits {
        max_output: 4096,
        fuel: 1_000_000,
        ..Limits::default()
    }
}

/// See the module documentation.
pub fn worker_message(data: &[u8]) {
    let limits = limits();
    let bound = wire::report_bound(&limits);
    let mut stream = data;
    for _ in 0..16 {
        match wire::recv::<FromWorker>(&mut stream, bound) {
            Ok(message) => check(message, &limits),
            Err(_) => break,
        }
    }
    if let Ok(message) = wire::decode::<FromWorker>(data) {
        check(message, &limits);
    }
}

fn check(message: FromWorker, limits: &Limits) {
    let report = match message {
        FromWorker::Report(report) => report,
        FromWorker::Manifest(manifest) => {
            // A manifest the parent accepts came from at most `max_manifest` bytes and
            // passed the same validation as one read in warden's own process.
            if let Ok(Ok((manifest, message))) = manifest.into_manifest(limits) {
                assert!(message.len() as u64 <= limits.max_manifest);
                assert!(crate::abi::validate::is_valid_command_name(
                    &manifest.command.name
                ));
            }
            return;
        }
        _ => return,
    };
    let Ok(parts) = report.into_parts(&SANDBOX, limits) else {
        return;
    };
    let ReportParts {
        result,
        stdout,
        stderr,
        fuel_consumed,
        runtime_denials,
        accesses,
        ..
    } = parts;
    let max = limits.max_output as usize;
    assert!(
        stdout.len() <= max && stderr.len() <= max,
        "a stream past max_output"
    );
    assert!(fuel_consumed <= limits.fuel, "fuel past the limit");
    match &result {
        Ok(ExecuteResult::Success(text)) => assert!(text.len() <= max, "result past max_output"),
        Ok(ExecuteResult::Error(e)) => assert!(e.message.len() <= max, "error past max_output"),
        Ok(ExecuteResult::Effect(_)) => panic!("a result that is an effect was accepted"),
        Err(e) => {
            let text = e.to_string();
            assert!(
                text.len() <= MAX_WORKER_TEXT + 512,
                "an error text of {} bytes was accepted",
                text.len()
            );
        }
    }
    let preopens: Vec<&str> = SANDBOX.preopens().iter().map(|p| p.guest_path()).collect();
    let calls = crate::runtime::shadow::SHADOWED;
    assert!(
        runtime_denials.recorded.len() <= MAX_RUNTIME_DENIALS,
        "too many denials"
    );
    for d in &runtime_denials.recorded {
        assert!(
            calls.contains(&d.call),
            "a denial of an unknown call `{}`",
            d.call
        );
        if let Some(p) = &d.preopen {
            assert!(preopens.contains(&p.as_str()), "an unknown preopen `{p}`");
        }
    }
    assert!(accesses.recorded.len() <= MAX_ACCESSES, "too many accesses");
    for a in &accesses.recorded {
        match (&a.preopen, &a.host_path) {
            (Some(p), Some(host)) => {
                let preopen = SANDBOX
                    .preopens()
                    .iter()
                    .find(|q| q.guest_path() == p)
                    .unwrap_or_else(|| panic!("an unknown preopen `{p}`"));
                assert!(
                    std::path::Path::new(host).starts_with(preopen.host_path())
                        || a.path.contains(".."),
                    "host path `{host}` is not under its preopen"
                );
            }
            (None, None) => {}
            other => panic!("a preopen without its host path, or the reverse: {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::worker::wire::{
        WireAccess, WireDeny, WireError, WireKind, WireManifest, WireReport,
    };

    /// Well-formed messages of every kind (the committed seeds are these).
    pub(crate) fn seeds() -> Vec<(&'static str, Vec<u8>)> {
        let report = |result, denials, accesses| {
            wire::encode(&FromWorker::Report(Box::new(WireReport {
                result,
                stdout: b"hello\n".to_vec(),
                stderr: Vec::new(),
                fuel_consumed: 1234,
                output_bytes: 12,
                denials,
                denials_dropped: 0,
                accesses,
                accesses_dropped: 0,
            })))
            .unwrap()
        };
        let manifest = crate::abi::PluginManifest {
            api_version: crate::abi::API_VERSION,
            command: crate::abi::CommandSpec {
                name: "hello".into(),
                about: "says hello".into(),
                version: Some("1.0.0".into()),
                author: None,
                args: Vec::new(),
                subcommands: Vec::new(),
            },
            capabilities: crate::abi::Capabilities::default(),
        };
        let answer = |result| wire::encode(&FromWorker::Manifest(WireManifest { result })).unwrap();
        vec![
            (
                "manifest",
                answer(Ok(serde_bytes::ByteBuf::from(
                    rmp_serde::to_vec_named(&manifest).unwrap(),
                ))),
            ),
            (
                "manifest-trap",
                answer(Err(WireError {
                    call: Some(crate::runtime::GuestCall::Manifest),
                    kind: WireKind::Trap {
                        message: "unreachable".into(),
                    },
                })),
            ),
            (
                "ready",
                wire::encode(&FromWorker::Ready {
                    confinement: crate::confinement::Confinement::in_process(),
                    error: None,
                })
                .unwrap(),
            ),
            (
                "effect",
                wire::encode(&FromWorker::Effect {
                    effect: crate::abi::Effect::HttpGet {
                        id: 1,
                        url: "http://127.0.0.1:8000/x".into(),
                        headers: vec![("accept".into(), "*/*".into())],
                    },
                })
                .unwrap(),
            ),
            (
                "report-success",
                report(
                    Ok(ExecuteResult::Success("hi".into())),
                    Vec::new(),
                    Vec::new(),
                ),
            ),
            (
                "report-denials",
                report(
                    Err(WireError {
                        call: Some(crate::runtime::GuestCall::Execute),
                        kind: WireKind::Trap {
                            message: "unreachable".into(),
                        },
                    }),
                    vec![WireDeny {
                        call: "path_open".into(),
                        path: "../secret".into(),
                        target: None,
                        preopen: Some(0),
                        errno: 76,
                        symlink_target: false,
                    }],
                    vec![WireAccess {
                        call: "path_open".into(),
                        path: "notes.txt".into(),
                        preopen: Some(1),
                        write: true,
                    }],
                ),
            ),
            (
                "report-limit",
                report(
                    Err(WireError {
                        call: None,
                        kind: WireKind::Limit {
                            limit: crate::limits::LimitKind::Fuel,
                            value: 10,
                        },
                    }),
                    Vec::new(),
                    Vec::new(),
                ),
            ),
        ]
    }

    #[test]
    fn the_seeds_are_accepted_where_honest() {
        for (name, frame) in seeds() {
            let message: FromWorker = wire::recv(&frame[..], 1 << 20).unwrap();
            if let FromWorker::Manifest(answer) = message {
                let manifest = answer.into_manifest(&limits()).unwrap();
                match name {
                    "manifest" => assert_eq!(manifest.unwrap().0.command.name, "hello"),
                    _ => assert!(matches!(
                        manifest.unwrap_err().kind,
                        crate::runtime::RuntimeErrorKind::Trap { .. }
                    )),
                }
            } else if let FromWorker::Report(report) = message {
                let parts = report.into_parts(&SANDBOX, &limits()).unwrap();
                if name == "report-denials" {
                    assert_eq!(
                        parts.runtime_denials.recorded[0].preopen.as_deref(),
                        Some("/data")
                    );
                    assert_eq!(
                        parts.accesses.recorded[0].host_path.as_deref(),
                        Some("/srv/app/out/notes.txt")
                    );
                }
            }
            worker_message(&frame);
        }
    }

    #[test]
    fn a_manifest_past_max_manifest_is_the_worker_misbehaving() {
        let limits = Limits {
            max_manifest: 16,
            ..limits()
        };
        let answer = WireManifest {
            result: Ok(serde_bytes::ByteBuf::from(vec![0x80; 17])),
        };
        let refused = answer.into_manifest(&limits).unwrap_err();
        assert!(refused.0.contains("past max_manifest 16"), "{refused}");
    }

    #[test]
    fn hostile_reports_are_refused() {
        let hostile = |denial: WireDeny| WireReport {
            result: Ok(ExecuteResult::Success(String::new())),
            stdout: Vec::new(),
            stderr: Vec::new(),
            fuel_consumed: 0,
            output_bytes: 0,
            denials: vec![denial],
            denials_dropped: 0,
            accesses: Vec::new(),
            accesses_dropped: 0,
        };
        let deny = || WireDeny {
            call: "path_open".into(),
            path: "x".into(),
            target: None,
            preopen: None,
            errno: 63,
            symlink_target: false,
        };
        let cases = [
            (
                WireDeny {
                    call: "execve".into(),
                    ..deny()
                },
                "an unknown WASI call `execve`",
            ),
            (
                // An effect is the parent's to record: never a refused WASI call.
                WireDeny {
                    call: "http_post".into(),
                    ..deny()
                },
                "an unknown WASI call `http_post`",
            ),
            (
                WireDeny {
                    preopen: Some(7),
                    ..deny()
                },
                "preopen 7, which the plugin does not have",
            ),
            (
                WireDeny { errno: 0, ..deny() },
                "a runtime denial with errno 0",
            ),
            (
                WireDeny {
                    path: "a".repeat(8000),
                    ..deny()
                },
                "a denied path of 8000 bytes",
            ),
        ];
        for (denial, expected) in cases {
            let err = hostile(denial)
                .into_parts(&SANDBOX, &limits())
                .err()
                .unwrap();
            assert!(err.to_string().contains(expected), "{err} / {expected}");
        }
        let big = WireReport {
            stdout: vec![b'x'; 4097],
            ..hostile(deny())
        };
        let err = big.into_parts(&SANDBOX, &limits()).err().unwrap();
        assert!(err.to_string().contains("4097 bytes of stdout"), "{err}");
        // A frame that claims more than the bound is refused before it is read.
        let mut frame = u32::MAX.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0; 16]);
        let err = wire::recv::<FromWorker>(&frame[..], 1 << 20).err().unwrap();
        assert!(
            err.to_string().contains("a message of 4294967295 bytes"),
            "{err}"
        );
        // Trailing bytes after a message are refused.
        let mut ready = wire::encode(&FromWorker::Ready {
            confinement: crate::confinement::Confinement::in_process(),
            error: None,
        })
        .unwrap();
        ready.push(0xc0);
        let len = u32::try_from(ready.len() - 4).unwrap();
        ready[..4].copy_from_slice(&len.to_le_bytes());
        let err = wire::recv::<FromWorker>(&ready[..], 1 << 20).err().unwrap();
        assert!(err.to_string().contains("trailing"), "{err}");
    }

    /// Writes the seeds into `fuzz/corpus/worker_message` (run by hand:
    /// `cargo test --features fuzzing --lib write_worker_message_seeds -- --ignored`).
    #[test]
    #[ignore = "writes the committed fuzz seeds"]
    fn write_worker_message_seeds() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/worker_message");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, frame) in seeds() {
            std::fs::write(dir.join(name), frame).unwrap();
        }
    }
}
