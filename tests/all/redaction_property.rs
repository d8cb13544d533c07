//! The redaction property over every record kind: for a generated granted value of 4
//! to 64 bytes, a plugin that puts it into every string warden records about it gets
//! it, or a form of it, into no line of the audit log, of `warden run --json` and of
//! `warden run -v`.
//!
//! The plugin (one per case, hand-written WAT through `warden run`) declares a path
//! made of the value (a `deny` record, `plugin_loaded`'s `declared`), carries it in
//! its version (the `plugin` object of every record, cut there at 64 bytes), opens
//! `../VALUE` and a 4 KiB path the cut splits it in (`runtime_deny`), links to
//! `../VALUE` (a `runtime_deny` target), creates a file named after it and opens it by
//! a 1 KiB path (audit mode: `access` records, also cut), asks for requests with it in
//! the path, the query, the host, a header name (dropped, and invalid), a POST body and
//! content type, and a URL the 2,048-byte cap cuts it in, sleeps, and returns a result
//! whose decode error quotes it (`run_end.error`). Every other case runs in audit mode.
//!
//! Values are drawn from characters that URLs, file names and headers carry in
//! different ways (spaces, quotes are left out only where JSON itself would hide
//! them), always with one of `!`, `^`, `|`, which warden's own text never has: a value
//! found in the output came from the plugin. The oracle is `crate::redaction::leak`:
//! every `%XX` decoded, ASCII case folded, JSON strings read, and every prefix of 8
//! bytes or more before a `...[cut]` mark.

use crate::network::{Server, hello, http};
use crate::redaction::{Call, Probe, Site, get_with, leak, sleep, unknown_variant};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use warden::abi::{Capabilities, Effect, ExecuteResult, PathPattern};

/// Characters of a value (besides one of [`RARE`]).
const PLAIN: &[char] = &[
    'a', 'b', 'c', 'k', 'q', 'x', 'z', 'A', 'B', 'K', 'Q', 'X', 'Z', '0', '1', '7', '9', '-', '_',
    '~', ' ', '$', '&', '(', ')', '+', ',', ';', '=', '\'', '*', 'é', '☃',
];

/// One of these is in every value.
const RARE: &[char] = &['!', '^', '|'];

#[derive(Debug, Clone)]
struct Case {
    value: String,
    audit: bool,
    /// How many bytes of the value a cap leaves before its cut.
    straddle: usize,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(proptest::sample::select(PLAIN), 3..=63),
        proptest::sample::select(RARE),
        any::<proptest::sample::Index>(),
        any::<bool>(),
        8usize..=63,
    )
        .prop_map(|(chars, rare, at, audit, straddle)| {
            let mut value = String::new();
            for c in chars {
                if value.len() + c.len_utf8() > 63 {
                    break;
                }
                value.push(c);
            }
            let mut at = at.index(value.chars().count() + 1);
            let byte = value.char_indices().nth(at).map_or(value.len(), |(i, _)| i);
            value.insert(byte, rare);
            // A URL parser drops spaces at the ends of a URL, and with them those of
            // a value that ends one: not a form the redactor is asked to find.
            if value.starts_with(' ') {
                value.replace_range(..1, "x");
            }
            if value.ends_with(' ') {
                value.replace_range(value.len() - 1.., "x");
            }
            at = straddle.min(value.len() - 1);
            Case {
                value,
                audit,
                straddle: at,
            }
        })
}

/// The plugin of one case (see the module documentation).
fn leaky(v: &str, straddle: usize, port: u16) -> Probe {
    let mut p = Probe::new(
        "leaky",
        Capabilities {
            env_read: vec!["APP_KEY".into()],
            fs_read: vec![PathPattern {
                pattern: format!("./{v}"),
                recursive: false,
            }],
            fs_write: vec![PathPattern {
                pattern: "./out".into(),
                recursive: true,
            }],
            net: vec![http("127.0.0.1", port)],
            ..Capabilities::default()
        },
    );
    p.version = format!("{}{v}", "v".repeat(64 - straddle));
    let dots = "./".repeat((1024 - straddle) / 2);
    p.calls = vec![
        Call::Open {
            path: format!("../{v}").into_bytes(),
            create: false,
        },
        Call::Open {
            path: format!("../{}{v}", "x".repeat(4096 - 3 - straddle)).into_bytes(),
            create: false,
        },
        Call::Symlink {
            target: format!("../{v}").into_bytes(),
            link: b"lnk".to_vec(),
        },
        Call::Open {
            path: v.as_bytes().to_vec(),
            create: true,
        },
        Call::Open {
            path: format!("{dots}{v}").into_bytes(),
            create: false,
        },
    ];
    let base = format!("http://127.0.0.1:{port}/");
    p.then(&get_with(
        &format!("{base}{v}?q={v}"),
        &[(&format!("proxy-{v}"), "1")],
    ))
    .then(&get_with(
        &format!("{base}{}{v}", "a".repeat(2048 - base.len() - straddle)),
        &[],
    ))
    .then(&get_with(&format!("http://{v}.example.test/"), &[]))
    .then(&ExecuteResult::Effect(Effect::HttpPost {
        id: 3,
        url: format!("http://127.0.0.1:1/{v}"),
        body: v.to_owned(),
        content_type: Some(v.to_owned()),
        headers: vec![],
    }))
    .then(&get_with(&format!("{base}ok"), &[(&format!("x {v}"), "1")]))
    .then(&sleep(0))
    .then_bytes(unknown_variant(v))
}

fn check(server: &Server, case: &Case) -> Result<(), TestCaseError> {
    let v = case.value.as_str();
    let port = server.port();
    let probe = leaky(v, case.straddle, port);
    let policy = format!(
        "version = 1\n{}[plugins.leaky]\nenv.allow = [\"APP_KEY\"]\nfs.write = [\"./out\"]\nnet.allow = [\"http://127.0.0.1:{port}\"]\n",
        if case.audit { "mode = \"audit\"\n" } else { "" }
    );
    let site = Site::new(&policy, &probe.bytes());
    std::fs::create_dir(site.path("out")).unwrap();
    let env = [("APP_KEY", v)];
    let verbose = site.warden_run(&["-v"], &env);
    let json = site.warden_run(&["--json"], &env);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let log = std::fs::read_to_string(site.log()).unwrap();
    let outputs = [
        ("the log", log.clone()),
        ("-v stdout", text(&verbose.stdout)),
        ("-v stderr", text(&verbose.stderr)),
        ("--json stdout", text(&json.stdout)),
        ("--json stderr", text(&json.stderr)),
    ];
    for (what, out) in &outputs {
        if let Some(place) = leak(out, v) {
            return Err(TestCaseError::fail(format!(
                "{what} shows the value: {place}"
            )));
        }
    }
    // Not vacuous: both runs ran to the end, and every kind of record that can carry
    // the value did carry it (redacted).
    prop_assert_eq!(verbose.status.code(), Some(65), "{}", text(&verbose.stderr));
    prop_assert_eq!(json.status.code(), Some(65), "{}", text(&json.stderr));
    let mut kinds: Vec<&str> = vec!["plugin_loaded", "deny", "effect", "run_end"];
    kinds.push(if case.audit { "access" } else { "runtime_deny" });
    for kind in kinds {
        let redacted = log.lines().any(|l| {
            l.contains(&format!("\"event\":\"{kind}\"")) && l.contains("<redacted:APP_KEY>")
        });
        prop_assert!(redacted, "no {} record carries the value: {}", kind, log);
    }
    prop_assert!(text(&verbose.stderr).contains("<redacted:APP_KEY>"));
    prop_assert!(text(&json.stdout).contains("<redacted:APP_KEY>"));
    site.assert_log_complete();
    Ok(())
}

#[test]
fn no_form_of_a_granted_value_reaches_the_log_json_or_verbose_output() {
    let server = Server::start(0, None, hello);
    let mut runner = TestRunner::new(Config {
        cases: 32,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| check(&server, &case));
    if let Err(e) = result {
        panic!("{e}");
    }
}
