//! The intersection: what a plugin declares, what the policy allows, one decision per
//! declared item (`POLICY.md` rules 1-8).
//!
//! [`decide`] takes the declared [`Capabilities`], the plugin's name and digest, a
//! validated [`Policy`] and the [`Host`] facts (working directory, home, environment)
//! and returns [`Decisions`]: for each declared item an outcome (`granted`, `denied`,
//! or `would_deny` in audit mode), the key path of the rule that decided it, a reason a
//! person can act on, and the host and guest paths. It opens nothing and changes
//! nothing; it reads the filesystem to canonicalize paths and opens (read-only) the
//! directories it decides about.
//!
//! A granted item carries a [`Grant`], which only this module can construct. The
//! sandbox ([`crate::sandbox::Sandbox::from_decisions`]) is built from grants alone, so
//! nothing reaches a plugin that a decision did not grant.
//!
//! One file per capability, as wasmtime-wasi gives each capability its module, with
//! this file only the [`decide`] loop over them:
//!
//! - `decision`: the types decided ([`Decision`], [`Grant`], [`Decisions`], ...);
//! - `rules`: the [`Host`] facts and the policy's rules in force for one plugin;
//! - `fs` (with `open`, which opens a declared directory without following symlinks),
//!   `env`, `stdio`, `net`: each capability's decision.
//!
//! # Security
//!
//! This is where a plugin's declarations (hostile input) meet the operator's policy.
//! Every declared item is granted whole or denied: never widened, never silently
//! narrowed (a network declaration is granted as its intersection with the allow
//! entries, which its decision shows as `reach`: the `net` module). Deny
//! entries beat allow entries; paths are canonicalized on both sides before they are
//! compared; a declared directory that contains a denied one is denied, since a
//! preopened directory cannot hide part of its subtree. Each declared directory is
//! opened once, without following any symlink, and every check runs on where that
//! descriptor really is; a grant holds that descriptor, and the sandbox gets it, so no
//! path is looked up again between the check and the plugin (the `open` module).

mod decision;
mod env;
mod fs;
mod net;
mod open;
mod rules;
mod stdio;

pub(crate) use decision::GrantKind;
pub use decision::{Capability, Decision, Decisions, Grant, NO_RULE, Outcome, Refusal, Withheld};
pub use fs::{PROTECTED_RULE, SYSTEM_PATHS, SYSTEM_RULE};
pub use rules::Host;

use crate::abi::Capabilities;
use crate::policy::{Entry, Mode, OnDenied, Policy, Stream};
use rules::Effective;

/// Decides every item `capabilities` declares for plugin `name` (whose file has SHA-256
/// `sha256`) under `policy`, on `host`.
pub fn decide(
    capabilities: &Capabilities,
    name: &str,
    sha256: [u8; 32],
    policy: &Policy,
    host: &Host,
) -> Decisions {
    let found = hex::encode(sha256);
    let toml_name = crate::policy::toml_key(name);
    let mut refusal = None;
    let table = match policy.plugin(name) {
        Some(t) => match t.sha256.as_slice() {
            pins if !pins.is_empty() && !pins.iter().any(|p| p.value == sha256) => {
                let expected: Vec<String> = pins.iter().map(|p| hex::encode(p.value)).collect();
                refusal = Some(Refusal::PinMismatch {
                    rule: match pins {
                        [one] => one.key.clone(),
                        _ => format!("plugins.{toml_name}.sha256"),
                    },
                    expected: expected.join(" or "),
                    found: found.clone(),
                });
                None
            }
            [] if policy.require_digest() => {
                refusal = Some(Refusal::DigestRequired {
                    rule: "defaults.require_digest".into(),
                    what: format!("`[plugins.{toml_name}]` has no `sha256`"),
                    name: toml_name.clone(),
                    found: found.clone(),
                });
                None
            }
            _ => Some(t),
        },
        None if policy.require_digest() => {
            refusal = Some(Refusal::DigestRequired {
                rule: "defaults.require_digest".into(),
                what: format!("the policy has no `[plugins.{toml_name}]` table"),
                name: toml_name.clone(),
                found: found.clone(),
            });
            None
        }
        None => None,
    };
    let own = table.map(|t| &t.rules);
    let limits = {
        let base = policy.default_limits();
        own.map_or(base.clone(), |o| o.limits.apply(&base))
    };
    let rules = Effective::new(policy.defaults(), own, format!("plugins.{toml_name}"), host);
    let mode = policy.mode();
    let mut items = Vec::new();
    let protected = fs::protected_paths(host, policy.file());
    for p in &capabilities.fs_read {
        items.push(fs::decide_dir(p, false, &rules, host, &protected, mode));
    }
    for p in &capabilities.fs_write {
        items.push(fs::decide_dir(p, true, &rules, host, &protected, mode));
    }
    fs::resolve_guest_conflicts(&mut items);
    for pattern in &capabilities.env_read {
        items.push(env::decide_env(pattern, &rules, host, mode));
    }
    let s = capabilities.stdio;
    for (declared, stream) in [
        (s.stdin, Stream::Stdin),
        (s.stdout, Stream::Stdout),
        (s.stderr, Stream::Stderr),
    ] {
        if declared {
            items.push(stdio::decide_stream(stream, &rules, mode));
        }
    }
    let mut net = crate::net::NetAccess {
        allow: rules.net_allow.iter().map(|e| (*e).clone()).collect(),
        deny: rules.net_deny.iter().map(|e| (*e).clone()).collect(),
        tls: crate::net::client::Tls::new(rules.tls_roots.clone()),
        log_query: policy.log_args(),
        max_requests_rule: if own.is_some_and(|o| o.limits.max_requests.is_some()) {
            format!("{}.net.max_requests", own.map_or("", |o| o.table.as_str()))
        } else if policy.defaults().limits.max_requests.is_some() {
            "defaults.net.max_requests".into()
        } else {
            "builtin.max_requests".into()
        },
        table: rules.table.clone(),
        ..Default::default()
    };
    for n in &capabilities.net {
        let (decision, endpoint) = net::decide_net(n, &rules, mode);
        if let Some(endpoint) = endpoint
            && decision.grant.is_none()
        {
            net.denied.push((endpoint, decision.rule.clone()));
        }
        items.push(decision);
    }
    // A plugin table's `on_denied` replaces the default (rule 2).
    let (on_denied, on_denied_rule) = match table.and_then(|t| t.on_denied.as_ref()) {
        Some(own) => (own.value, own.key.clone()),
        None => (policy.on_denied(), "defaults.on_denied".to_owned()),
    };
    if refusal.is_none() && mode == Mode::Enforce && on_denied == OnDenied::Refuse {
        let denied: Vec<&Decision> = items
            .iter()
            .filter(|d| d.outcome == Outcome::Denied)
            .collect();
        if let Some(first) = denied.first() {
            refusal = Some(Refusal::Denied {
                rule: on_denied_rule,
                count: denied.len(),
                first: first.request.clone(),
                first_reason: first.reason.clone(),
            });
        }
    }
    // A plugin table's `isolation` and `confine` replace the defaults' (rule 2).
    let isolation = setting(
        own.and_then(|o| o.isolation.as_ref()),
        policy.defaults().isolation.as_ref(),
    );
    let confine = setting(
        own.and_then(|o| o.confine.as_ref()),
        policy.defaults().confine.as_ref(),
    );
    Decisions {
        plugin: name.to_owned(),
        sha256,
        table: table.map(|t| t.rules.table.clone()),
        mode,
        on_denied,
        limits,
        isolation,
        confine,
        items,
        refusal,
        net,
    }
}

/// The value of a setting the plugin's table (`own`) or `[defaults]` may write, the
/// table's first, with the key that set it; the built-in default when neither does.
fn setting<T: Copy + Default>(own: Option<&Entry<T>>, defaults: Option<&Entry<T>>) -> (T, String) {
    match own.or(defaults) {
        Some(entry) => (entry.value, entry.key.clone()),
        None => (T::default(), decision::DEFAULT_RULE.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{NetPattern, NetProtocol, PathPattern, StdioCapability};
    use crate::limits::Limits;
    use std::path::PathBuf;

    struct Fixture {
        _dir: tempfile::TempDir,
        root: PathBuf,
    }

    /// root/{data/sub, out, vault, file}, as workdir and home.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for d in ["data/sub", "out", "vault"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(root.join("file"), "x").unwrap();
        Fixture { _dir: dir, root }
    }

    impl Fixture {
        fn host(&self, env: &[(&str, &str)]) -> Host {
            Host {
                workdir: self.root.clone(),
                home: Some(self.root.clone()),
                env: env
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                audit_log: None,
            }
        }
    }

    fn policy(text: &str) -> Policy {
        Policy::parse("t.toml", text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn dirs(read: &[&str], write: &[&str]) -> Capabilities {
        let p = |s: &&str| PathPattern {
            pattern: s.to_string(),
            recursive: true,
        };
        Capabilities {
            fs_read: read.iter().map(p).collect(),
            fs_write: write.iter().map(p).collect(),
            ..Capabilities::default()
        }
    }

    fn one(caps: &Capabilities, text: &str, host: &Host) -> Decision {
        let d = decide(caps, "p", [0; 32], &policy(text), host);
        assert_eq!(d.items().len(), 1, "{d:#?}");
        d.items()[0].clone()
    }

    #[test]
    fn warden_state_is_denied_in_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        let home = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(home.join(".cache/warden")).unwrap();
        std::fs::create_dir_all(home.join("logs")).unwrap();
        for mode in ["enforce", "audit"] {
            let text = format!("version = 1\nmode = \"{mode}\"\n[defaults]\nfs.write = [\"~\"]\n");
            let policy = Policy::parse("p.toml", &text).unwrap();
            let host = Host {
                workdir: home.clone(),
                home: Some(home.clone()),
                env: vec![(
                    "WARDEN_AUDIT_LOG".into(),
                    home.join("logs/audit.jsonl").display().to_string(),
                )],
                audit_log: None,
            };
            for declared in ["~", "~/.cache", "~/logs"] {
                let caps = Capabilities {
                    fs_write: vec![PathPattern {
                        pattern: declared.into(),
                        recursive: true,
                    }],
                    ..Capabilities::default()
                };
                let decisions = decide(&caps, "p", [0; 32], &policy, &host);
                let d = &decisions.items()[0];
                assert_eq!(d.outcome(), Outcome::Denied, "{mode} {declared}");
                assert_eq!(d.rule(), PROTECTED_RULE, "{mode} {declared}");
            }
        }
    }

    #[test]
    fn the_runs_own_audit_log_is_protected_wherever_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for sub in ["logs", "other"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let text = "version = 1\n[defaults]\nfs.write = [\".\"]\n";
        std::os::unix::fs::symlink(root.join("logs"), root.join("link")).unwrap();
        let host = Host {
            workdir: root.clone(),
            home: None,
            env: Vec::new(),
            audit_log: None,
        };
        // Named directly, and through a symlinked directory before the file exists
        // (a rotating log's base path never does).
        for log in ["logs/audit.jsonl", "link/audit.jsonl"] {
            let host = host.clone().with_audit_log(&root.join(log));
            for (declared, outcome) in [
                ("./logs", Outcome::Denied),
                ("./link", Outcome::Denied),
                (".", Outcome::Denied),
                ("./other", Outcome::Granted),
            ] {
                let d = one(&dirs(&[], &[declared]), text, &host);
                assert_eq!(d.outcome(), outcome, "{log} {declared}: {d:#?}");
                if outcome == Outcome::Denied {
                    assert_eq!(d.rule(), PROTECTED_RULE, "{log} {declared}");
                    assert!(d.reason().contains("audit log"), "{}", d.reason());
                }
            }
        }
    }

    #[test]
    fn deny_beats_allow_whether_equal_inside_or_containing() {
        let f = fixture();
        let host = f.host(&[]);
        for (deny, declared, relation) in [
            ("./data", "./data", "which is `"),
            ("./data", "./data/sub", "which is inside"),
            ("./data/sub", "./data", "which contains"),
        ] {
            let text = format!(
                "version = 1\n[defaults]\nfs.read = [\".\"]\n[plugins.p]\nfs.deny = [{deny:?}]\n"
            );
            let d = one(&dirs(&[declared], &[]), &text, &host);
            assert_eq!(d.outcome(), Outcome::Denied, "{d:#?}");
            assert_eq!(d.rule(), "plugins.p.fs.deny[0]");
            assert!(d.reason().contains(relation), "{}", d.reason());
            assert!(d.grant().is_none());
        }
    }

    #[test]
    fn write_covers_read_but_read_does_not_cover_write() {
        let f = fixture();
        let host = f.host(&[]);
        let text = "version = 1\n[plugins.p]\nfs.write = [\"./out\"]\nfs.read = [\"./data\"]\n";
        let d = decide(
            &dirs(&["./out"], &["./data", "./out"]),
            "p",
            [0; 32],
            &policy(text),
            &host,
        );
        let items = d.items();
        assert_eq!(items[0].outcome(), Outcome::Granted);
        assert_eq!(items[0].rule(), "plugins.p.fs.write[0]");
        assert_eq!(items[1].outcome(), Outcome::Denied);
        assert_eq!(items[1].rule(), NO_RULE);
        assert!(
            items[1]
                .reason()
                .contains("lets the plugin read but no `fs.write` entry")
        );
        assert_eq!(items[2].outcome(), Outcome::Granted);
        assert_eq!(
            items[2].host_path(),
            Some(f.root.join("out").to_str().unwrap())
        );
        assert_eq!(items[2].guest_path(), Some("/out"));
    }

    #[test]
    fn only_existing_directories_are_granted() {
        let f = fixture();
        let host = f.host(&[]);
        let text = "version = 1\n[plugins.p]\nfs.read = [\".\"]\n";
        let d = one(&dirs(&["./file"], &[]), text, &host);
        assert_eq!(d.outcome(), Outcome::Denied);
        assert!(d.reason().contains("is not a directory"));
        let d = one(&dirs(&["./nope"], &[]), text, &host);
        assert!(d.reason().contains("does not exist"));
        // Not even audit mode grants what does not exist.
        let audit = "version = 1\nmode = \"audit\"\n";
        let d = one(&dirs(&["./nope"], &[]), audit, &host);
        assert_eq!(d.outcome(), Outcome::Denied);
        assert!(!d.is_in_effect());
    }

    #[test]
    fn audit_mode_grants_what_it_would_deny_but_never_what_a_deny_list_denies() {
        let f = fixture();
        let host = f.host(&[("AWS_SECRET", "s")]);
        let text = "version = 1\nmode = \"audit\"\n[defaults]\nfs.deny = [\"./vault\"]\nenv.deny = [\"AWS_*\"]\n";
        let mut caps = dirs(&["./vault", "./data"], &[]);
        caps.env_read = vec!["AWS_*".into()];
        caps.stdio.stdin = true;
        caps.net.push(NetPattern {
            host: "example.com".into(),
            port: Some(443),
            protocol: NetProtocol::Https,
        });
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        let outcomes: Vec<(Outcome, &str, bool)> = d
            .items()
            .iter()
            .map(|i| (i.outcome(), i.rule(), i.is_in_effect()))
            .collect();
        assert_eq!(
            outcomes,
            [
                (Outcome::Denied, "defaults.fs.deny[0]", false),
                (Outcome::WouldDeny, NO_RULE, true),
                (Outcome::Denied, "defaults.env.deny[0]", false),
                (Outcome::WouldDeny, NO_RULE, true),
                (Outcome::WouldDeny, NO_RULE, true),
            ]
        );
        assert_eq!(d.items()[4].request(), "https://example.com:443");
        assert!(d.refusal().is_none());
    }

    #[test]
    fn identity_pins_and_require_digest_refuse() {
        let f = fixture();
        let host = f.host(&[]);
        let pin = "11".repeat(32);
        let text =
            format!("version = 1\n[plugins.p]\nsha256 = \"{pin}\"\nfs.read = [\"./data\"]\n");
        let caps = dirs(&["./data"], &[]);
        let d = decide(&caps, "p", [0x11; 32], &policy(&text), &host);
        assert!(d.refusal().is_none());
        assert_eq!(d.table(), Some("plugins.p"));
        assert_eq!(d.items()[0].outcome(), Outcome::Granted);

        let d = decide(&caps, "p", [0x22; 32], &policy(&text), &host);
        let r = d.refusal().unwrap();
        assert_eq!(r.rule(), "plugins.p.sha256");
        assert!(r.to_string().contains(&"22".repeat(32)));
        // The mismatched table grants nothing.
        assert_eq!(d.table(), None);
        assert_eq!(d.items()[0].outcome(), Outcome::Denied);

        let strict =
            "version = 1\n[defaults]\nrequire_digest = true\n[plugins.p]\nfs.read = [\"./data\"]\n";
        let d = decide(&caps, "p", [0; 32], &policy(strict), &host);
        assert_eq!(d.refusal().unwrap().rule(), "defaults.require_digest");
        let d = decide(&caps, "other", [0; 32], &policy(strict), &host);
        assert!(
            d.refusal()
                .unwrap()
                .to_string()
                .contains("no `[plugins.other]` table")
        );
    }

    #[test]
    fn on_denied_refuse_refuses_any_denial_in_enforce_mode_only() {
        let f = fixture();
        let host = f.host(&[]);
        let caps = dirs(&["./vault"], &[]);
        let text = "version = 1\n[defaults]\non_denied = \"refuse\"\n";
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        assert_eq!(d.refusal().unwrap().rule(), "defaults.on_denied");
        let audit = format!("mode = \"audit\"\n{text}");
        let d = decide(&caps, "p", [0; 32], &policy(&audit), &host);
        assert!(d.refusal().is_none());
        let d = decide(&Capabilities::default(), "p", [0; 32], &policy(text), &host);
        assert!(d.refusal().is_none());
    }

    #[test]
    fn a_plugin_stdio_list_replaces_the_default() {
        let f = fixture();
        let host = f.host(&[]);
        let caps = Capabilities {
            stdio: StdioCapability {
                stdin: true,
                stdout: true,
                stderr: true,
            },
            ..Capabilities::default()
        };
        let text = "version = 1\n[defaults]\nstdio = [\"stdout\", \"stderr\"]\n[plugins.p]\nstdio = [\"stdin\"]\n";
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        let got: Vec<(&str, Outcome, &str)> = d
            .items()
            .iter()
            .map(|i| (i.request(), i.outcome(), i.rule()))
            .collect();
        assert_eq!(
            got,
            [
                ("stdin", Outcome::Granted, "plugins.p.stdio[0]"),
                ("stdout", Outcome::Denied, NO_RULE),
                ("stderr", Outcome::Denied, NO_RULE),
            ]
        );
        assert!(
            d.items()[1]
                .reason()
                .contains("`plugins.p.stdio` does not list `stdout`")
        );
        let d = decide(&caps, "q", [0; 32], &policy(text), &host);
        assert_eq!(d.items()[1].rule(), "defaults.stdio[0]");
    }

    #[test]
    fn env_patterns_are_decided_per_variable() {
        let f = fixture();
        let host = f.host(&[("APP_A", "1"), ("APP_B", "2"), ("HOME", "/h")]);
        let text =
            "version = 1\n[defaults]\nenv.allow = [\"APP_*\", \"HOME\"]\nenv.deny = [\"APP_B\"]\n";
        let env = |patterns: &[&str]| Capabilities {
            env_read: patterns.iter().map(|s| s.to_string()).collect(),
            ..Capabilities::default()
        };
        let d = one(&env(&["APP_A"]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Granted, "defaults.env.allow[0]")
        );
        assert_eq!(d.names(), Some(&["APP_A".to_string()][..]));
        // Every name `APP_B` can match is denied.
        let d = one(&env(&["APP_B"]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Denied, "defaults.env.deny[0]")
        );
        assert!(d.reason().starts_with("every name"));
        // Rule 5: `APP_*` is granted, passes `APP_A` and withholds `APP_B`, naming
        // the deny rule; whether a secret happens to be set changes nothing else.
        let d = one(&env(&["APP_*"]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Granted, "defaults.env.allow[0]")
        );
        assert_eq!(d.names(), Some(&["APP_A".to_string()][..]));
        assert_eq!(
            d.withheld(),
            [Withheld {
                name: "APP_B".into(),
                rule: "defaults.env.deny[0]".into()
            }]
        );
        assert!(
            d.reason()
                .contains("withholds `APP_B` (`defaults.env.deny[0]`)"),
            "{}",
            d.reason()
        );
        let Some(GrantKind::Env(vars)) = d.grant().map(Grant::kind) else {
            panic!("no env grant")
        };
        assert_eq!(vars, &[("APP_A".to_string(), "1".to_string())]);
        // `*` is wider than any allow pattern.
        let d = one(&env(&["*"]), text, &f.host(&[("HOME", "/h")]));
        assert_eq!((d.outcome(), d.rule()), (Outcome::Denied, NO_RULE));
        assert!(
            d.reason().contains("allows only part of it"),
            "{}",
            d.reason()
        );
        // Granted when nothing denied is set.
        let host = f.host(&[("APP_A", "1")]);
        let d = one(&env(&["APP_*"]), text, &host);
        assert_eq!(d.outcome(), Outcome::Granted);
    }

    #[test]
    fn a_tilde_deny_without_home_denies_every_directory() {
        let f = fixture();
        let mut host = f.host(&[]);
        host.home = None;
        let text = "version = 1\n[defaults]\nfs.read = [\".\"]\nfs.deny = [\"~/.ssh\"]\n";
        let d = one(&dirs(&["./data"], &[]), text, &host);
        assert_eq!(
            (d.outcome(), d.rule()),
            (Outcome::Denied, "defaults.fs.deny[0]")
        );
        assert!(d.reason().contains("HOME is not set"), "{}", d.reason());
    }

    #[test]
    fn two_directories_cannot_share_a_guest_path() {
        let f = fixture();
        std::fs::create_dir_all(f.root.join("home/data")).unwrap();
        let mut host = f.host(&[]);
        host.home = Some(f.root.join("home"));
        let text = "version = 1\n[defaults]\nfs.read = [\".\"]\n";
        // Same host directory at the same guest path: both granted (opened once).
        let d = decide(
            &dirs(&["./data", "data/"], &[]),
            "p",
            [0; 32],
            &policy(text),
            &host,
        );
        assert!(d.items().iter().all(|i| i.outcome() == Outcome::Granted));
        // `./data` and `~/data` are both `/data` to the plugin: the second is denied.
        let d = decide(
            &dirs(&["./data", "~/data"], &[]),
            "p",
            [0; 32],
            &policy(text),
            &host,
        );
        assert_eq!(d.items()[0].outcome(), Outcome::Granted);
        assert_eq!(d.items()[1].guest_path(), Some("/data"));
        assert_eq!(d.items()[1].outcome(), Outcome::Denied);
        assert!(
            d.items()[1]
                .reason()
                .contains("guest path `/data` is already granted")
        );
    }

    #[test]
    fn per_plugin_limits_replace_the_defaults() {
        let f = fixture();
        let text = "version = 1\n[defaults]\nfuel = 5\nmemory = \"1 MiB\"\n[plugins.p]\nfuel = 7\nstack = \"2 MiB\"\n";
        let d = decide(
            &Capabilities::default(),
            "p",
            [0; 32],
            &policy(text),
            &f.host(&[]),
        );
        assert_eq!(d.limits().fuel, 7);
        assert_eq!(d.limits().memory, 1 << 20);
        assert_eq!(d.limits().stack, 2 << 20);
        assert_eq!(d.limits().timeout, Limits::default().timeout);
    }

    #[test]
    fn isolation_and_confine_carry_their_value_and_rule() {
        use crate::policy::{Confine, Isolation};
        let f = fixture();
        let host = f.host(&[]);
        let decided = |text: &str, name: &str, sha256: [u8; 32]| {
            let d = decide(&Capabilities::default(), name, sha256, &policy(text), &host);
            (
                d.isolation().0,
                d.isolation().1.to_owned(),
                d.confine().0,
                d.confine().1.to_owned(),
            )
        };
        let unset = (
            Isolation::Process,
            "default".to_owned(),
            Confine::BestEffort,
            "default".to_owned(),
        );
        // Neither written: the built-in defaults, under the built-in policy too.
        assert_eq!(decided("version = 1\n", "p", [0; 32]), unset);
        let d = decide(
            &Capabilities::default(),
            "p",
            [0; 32],
            &Policy::builtin(),
            &host,
        );
        assert_eq!(d.isolation(), (Isolation::Process, "default"));
        assert_eq!(d.confine(), (Confine::BestEffort, "default"));
        // `[defaults]` only, then a plugin table that replaces one of them.
        let text = "version = 1\n[defaults]\nisolation = \"in-process\"\nconfine = \"required\"\n[plugins.p]\nisolation = \"process\"\n";
        assert_eq!(
            decided(text, "other", [0; 32]),
            (
                Isolation::InProcess,
                "defaults.isolation".to_owned(),
                Confine::Required,
                "defaults.confine".to_owned()
            )
        );
        assert_eq!(
            decided(text, "p", [0; 32]),
            (
                Isolation::Process,
                "plugins.p.isolation".to_owned(),
                Confine::Required,
                "defaults.confine".to_owned()
            )
        );
        // A table whose pin does not match does not apply: the defaults decide (and
        // the plugin is refused anyway).
        let pinned = format!("{text}sha256 = \"{}\"\n", "11".repeat(32));
        assert_eq!(
            decided(&pinned, "p", [0; 32]).1,
            "defaults.isolation".to_owned()
        );
        let text = "version = 1\n[plugins.\"my.tool\"]\nconfine = \"required\"\n";
        assert_eq!(
            decided(text, "my.tool", [0; 32]),
            (
                Isolation::Process,
                "default".to_owned(),
                Confine::Required,
                "plugins.\"my.tool\".confine".to_owned()
            )
        );
    }

    #[test]
    fn decisions_serialize_with_the_audit_record_fields() {
        let f = fixture();
        let host = f.host(&[("HOME", "/h")]);
        let text = "version = 1\n[defaults]\nfs.read = [\"./data\"]\nenv.allow = [\"HOME\"]\n";
        let mut caps = dirs(&["./data"], &[]);
        caps.fs_read[0].recursive = false;
        caps.env_read = vec!["HOME".into()];
        let d = decide(&caps, "p", [0; 32], &policy(text), &host);
        let fs = serde_json::to_value(&d.items()[0]).unwrap();
        let keys: Vec<&str> = fs.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "capability",
                "guest_path",
                "host_path",
                "outcome",
                "reason",
                "recursive",
                "request",
                "rule"
            ]
        );
        assert_eq!(fs["capability"], "fs_read");
        assert_eq!(fs["recursive"], false);
        assert!(
            fs["reason"]
                .as_str()
                .unwrap()
                .contains("declared non-recursive")
        );
        let env = serde_json::to_value(&d.items()[1]).unwrap();
        assert_eq!(env["names"], serde_json::json!(["HOME"]));
        assert!(!env.to_string().contains("/h\""), "a value leaked: {env}");
        assert!(
            !format!("{d:?}").contains("\"/h\""),
            "a value leaked into Debug"
        );
    }
}
