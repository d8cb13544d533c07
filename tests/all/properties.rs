//! Properties of the intersection over generated policies, declarations and directory
//! trees (with symlinks, loops and missing paths): every grant is within the
//! declaration and within the policy, and touches no denied path; the sandbox built
//! from the decisions holds nothing else.
//!
//! The oracle here is independent of warden's code: paths are resolved with
//! `std::fs::canonicalize` and a lexical normalizer written here, and env patterns with
//! a small wildcard matcher written here.

use proptest::prelude::*;
use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use warden::abi::{Capabilities, PathPattern, StdioCapability};
use warden::fuzzing::oracle::{canonical, lexical, wildcard};
use warden::grant::{Capability, Decisions, Host, Outcome, decide};
use warden::policy::Policy;
use warden::sandbox::Sandbox;

/// Paths policies and declarations are drawn from (`~` is the tree's root too).
const PATHS: &[&str] = &[
    "./a",
    "./a/b",
    "./a/b/c",
    "./d",
    "./d/e",
    "./f",
    "./l1",
    "./a/lnk",
    "./loop",
    "./missing",
    "./a/../d",
    "./d/up/b",
    "./a/b/c/../..",
    "~",
    "~/a",
    ".",
    "..",
];

const ENV_PATTERNS: &[&str] = &[
    "*",
    "APP_*",
    "HOME",
    "*SECRET*",
    "*_TOKEN",
    "A*B",
    "APP_SECRET",
    "*N*",
];

const ENV_NAMES: &[&str] = &[
    "HOME",
    "APP_NAME",
    "APP_SECRET",
    "GITHUB_TOKEN",
    "AXB",
    "AB",
    "PATH",
];

const STREAMS: &[&str] = &["stdin", "stdout", "stderr"];

/// Symlinks the tree may have: (link, target).
const LINKS: &[(&str, &str)] = &[
    ("l1", "a/b"),
    ("a/lnk", "../d"),
    ("loop", "loop"),
    ("d/up", "../a"),
    ("f", "d/e"),
];

fn subset<T: Clone + std::fmt::Debug + 'static>(
    items: &'static [T],
) -> impl Strategy<Value = Vec<T>> {
    proptest::sample::subsequence(items.to_vec(), 0..=3.min(items.len()))
}

#[derive(Debug, Clone)]
struct Lists {
    read: Vec<&'static str>,
    write: Vec<&'static str>,
    deny: Vec<&'static str>,
    env_allow: Vec<&'static str>,
    env_deny: Vec<&'static str>,
    stdio: Option<Vec<&'static str>>,
}

fn lists() -> impl Strategy<Value = Lists> {
    (
        subset(PATHS),
        subset(PATHS),
        subset(PATHS),
        subset(ENV_PATTERNS),
        subset(ENV_PATTERNS),
        proptest::option::of(subset(STREAMS)),
    )
        .prop_map(|(read, write, deny, env_allow, env_deny, stdio)| Lists {
            read,
            write,
            deny,
            env_allow,
            env_deny,
            stdio,
        })
}

#[derive(Debug, Clone)]
struct Case {
    links: Vec<bool>,
    defaults: Lists,
    own: Option<Lists>,
    fs_read: Vec<(&'static str, bool)>,
    fs_write: Vec<(&'static str, bool)>,
    env_read: Vec<&'static str>,
    stdio: (bool, bool, bool),
    env: Vec<&'static str>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(any::<bool>(), LINKS.len()),
        lists(),
        proptest::option::of(lists()),
        proptest::collection::vec((proptest::sample::select(PATHS), any::<bool>()), 0..4),
        proptest::collection::vec((proptest::sample::select(PATHS), any::<bool>()), 0..4),
        subset(ENV_PATTERNS),
        any::<(bool, bool, bool)>(),
        subset(ENV_NAMES),
    )
        .prop_map(
            |(links, defaults, own, fs_read, fs_write, env_read, stdio, env)| Case {
                links,
                defaults,
                own,
                fs_read,
                fs_write,
                env_read,
                stdio,
                env,
            },
        )
}

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(", "))
}

fn table(header: &str, l: &Lists) -> String {
    let mut t = format!(
        "[{header}]\nfs.read = {}\nfs.write = {}\nfs.deny = {}\nenv.allow = {}\nenv.deny = {}\n",
        toml_list(&l.read),
        toml_list(&l.write),
        toml_list(&l.deny),
        toml_list(&l.env_allow),
        toml_list(&l.env_deny)
    );
    if let Some(s) = &l.stdio {
        t.push_str(&format!("stdio = {}\n", toml_list(s)));
    }
    t
}

fn build_tree(links: &[bool]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    for d in ["a/b/c", "d/e"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for (on, (link, target)) in links.iter().zip(LINKS) {
        if *on {
            symlink(target, root.join(link)).unwrap();
        }
    }
    if !root.join("f").exists() {
        std::fs::write(root.join("f"), "a file, not a directory").unwrap();
    }
    (dir, root)
}

/// Checks every invariant of `decisions` for `case` on the tree `host` works in.
fn check(case: &Case, host: &Host, policy: &Policy, decisions: &Decisions) {
    let declared = case.fs_read.len()
        + case.fs_write.len()
        + case.env_read.len()
        + [case.stdio.0, case.stdio.1, case.stdio.2]
            .iter()
            .filter(|s| **s)
            .count();
    assert_eq!(decisions.items().len(), declared, "one decision per item");
    let lists: Vec<&Lists> = std::iter::once(&case.defaults)
        .chain(case.own.as_ref())
        .collect();
    let deny: Vec<&str> = lists.iter().flat_map(|l| l.deny.iter().copied()).collect();
    let env_allow: Vec<&str> = lists
        .iter()
        .flat_map(|l| l.env_allow.iter().copied())
        .collect();
    let env_deny: Vec<&str> = lists
        .iter()
        .flat_map(|l| l.env_deny.iter().copied())
        .collect();
    let stdio = case
        .own
        .as_ref()
        .and_then(|o| o.stdio.clone())
        .or_else(|| case.defaults.stdio.clone())
        .unwrap_or_default();
    let mut granted_dirs: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
    let mut granted_names: BTreeSet<String> = BTreeSet::new();

    for d in decisions.items() {
        assert!(!d.reason().is_empty());
        assert!(
            d.rule() == "none"
                || policy_has_key(policy, d.rule())
                || (d.rule() == warden::grant::PROTECTED_RULE && d.outcome() == Outcome::Denied),
            "{d:?}"
        );
        if !d.is_in_effect() {
            assert_ne!(d.outcome(), Outcome::Granted, "{d:?}");
            continue;
        }
        assert_eq!(d.outcome(), Outcome::Granted, "enforce mode: {d:?}");
        match d.capability() {
            Capability::FsRead | Capability::FsWrite => {
                let write = d.capability() == Capability::FsWrite;
                let granted = PathBuf::from(d.host_path().unwrap());
                // Within the declaration: exactly the declared directory, resolved.
                let declared = canonical(d.request(), host).expect("a grant exists");
                assert_eq!(granted, declared, "{d:?}");
                assert!(granted.is_dir());
                // Within the policy: inside an allow entry of the right kind.
                let allows: Vec<&str> = lists
                    .iter()
                    .flat_map(|l| {
                        let mut v = l.write.clone();
                        if !write {
                            v.extend(&l.read);
                        }
                        v
                    })
                    .collect();
                assert!(
                    allows
                        .iter()
                        .filter_map(|a| canonical(a, host))
                        .any(|a| granted.starts_with(&a)),
                    "{d:?} is inside no allow entry of {allows:?}"
                );
                // Touches no denied path, in either form.
                for x in &deny {
                    for form in [lexical(x, host), canonical(x, host)].into_iter().flatten() {
                        assert!(
                            !granted.starts_with(&form) && !form.starts_with(&granted),
                            "{d:?} touches denied `{x}` ({})",
                            form.display()
                        );
                    }
                }
                granted_dirs.insert((granted, write));
            }
            Capability::Env => {
                let names = d.names().unwrap();
                let expected: Vec<String> = case
                    .env
                    .iter()
                    .filter(|n| wildcard(d.request(), n))
                    .filter(|n| !env_deny.iter().any(|x| wildcard(x, n)))
                    .map(|n| n.to_string())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                // Rule 5: every host variable the declared pattern matches that no
                // deny pattern matches, no fewer; each one withheld names its rule.
                assert_eq!(names, &expected[..], "{d:?}");
                for w in d.withheld() {
                    assert!(wildcard(d.request(), &w.name), "{d:?}");
                    assert!(env_deny.iter().any(|x| wildcard(x, &w.name)), "{d:?}");
                }
                for n in names {
                    assert!(env_allow.iter().any(|a| wildcard(a, n)), "{d:?}");
                    assert!(!env_deny.iter().any(|x| wildcard(x, n)), "{d:?}");
                    granted_names.insert(n.clone());
                }
            }
            Capability::Stdio => {
                assert!(stdio.contains(&d.request()), "{d:?} not in {stdio:?}");
            }
            Capability::Net => panic!("network granted: {d:?}"),
        }
    }

    let sandbox = Sandbox::from_decisions(decisions);
    for p in sandbox.preopens() {
        let opened = (p.host_path().to_path_buf(), p.writable());
        assert!(
            granted_dirs.contains(&opened),
            "preopen {opened:?} not granted"
        );
    }
    for name in sandbox.env_names() {
        assert!(granted_names.contains(name), "{name} not granted");
    }
    let s = sandbox.stdio();
    for (on, stream) in [
        (s.stdin, "stdin"),
        (s.stdout, "stdout"),
        (s.stderr, "stderr"),
    ] {
        assert!(!on || stdio.contains(&stream), "{stream} not granted");
    }
}

/// Whether `key` names an entry of `policy`.
fn policy_has_key(policy: &Policy, key: &str) -> bool {
    let rules = std::iter::once(policy.defaults()).chain(policy.plugins().map(|t| &t.rules));
    for r in rules {
        let lists = [
            &r.fs_read,
            &r.fs_write,
            &r.fs_deny,
            &r.env_allow,
            &r.env_deny,
        ];
        if lists.iter().any(|l| l.iter().any(|e| e.key == key))
            || r.stdio
                .as_ref()
                .is_some_and(|l| l.iter().any(|e| e.key == key))
        {
            return true;
        }
    }
    false
}

fn run_case(case: &Case) {
    let (_dir, root) = build_tree(&case.links);
    let mut text = format!("version = 1\n{}", table("defaults", &case.defaults));
    if let Some(own) = &case.own {
        text.push_str(&table("plugins.probe", own));
    }
    let policy = Policy::parse("generated.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let pattern = |(p, r): &(&str, bool)| PathPattern {
        pattern: p.to_string(),
        recursive: *r,
    };
    let caps = Capabilities {
        fs_read: case.fs_read.iter().map(pattern).collect(),
        fs_write: case.fs_write.iter().map(pattern).collect(),
        env_read: case.env_read.iter().map(|s| s.to_string()).collect(),
        net: vec![],
        stdio: StdioCapability {
            stdin: case.stdio.0,
            stdout: case.stdio.1,
            stderr: case.stdio.2,
        },
    };
    let host = Host {
        workdir: root.clone(),
        home: Some(root.clone()),
        env: case
            .env
            .iter()
            .map(|n| (n.to_string(), format!("value of {n}")))
            .collect(),
        audit_log: None,
    };
    let decisions = decide(&caps, "probe", [7; 32], &policy, &host);
    assert!(decisions.refusal().is_none());
    check(case, &host, &policy, &decisions);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_grant_is_within_declaration_and_policy_and_touches_no_denied_path(case in case()) {
        run_case(&case);
    }
}
