//! `grant_intersection`: declared capabilities against a policy over a real directory
//! tree, through [`decide`] and [`Sandbox::from_decisions`], the calls `warden run`
//! makes before it starts a plugin.
//!
//! The input chooses (with [`Source`]) a policy (mode, `on_denied`, `require_digest`,
//! `[defaults]` and up to two plugin tables, one of them maybe pinned), the declared
//! capabilities of a plugin named `probe`, and the host: working directory, home (or
//! none) and environment. Paths come from a small alphabet over a tree built once per
//! process in a temporary directory ([`tree`]): nested directories, a regular file, a
//! symlink inside, one pointing out of the working directory, an absolute one, a
//! dangling one, a self loop and a two-link loop, joined with `.`, `..` and trailing
//! slashes.
//!
//! The oracle is independent of warden's resolution code (it is the one of
//! `tests/all/properties.rs`): paths are made lexical here and resolved with
//! `std::fs::canonicalize`, env patterns are matched with a wildcard matcher written
//! here. Every item granted is within the declaration (exactly the declared directory,
//! resolved; exactly the host variables the declared pattern matches), within the
//! policy (inside an allow entry of the right kind of `[defaults]` or of the table that
//! applies; names an allow pattern covers), and touches no denied path (neither equal
//! to, inside, nor containing the lexical or canonical form of a deny entry) and no
//! denied name. The sandbox built from the decisions holds nothing else.
//!
//! Size: the generator of policies, declarations and hosts and the independent oracle
//! for each capability are one target; split, each half would be read only with the
//! other.

use super::oracle::{canonical, lexical, wildcard};
use super::source::Source;
use crate::abi::{Capabilities, NetPattern, NetProtocol, PathPattern, StdioCapability};
use crate::grant::{Capability, Decisions, GrantKind, Host, Outcome, Refusal, decide};
use crate::policy::{Mode, OnDenied, Policy};
use crate::sandbox::Sandbox;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The plugin every case decides for, and the digest of its file.
const PLUGIN: &str = "probe";
const DIGEST: [u8; 32] = [7; 32];

/// The directory tree of one process.
struct Tree {
    root: PathBuf,
    workdir: PathBuf,
    home: PathBuf,
}

/// Names of tree directories start with this, then the process id.
const TREE_PREFIX: &str = "warden-fuzz-tree-";

/// Directories of the tree, under its root.
const DIRS: &[&str] = &["w/a/b/c", "w/c", "w/d/e", "e/x", "h/x", "h/.ssh"];

/// Symlinks of the tree: (link, target); `$ROOT` is the tree's root.
const LINKS: &[(&str, &str)] = &[
    ("w/l1", "a/b"),
    ("w/out", "../e"),
    ("w/abs", "$ROOT/h"),
    ("w/loop", "loop"),
    ("w/loop1", "loop2"),
    ("w/loop2", "loop1"),
    ("w/dangling", "missing-target"),
    ("w/a/up", ".."),
    ("w/d/lnk", "../a"),
    ("h/w", "../w"),
    ("e/back", "../w/d"),
];

/// The tree, built on first use: `root/{w, e, h}`, with `w` the usual working
/// directory and `h` the usual home. Trees left by processes that are gone are removed
/// first (a fuzzer exits without running destructors).
fn tree() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_stale_trees(&tmp);
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).expect("random bytes for the tree's name");
        let dir = tmp.join(format!(
            "{TREE_PREFIX}{}-{}",
            std::process::id(),
            hex::encode(random)
        ));
        crate::files::create_dirs(&dir, 0o755).expect("create the tree's directory");
        let root = std::fs::canonicalize(&dir).expect("canonicalize the tree");
        for d in DIRS {
            crate::files::create_dirs(&root.join(d), 0o755).expect("create a tree directory");
        }
        crate::files::create_new(&root.join("w/file"), b"a file, not a directory", 0o644)
            .expect("a file");
        let root_text = root.to_str().expect("a UTF-8 temporary directory");
        for (link, target) in LINKS {
            // The one place in the library that makes symlinks: the fuzzer's own tree,
            // in a fresh folder it just created.
            #[expect(
                clippy::disallowed_methods,
                reason = "a fuzzing fixture's symlinks, in the fixture's own fresh folder"
            )]
            std::os::unix::fs::symlink(target.replace("$ROOT", root_text), root.join(link))
                .expect("create a tree symlink");
        }
        Tree {
            workdir: root.join("w"),
            home: root.join("h"),
            root,
        }
    })
}

fn remove_stale_trees(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TREE_PREFIX)) else {
            continue;
        };
        let Some((pid, _)) = rest.split_once('-') else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            // Does not follow symlinks; another process may be removing it too.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// How a path starts; `$ROOT` is the tree's root.
const BASES: &[&str] = &[
    "./",
    "",
    "~/",
    "../",
    "$ROOT/",
    "~",
    ".",
    "/tmp/",
    "/",
    "$ROOT/e/",
    "$ROOT/w/./",
];
const SEGMENTS: &[&str] = &[
    "a", "b", "c", "d", "e", "x", "..", ".", "l1", "out", "abs", "loop", "loop1", "dangling",
    "file", "up", "lnk", "missing", "w", "h", ".ssh", "back",
];
/// Declared paths no policy entry could be.
const ODD_DECLARED: &[&str] = &[
    "",
    "~nobody/x",
    "a\0b",
    "./a//b/",
    "~/",
    "//tmp",
    "./a/b/c/../../../../..",
    "./l1/..",
    "./out/../d",
];
const ENV_CHUNKS: &[&str] = &[
    "APP_", "*", "HOME", "A", "B", "SECRET", "_TOKEN", "N", "X", "_",
];
/// Declared env patterns no policy entry could be.
const ODD_PATTERNS: &[&str] = &["", "A=B", "A\nB", "**", "\u{1}", "*\u{7f}"];
/// Host variables the environment may have (some never passable).
const HOST_NAMES: &[&str] = &[
    "HOME",
    "APP_NAME",
    "APP_SECRET",
    "GITHUB_TOKEN",
    "AXB",
    "AB",
    "PATH",
    "A*B",
    "A\nB",
    "X",
    "APP_",
    "N",
];
const STREAMS: [&str; 3] = ["stdin", "stdout", "stderr"];

fn path(s: &mut Source<'_>, root: &str) -> String {
    let mut p = s.pick(BASES).replace("$ROOT", root);
    for _ in 0..s.below(4) {
        if !p.is_empty() && !p.ends_with('/') {
            p.push('/');
        }
        p.push_str(s.pick(SEGMENTS));
    }
    if s.rarely(8) {
        p.push('/');
    }
    p
}

fn policy_path(s: &mut Source<'_>, root: &str) -> String {
    let p = path(s, root);
    if p.is_empty() { ".".to_owned() } else { p }
}

fn pattern(s: &mut Source<'_>) -> String {
    (0..=s.below(3)).map(|_| s.pick(ENV_CHUNKS)).collect()
}

/// The lists of one policy table.
#[derive(Debug, Default)]
struct Lists {
    read: Vec<String>,
    write: Vec<String>,
    deny: Vec<String>,
    env_allow: Vec<String>,
    env_deny: Vec<String>,
    stdio: Option<Vec<&'static str>>,
}

fn lists(s: &mut Source<'_>, root: &str) -> Lists {
    let paths = |s: &mut Source<'_>, most: usize| -> Vec<String> {
        let n = s.below(most + 1);
        (0..n).map(|_| policy_path(s, root)).collect()
    };
    let read = paths(s, 3);
    let write = paths(s, 2);
    let deny = paths(s, 2);
    let env_allow = (0..s.below(4)).map(|_| pattern(s)).collect();
    let env_deny = (0..s.below(3)).map(|_| pattern(s)).collect();
    let bits = s.byte();
    let stdio = (bits & 8 != 0).then(|| {
        STREAMS
            .iter()
            .enumerate()
            .filter(|(i, _)| bits & (1u8 << *i) != 0)
            .map(|(_, n)| *n)
            .collect()
    });
    Lists {
        read,
        write,
        deny,
        env_allow,
        env_deny,
        stdio,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pin {
    None,
    Matching,
    Other,
}

#[derive(Debug)]
struct PluginLists {
    name: &'static str,
    pin: Pin,
    lists: Lists,
}

/// One generated case.
#[derive(Debug)]
struct Case {
    mode: Mode,
    on_denied: OnDenied,
    require_digest: bool,
    defaults: Lists,
    tables: Vec<PluginLists>,
    capabilities: Capabilities,
    host: Host,
}

fn case(data: &[u8], tree: &Tree) -> Case {
    let root = tree.root.to_str().expect("a UTF-8 tree");
    let mut s = Source::new(data);
    let s = &mut s;
    let flags = s.byte();
    let mode = if flags & 1 != 0 {
        Mode::Audit
    } else {
        Mode::Enforce
    };
    let on_denied = if flags & 2 != 0 {
        OnDenied::Refuse
    } else {
        OnDenied::Run
    };
    let require_digest = flags & 4 != 0;
    let workdir = match s.below(4) {
        0 | 1 => tree.workdir.clone(),
        2 => tree.workdir.join("a"),
        _ => tree.root.clone(),
    };
    let home = match s.below(4) {
        0 | 1 => Some(tree.home.clone()),
        2 => Some(tree.workdir.clone()),
        _ => None,
    };
    let names = u16::from_le_bytes([s.byte(), s.byte()]);
    let env = HOST_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| names & (1u16 << *i) != 0)
        .map(|(_, n)| (n.to_string(), format!("value of {n}")))
        .collect();
    let defaults = lists(s, root);
    let mut tables = Vec::new();
    for name in [PLUGIN, "other"] {
        if s.flag() {
            let pin = s.pick(&[Pin::None, Pin::None, Pin::Matching, Pin::Other]);
            tables.push(PluginLists {
                name,
                pin,
                lists: lists(s, root),
            });
        }
    }
    let declared = |s: &mut Source<'_>| -> Vec<PathPattern> {
        (0..s.below(4))
            .map(|_| PathPattern {
                pattern: if s.rarely(10) {
                    s.pick(ODD_DECLARED).to_owned()
                } else {
                    path(s, root)
                },
                recursive: s.flag(),
            })
            .collect()
    };
    let fs_read = declared(s);
    let fs_write = declared(s);
    let env_read = (0..s.below(4))
        .map(|_| {
            if s.rarely(10) {
                s.pick(ODD_PATTERNS).to_owned()
            } else {
                pattern(s)
            }
        })
        .collect();
    let bits = s.byte();
    let net = if bits & 8 != 0 {
        vec![NetPattern {
            host: "example.com".into(),
            port: Some(443),
            protocol: NetProtocol::Https,
        }]
    } else {
        Vec::new()
    };
    Case {
        mode,
        on_denied,
        require_digest,
        defaults,
        tables,
        capabilities: Capabilities {
            fs_read,
            fs_write,
            env_read,
            net,
            stdio: StdioCapability {
                stdin: bits & 1 != 0,
                stdout: bits & 2 != 0,
                stderr: bits & 4 != 0,
            },
        },
        host: Host {
            workdir,
            home,
            env,
            audit_log: None,
        },
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn toml_list<S: AsRef<str>>(items: &[S]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| toml_string(s.as_ref())).collect();
    format!("[{}]", quoted.join(", "))
}

/// The body of one table (after its header).
fn render_lists(l: &Lists) -> String {
    let mut out = format!(
        "fs.read = {}\nfs.write = {}\nfs.deny = {}\nenv.allow = {}\nenv.deny = {}\n",
        toml_list(&l.read),
        toml_list(&l.write),
        toml_list(&l.deny),
        toml_list(&l.env_allow),
        toml_list(&l.env_deny)
    );
    if let Some(stdio) = &l.stdio {
        out.push_str(&format!("stdio = {}\n", toml_list(stdio)));
    }
    out
}

fn render(case: &Case) -> String {
    let on_denied = match case.on_denied {
        OnDenied::Run => "run",
        OnDenied::Refuse => "refuse",
    };
    let mut text = format!(
        "version = 1\nmode = \"{}\"\n[defaults]\nrequire_digest = {}\non_denied = \"{on_denied}\"\n{}",
        case.mode.as_str(),
        case.require_digest,
        render_lists(&case.defaults)
    );
    for t in &case.tables {
        text.push_str(&format!("[plugins.{}]\n", t.name));
        let pin = match t.pin {
            Pin::None => None,
            Pin::Matching => Some(hex::encode(DIGEST)),
            Pin::Other => Some(hex::encode([8u8; 32])),
        };
        if let Some(pin) = pin {
            text.push_str(&format!("sha256 = \"{pin}\"\n"));
        }
        text.push_str(&render_lists(&t.lists));
    }
    text
}

/// `grant_intersection`: the case `data` chooses, decided and checked against the
/// oracle. Panics only when an invariant is broken (or the generator wrote a policy the
/// parser rejects, which is a generator bug).
pub fn grant_intersection(data: &[u8]) {
    let tree = tree();
    let case = case(data, tree);
    let text = render(&case);
    let policy = Policy::parse("grant.toml", &text)
        .unwrap_or_else(|e| panic!("the generated policy is invalid: {e}\n{text}"));
    let decisions = decide(&case.capabilities, PLUGIN, DIGEST, &policy, &case.host);
    check(&case, &policy, &decisions, &text);
}

/// Whether a host variable name could ever be passed to a plugin.
fn passable(name: &str) -> bool {
    !name.is_empty() && !name.contains(['=', '*']) && !name.chars().any(char::is_control)
}

/// Names `pattern` can match, with each `*` replaced by one of a few fillers.
fn witnesses(pattern: &str) -> Vec<String> {
    const FILLERS: &[&str] = &["", "X", "APP_", "SECRET", "_TOKEN", "AB"];
    let mut out = vec![String::new()];
    for c in pattern.chars() {
        if c == '*' {
            out = out
                .iter()
                .flat_map(|w| FILLERS.iter().map(move |f| format!("{w}{f}")))
                .collect();
        } else {
            for w in &mut out {
                w.push(c);
            }
        }
    }
    out.retain(|w| passable(w));
    out
}

/// Every key of `defaults` and of the table that applies.
fn keys(policy: &Policy, own: Option<&str>) -> BTreeSet<String> {
    let rules = std::iter::once(policy.defaults())
        .chain(own.and_then(|n| policy.plugin(n)).map(|t| &t.rules));
    let mut out = BTreeSet::new();
    for r in rules {
        for list in [
            &r.fs_read,
            &r.fs_write,
            &r.fs_deny,
            &r.env_allow,
            &r.env_deny,
        ] {
            out.extend(list.iter().map(|e| e.key.clone()));
        }
        out.extend(r.stdio.iter().flatten().map(|e| e.key.clone()));
    }
    out
}

fn check(case: &Case, policy: &Policy, decisions: &Decisions, text: &str) {
    let host = &case.host;
    let caps = &case.capabilities;
    let context = || format!("--- policy:\n{text}--- declared: {caps:?}\n--- host: {host:?}");

    // Which table applies, and whether the plugin is refused before anything else.
    let table = case.tables.iter().find(|t| t.name == PLUGIN);
    let (own, refused) = match table {
        Some(t) if t.pin == Pin::Other => (None, Some("pin")),
        Some(t) if t.pin == Pin::None && case.require_digest => (None, Some("digest")),
        Some(t) => (Some(t), None),
        None if case.require_digest => (None, Some("digest")),
        None => (None, None),
    };
    assert_eq!(
        decisions.table(),
        own.map(|_| "plugins.probe"),
        "the wrong table applies\n{}",
        context()
    );
    let lists: Vec<&Lists> = std::iter::once(&case.defaults)
        .chain(own.map(|t| &t.lists))
        .collect();
    let keys = keys(policy, own.map(|t| t.name));
    let deny: Vec<&str> = lists
        .iter()
        .flat_map(|l| &l.deny)
        .map(String::as_str)
        .collect();
    let env_allow: Vec<&str> = lists
        .iter()
        .flat_map(|l| &l.env_allow)
        .map(String::as_str)
        .collect();
    let env_deny: Vec<&str> = lists
        .iter()
        .flat_map(|l| &l.env_deny)
        .map(String::as_str)
        .collect();
    let stdio: Vec<&str> = own
        .and_then(|t| t.lists.stdio.clone())
        .or_else(|| case.defaults.stdio.clone())
        .unwrap_or_default();

    let declared = caps.fs_read.len()
        + caps.fs_write.len()
        + caps.env_read.len()
        + [caps.stdio.stdin, caps.stdio.stdout, caps.stdio.stderr]
            .iter()
            .filter(|s| **s)
            .count()
        + caps.net.len();
    assert_eq!(
        decisions.items().len(),
        declared,
        "one decision per item\n{}",
        context()
    );

    let mut granted_dirs: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
    let mut guests: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut granted_names: BTreeSet<String> = BTreeSet::new();
    let mut granted_streams: BTreeSet<String> = BTreeSet::new();
    for d in decisions.items() {
        let at = || format!("{d:#?}\n{}", context());
        assert!(!d.reason().is_empty(), "no reason\n{}", at());
        // A grant names the entry of a table that applies; a denial may also name no
        // rule, or one of warden's own.
        assert!(
            keys.contains(d.rule())
                || (d.outcome() != Outcome::Granted && d.rule() == crate::grant::NO_RULE)
                || d.outcome() == Outcome::Denied,
            "decided by a rule of no table that applies\n{}",
            at()
        );
        assert_eq!(d.is_in_effect(), d.outcome() != Outcome::Denied, "{}", at());
        assert!(
            d.outcome() != Outcome::WouldDeny || case.mode == Mode::Audit,
            "would_deny in enforce mode\n{}",
            at()
        );
        let Some(grant) = d.grant() else {
            continue;
        };
        let granted = d.outcome() == Outcome::Granted;
        match (d.capability(), grant.kind()) {
            (Capability::FsRead | Capability::FsWrite, GrantKind::Dir(g)) => {
                let write = d.capability() == Capability::FsWrite;
                let host_path = PathBuf::from(d.host_path().expect("a host path"));
                // Within the declaration: exactly the declared directory, resolved.
                assert_eq!(
                    Some(&host_path),
                    canonical(d.request(), host).as_ref(),
                    "not the declared directory\n{}",
                    at()
                );
                assert!(host_path.is_dir(), "not a directory\n{}", at());
                let meta = std::fs::metadata(&host_path).expect("metadata");
                assert_eq!(g.host_path, host_path, "{}", at());
                assert_eq!(Some(g.guest_path.as_str()), d.guest_path(), "{}", at());
                assert_eq!(g.writable, write, "{}", at());
                assert_eq!((g.dev, g.ino), (meta.dev(), meta.ino()), "{}", at());
                if let Some(other) = guests.insert(g.guest_path.clone(), host_path.clone()) {
                    assert_eq!(
                        other,
                        host_path,
                        "two directories at one guest path\n{}",
                        at()
                    );
                }
                if granted {
                    // Within the policy: inside an allow entry of the right kind.
                    let inside = lists.iter().any(|l| {
                        let allows =
                            l.write
                                .iter()
                                .chain(if write { &[][..] } else { &l.read[..] });
                        allows
                            .filter_map(|a| canonical(a, host))
                            .any(|a| host_path.starts_with(&a))
                    });
                    assert!(inside, "granted outside every allow entry\n{}", at());
                    // Touches no denied path, in either form.
                    for x in &deny {
                        let Some(lex) = lexical(x, host) else {
                            panic!(
                                "granted although deny entry `{x}` cannot be resolved\n{}",
                                at()
                            );
                        };
                        for form in std::iter::once(lex).chain(canonical(x, host)) {
                            assert!(
                                !host_path.starts_with(&form) && !form.starts_with(&host_path),
                                "granted although it touches denied `{x}` ({})\n{}",
                                form.display(),
                                at()
                            );
                        }
                    }
                }
                granted_dirs.insert((host_path, write));
            }
            (Capability::Env, GrantKind::Env(vars)) => {
                let names = d.names().expect("names");
                let expected: BTreeSet<&str> = host
                    .env
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .filter(|n| passable(n) && wildcard(d.request(), n))
                    .filter(|n| !env_deny.iter().any(|x| wildcard(x, n)))
                    .collect();
                // Rule 5: every host variable the declared pattern matches that no deny
                // pattern matches, no other; each withheld one matches a deny pattern.
                for w in d.withheld() {
                    assert!(
                        wildcard(d.request(), &w.name)
                            && env_deny.iter().any(|x| wildcard(x, &w.name)),
                        "`{}` withheld without a deny pattern\n{}",
                        w.name,
                        at()
                    );
                }
                assert_eq!(
                    names.iter().map(String::as_str).collect::<Vec<_>>(),
                    expected.iter().copied().collect::<Vec<_>>(),
                    "not the declared names\n{}",
                    at()
                );
                let passed: BTreeSet<(&str, &str)> =
                    vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let wanted: BTreeSet<(&str, &str)> = host
                    .env
                    .iter()
                    .filter(|(k, _)| expected.contains(k.as_str()))
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                assert_eq!(passed, wanted, "not the host's values\n{}", at());
                if granted {
                    for n in names {
                        assert!(
                            env_allow.iter().any(|a| wildcard(a, n)),
                            "`{n}` passed but matches no allow pattern\n{}",
                            at()
                        );
                        assert!(
                            !env_deny.iter().any(|x| wildcard(x, n)),
                            "`{n}` passed but matches a deny pattern\n{}",
                            at()
                        );
                    }
                    // The whole declared pattern is covered by one allow pattern.
                    let sample = witnesses(d.request());
                    assert!(
                        env_allow
                            .iter()
                            .any(|a| sample.iter().all(|w| wildcard(a, w))),
                        "granted, but no allow pattern covers all of {sample:?}\n{}",
                        at()
                    );
                }
                granted_names.extend(names.iter().cloned());
            }
            (Capability::Stdio, GrantKind::Stream(stream)) => {
                assert_eq!(stream.as_str(), d.request(), "{}", at());
                if granted {
                    assert!(stdio.contains(&d.request()), "not in {stdio:?}\n{}", at());
                }
                granted_streams.insert(d.request().to_owned());
            }
            // The generated policies allow no destination, so an endpoint is only ever
            // in effect as audit mode's would_deny, exactly as declared.
            (Capability::Net, GrantKind::Net(parts)) => {
                assert!(!granted, "network granted with no allow entry\n{}", at());
                let shown: Vec<String> = parts.iter().map(|n| n.endpoint.to_string()).collect();
                assert_eq!(shown, [d.request()], "{}", at());
                assert_eq!(d.reach(), shown.as_slice(), "{}", at());
            }
            _ => panic!("a grant of another kind than its decision\n{}", at()),
        }
    }

    match refused {
        Some("pin") => assert!(
            matches!(decisions.refusal(), Some(Refusal::PinMismatch { .. })),
            "{:?}\n{}",
            decisions.refusal(),
            context()
        ),
        Some(_) => assert!(
            matches!(decisions.refusal(), Some(Refusal::DigestRequired { .. })),
            "{:?}\n{}",
            decisions.refusal(),
            context()
        ),
        None => {
            let any_denied = decisions
                .items()
                .iter()
                .any(|d| d.outcome() == Outcome::Denied);
            let refuse = case.mode == Mode::Enforce && case.on_denied == OnDenied::Refuse;
            assert_eq!(
                decisions.refusal().is_some(),
                refuse && any_denied,
                "{:?}\n{}",
                decisions.refusal(),
                context()
            );
        }
    }

    // The sandbox holds what was granted and nothing else.
    let sandbox = Sandbox::from_decisions(decisions);
    for p in sandbox.preopens() {
        let opened = (p.host_path().to_path_buf(), p.writable());
        assert!(
            granted_dirs.contains(&opened),
            "preopen {opened:?} not granted\n{}",
            context()
        );
        assert_eq!(
            guests.get(p.guest_path()),
            Some(&opened.0),
            "preopen at guest path `{}` not granted there\n{}",
            p.guest_path(),
            context()
        );
    }
    for name in sandbox.env_names() {
        assert!(
            granted_names.contains(name),
            "{name} not granted\n{}",
            context()
        );
    }
    let s = sandbox.stdio();
    for (on, stream) in [
        (s.stdin, "stdin"),
        (s.stdout, "stdout"),
        (s.stderr, "stderr"),
    ] {
        assert!(
            !on || granted_streams.contains(stream),
            "{stream} not granted\n{}",
            context()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_matchers_agree_with_hand_answers() {
        assert!(witnesses("A*").contains(&"ASECRET".to_owned()));
        assert_eq!(witnesses("HOME"), ["HOME"]);
    }

    #[test]
    fn plain_and_busy_cases_hold() {
        grant_intersection(&[]);
        grant_intersection(&[0; 64]);
        grant_intersection(&[255; 64]);
        let counting: Vec<u8> = (0..=255).collect();
        grant_intersection(&counting);
        assert!(tree().workdir.join("a/b/c").is_dir());
    }
}
