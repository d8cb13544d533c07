//! The embedding API (`warden::host`): the pipeline as a library, many threads on one
//! host, refusals that cannot run, policy reload, and the registry of a directory.

use crate::common::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use warden::abi::ExecuteResult;
use warden::host::{
    CommandStatus, HostError, Loaded, Plugin, PolicySource, Registry, RegistryError, Warden,
};

const READER_POLICY: &str =
    "version = 1\n[plugins.file-reader]\nfs.read = [\"./data\"]\nstdio = [\"stdout\"]\n";

/// A working directory with `data/hello.txt`, a policy file and a log path.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(policy: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/hello.txt"), "greetings").unwrap();
        crate::policy::policy_file(dir.path(), "policy.toml", policy);
        Site { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn log(&self) -> PathBuf {
        self.path("log/audit.jsonl")
    }

    fn warden(&self) -> Warden {
        Warden::builder()
            .worker_program(env!("CARGO_BIN_EXE_warden"))
            .policy_file(self.path("policy.toml"))
            .audit_log(self.log())
            .workdir(self.dir.path())
            .cache_dir(self.path("cache"))
            .build()
            .unwrap()
    }

    fn records(&self) -> Vec<serde_json::Value> {
        log_records(&self.log())
    }

    fn verify(&self) {
        assert_log_verifies(&self.log());
    }
}

fn ready(loaded: Loaded) -> Plugin {
    match loaded {
        Loaded::Ready(plugin) => plugin,
        Loaded::Refused(r) => panic!("refused: {}", r.reason()),
    }
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_host_and_a_plugin_are_shared_by_threads() {
    fn shared<T: Send + Sync + Clone>() {}
    shared::<Warden>();
    shared::<Plugin>();
    fn sync<T: Send + Sync>() {}
    sync::<Registry>();
}

#[test]
fn eight_threads_times_500_audited_calls_on_one_host_lose_nothing() {
    const THREADS: usize = 8;
    const CALLS: usize = 500;
    let site = Site::new(READER_POLICY);
    let warden = site.warden();
    let plugin = ready(warden.load(example_plugin("file-reader")).unwrap());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let plugin = plugin.clone();
                s.spawn(move || {
                    let mut outputs = Vec::with_capacity(CALLS);
                    for i in 0..CALLS {
                        // Each call prints its thread and number: every call gets
                        // its own store and its own stdout.
                        let report = plugin
                            .run(&args(&["print", &format!("t{t}-c{i}")]))
                            .unwrap();
                        assert_eq!(
                            report.result.unwrap(),
                            ExecuteResult::Success("printed".into())
                        );
                        outputs.push(String::from_utf8(report.stdout).unwrap());
                    }
                    outputs
                })
            })
            .collect();
        for (t, h) in handles.into_iter().enumerate() {
            let outputs = h.join().unwrap();
            assert_eq!(outputs.len(), CALLS);
            for (i, out) in outputs.iter().enumerate() {
                assert_eq!(out, &format!("t{t}-c{i}\n"), "thread {t} call {i}");
            }
        }
    });
    warden.flush().unwrap();
    let records = site.records();
    // Every run_start has exactly one run_end, after it, under the same id.
    let mut open: HashMap<String, usize> = HashMap::new();
    let mut ended = 0;
    for (n, r) in records.iter().enumerate() {
        let id = r["run_id"].as_str().unwrap().to_owned();
        match r["event"].as_str().unwrap() {
            "run_start" => assert!(open.insert(id, n).is_none(), "two run_starts"),
            "run_end" if open.remove(&id).is_some() => ended += 1,
            _ => {}
        }
    }
    assert!(open.is_empty(), "runs without run_end: {open:?}");
    assert_eq!(ended, THREADS * CALLS);
    let starts = records.iter().filter(|r| r["event"] == "run_start").count();
    assert_eq!(starts, THREADS * CALLS);
    // seq is 0..n without a gap: nothing lost, one chain.
    for (n, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], n as u64);
    }
    // After the first, each run names the load whose decisions it ran under.
    let loads: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "run_start" && r["run_id"] != plugin.load_id())
        .map(|r| r["load"].as_str().unwrap())
        .collect();
    assert_eq!(loads.len(), THREADS * CALLS - 1);
    assert!(loads.iter().all(|l| *l == plugin.load_id()));
    site.verify();
}

#[test]
fn a_refused_plugin_has_nothing_to_run_and_its_load_is_closed() {
    let site = Site::new(
        "version = 1\n[defaults]\non_denied = \"refuse\"\n[plugins.file-reader]\nstdio = [\"stdout\"]\n",
    );
    let warden = site.warden();
    let Loaded::Refused(refused) = warden.load(example_plugin("file-reader")).unwrap() else {
        panic!("file-reader's ./data is not allowed: the load must be refused");
    };
    assert!(
        refused
            .reason()
            .contains("refused to run plugin `file-reader`")
    );
    assert!(refused.decisions().refusal().is_some());
    warden.flush().unwrap();
    let records = site.records();
    let events: Vec<_> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert!(!events.contains(&"run_start"), "{events:?}");
    let end = records.last().unwrap();
    assert_eq!(end["event"], "run_end");
    assert_eq!(end["outcome"], "refused");
    site.verify();
}

#[test]
fn a_plugin_does_not_run_when_its_run_start_cannot_be_written() {
    let site = Site::new(
        "version = 1\n[plugins.file-writer]\nfs.read = [\"./data\"]\nfs.write = [\"./out\"]\nstdio = [\"stdout\"]\n",
    );
    std::fs::create_dir(site.path("out")).unwrap();
    // The log on a small file system of its own.
    let disk = site.path("disk");
    let _tmpfs = crate::run_audit::Tmpfs::mount(&disk, "1m");
    let warden = Warden::builder()
        .worker_program(env!("CARGO_BIN_EXE_warden"))
        .policy_file(site.path("policy.toml"))
        .audit_log(disk.join("audit.jsonl"))
        .workdir(site.path(""))
        .without_cache()
        .build()
        .unwrap();
    let plugin = ready(warden.load(example_plugin("file-writer")).unwrap());
    warden.flush().unwrap();
    // Something else fills the log's file system: run_start has no room left.
    let mut filler = std::fs::File::create(disk.join("filler")).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
    let result = plugin.run(&args(&["write", "proof.txt", "ran"]));
    assert!(matches!(result, Err(HostError::Audit(_))), "{result:?}");
    assert!(!site.path("out/proof.txt").exists(), "the guest ran");
}

#[test]
fn a_policy_reload_makes_plugins_loaded_under_the_old_one_refuse_to_run() {
    let site = Site::new(READER_POLICY);
    let warden = site.warden();
    let plugin = ready(warden.load(example_plugin("file-reader")).unwrap());
    assert!(plugin.run(&args(&["read", "hello.txt"])).is_ok());
    // The administrator tightens the policy: file-reader loses ./data.
    crate::policy::policy_file(
        &site.path(""),
        "policy.toml",
        "version = 1\n[plugins.file-reader]\nstdio = [\"stdout\"]\n",
    );
    warden.reload_policy().unwrap();
    let err = plugin.run(&args(&["read", "hello.txt"])).unwrap_err();
    assert!(matches!(err, HostError::StalePolicy { .. }), "{err}");
    assert_eq!(err.exit_code(), 77);
    // Loaded again, it is decided under the new policy.
    let again = ready(warden.load(example_plugin("file-reader")).unwrap());
    let report = again.run(&args(&["read", "hello.txt"])).unwrap();
    assert!(
        matches!(report.result, Ok(ExecuteResult::Error(_))),
        "{:?}",
        report.result
    );
    // A reload that fails keeps the policy in force.
    crate::policy::policy_file(&site.path(""), "policy.toml", "version = 2\n");
    assert!(matches!(warden.reload_policy(), Err(HostError::Policy(_))));
    assert!(again.run(&args(&["read", "hello.txt"])).is_ok());
    warden.flush().unwrap();
    let records = site.records();
    let stale = records
        .iter()
        .find(|r| r["event"] == "run_end" && r["outcome"] == "refused")
        .expect("the stale run is recorded");
    assert!(stale["error"].as_str().unwrap().contains("load it again"));
    assert!(records.iter().any(|r| r["event"] == "policy_rejected"));
    site.verify();
}

/// A reload writes `policy_loaded` under a run id of its own: that id gets its
/// `run_end` (outcome `unloaded`: no plugin ran under it), like every other.
#[test]
fn a_policy_reload_is_a_load_that_closes() {
    let site = Site::new(READER_POLICY);
    let warden = site.warden();
    warden.reload_policy().unwrap();
    warden
        .set_policy(PolicySource::Text {
            name: "inline".into(),
            text: READER_POLICY.into(),
        })
        .unwrap();
    warden.flush().unwrap();
    let records = site.records();
    let loads: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["event"] == "policy_loaded")
        .collect();
    assert_eq!(loads.len(), 2, "{records:#?}");
    for load in loads {
        let ends: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| r["run_id"] == load["run_id"] && r["event"] == "run_end")
            .collect();
        assert_eq!(ends.len(), 1, "{records:#?}");
        assert_eq!(
            (&ends[0]["outcome"], &ends[0]["exit_code"]),
            (&serde_json::json!("unloaded"), &serde_json::json!(0))
        );
    }
    site.verify();
}

#[test]
fn a_host_keeps_one_engine_per_stack_and_explains_and_inspects_without_records() {
    let site = Site::new(
        "version = 1\n[plugins.file-reader]\nfs.read = [\"./data\"]\nstdio = [\"stdout\"]\nstack = \"2 MiB\"\n",
    );
    let warden = site.warden();
    let plugin = ready(warden.load(example_plugin("file-reader")).unwrap());
    assert_eq!(plugin.instance().limits().stack, 2 << 20);
    let report = plugin.run(&args(&["read", "hello.txt"])).unwrap();
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("greetings".into())
    );
    warden.flush().unwrap();
    let before = site.records().len();
    let explained = warden.explain(example_plugin("file-reader")).unwrap();
    assert_eq!(explained.decisions.plugin(), "file-reader");
    let inspected = warden.inspect(example_plugin("hello")).unwrap();
    assert_eq!(inspected.manifest.command.name, "hello");
    warden.flush().unwrap();
    assert_eq!(
        site.records().len(),
        before,
        "explain and inspect write nothing"
    );
}

/// A directory holding the three example plugins.
fn plugin_dir(site: &Site) -> PathBuf {
    let dir = site.path("plugins");
    std::fs::create_dir(&dir).unwrap();
    for name in ["hello", "file-reader", "file-writer"] {
        std::fs::copy(example_plugin(name), dir.join(format!("{name}.wasm"))).unwrap();
    }
    dir
}

#[test]
fn the_registry_calls_plugins_by_command_and_lists_refusals() {
    // file-writer is refused (pinned to another digest).
    let site = Site::new(&format!(
        "{READER_POLICY}[plugins.file-writer]\nsha256 = \"{}\"\n",
        "0".repeat(64)
    ));
    let dir = plugin_dir(&site);
    std::fs::write(dir.join("broken.wasm"), b"not wasm").unwrap();
    let registry = Registry::open(site.warden(), &dir).unwrap();
    let commands = registry.commands();
    let status = |name: &str| {
        commands
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{name} not listed: {commands:?}"))
            .status
            .clone()
    };
    assert_eq!(status("hello"), CommandStatus::Ready);
    assert_eq!(status("file-reader"), CommandStatus::Ready);
    assert!(matches!(status("file-writer"), CommandStatus::Refused(r) if r.contains("sha256")));
    assert!(matches!(status("broken.wasm"), CommandStatus::Failed(_)));
    let hello = commands.iter().find(|c| c.name == "hello").unwrap();
    assert!(!hello.about.is_empty());

    let report = registry.call("hello", &[]).unwrap();
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("Hello, World!".into())
    );
    let report = registry
        .call("file-reader", &args(&["read", "hello.txt"]))
        .unwrap();
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("greetings".into())
    );
    match registry.call("nope", &[]).unwrap_err() {
        RegistryError::Unknown { command, known } => {
            assert_eq!(command, "nope");
            assert_eq!(known, ["file-reader", "hello"]);
        }
        other => panic!("{other}"),
    }
    let err = registry.call("file-writer", &[]).unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert_eq!(err.exit_code(), 77);
}

#[test]
fn a_changed_file_is_a_new_load_never_a_silent_swap() {
    let site = Site::new(READER_POLICY);
    let dir = site.path("plugins");
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("cmd.wasm");
    std::fs::copy(example_plugin("hello"), &file).unwrap();
    let registry = Registry::open(site.warden(), &dir).unwrap();
    assert!(registry.call("hello", &[]).is_ok());
    let unchanged = registry.refresh().unwrap();
    assert!(unchanged.reloaded.is_empty() && unchanged.added.is_empty());

    // The file now holds other bytes: another plugin under the same file name.
    std::fs::copy(example_plugin("file-reader"), &file).unwrap();
    let refreshed = registry.refresh().unwrap();
    assert_eq!(refreshed.reloaded, std::slice::from_ref(&file));
    assert!(matches!(
        registry.call("hello", &[]),
        Err(RegistryError::Unknown { .. })
    ));
    let report = registry
        .call("file-reader", &args(&["read", "hello.txt"]))
        .unwrap();
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("greetings".into())
    );
    registry.warden().flush().unwrap();
    // Each load of the file is in the log, with its own digest and the file's path.
    let loads: Vec<_> = site
        .records()
        .into_iter()
        .filter(|r| r["event"] == "plugin_loaded")
        .collect();
    assert_eq!(loads.len(), 2);
    assert_ne!(loads[0]["plugin"]["sha256"], loads[1]["plugin"]["sha256"]);
    for l in &loads {
        assert_eq!(l["plugin"]["path"], file.display().to_string());
    }
    std::fs::remove_file(&file).unwrap();
    assert_eq!(registry.refresh().unwrap().removed, [file]);
    assert!(registry.commands().is_empty());
    site.verify();
}

#[test]
fn a_policy_given_as_text_and_an_environment_are_used_as_given() {
    let site = Site::new(READER_POLICY);
    let warden = Warden::builder()
        .worker_program(env!("CARGO_BIN_EXE_warden"))
        .policy(PolicySource::Text {
            name: "inline".into(),
            text: "version = 1\n[plugins.file-reader]\nenv.allow = [\"APP_*\"]\nstdio = [\"stdout\"]\n".into(),
        })
        .without_audit()
        .workdir(site.path(""))
        .env([("APP_MODE".to_string(), "fast".to_string())])
        .without_cache()
        .build()
        .unwrap();
    let plugin = ready(warden.load(example_plugin("file-reader")).unwrap());
    let report = plugin.run(&args(&["env", "APP_MODE"])).unwrap();
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("fast".into())
    );
    assert!(!Path::new(&site.path("log")).exists(), "no log was written");
}

/// A registry loads every plugin of its folder; one it never calls still ends its
/// load's story when it is dropped (`run_end`, outcome `unloaded`), so every run id of
/// the log has exactly one `run_end`.
#[test]
fn a_plugin_loaded_and_never_run_ends_its_load_when_dropped() {
    let site = Site::new(READER_POLICY);
    let dir = plugin_dir(&site);
    {
        let registry = Registry::open(site.warden(), &dir).unwrap();
        let report = registry.call("hello", &args(&["Ada"])).unwrap();
        assert_eq!(report.exit_code(), 0);
    }
    let records = site.records();
    let mut ends: HashMap<String, Vec<String>> = HashMap::new();
    let mut ids = std::collections::BTreeSet::new();
    for r in &records {
        let id = r["run_id"].as_str().unwrap().to_owned();
        ids.insert(id.clone());
        if r["event"] == "run_end" {
            ends.entry(id)
                .or_default()
                .push(r["outcome"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ids.len(), 3, "one load per plugin of the folder");
    for id in &ids {
        assert_eq!(ends.get(id).map(Vec::len), Some(1), "run {id}: {ends:?}");
    }
    let mut outcomes: Vec<&str> = ends.values().map(|v| v[0].as_str()).collect();
    outcomes.sort();
    assert_eq!(outcomes, ["success", "unloaded", "unloaded"]);
    site.verify();
}

/// A file that cannot run never takes a command name from one that can: a module
/// claiming `hello`, refused by the policy's pin and sorting first, leaves `hello` to
/// the pinned plugin. Two ready plugins declaring one name are a clash: neither runs,
/// and both files are named.
#[test]
fn a_refused_plugin_never_takes_the_name_of_a_ready_one() {
    use sha2::Digest as _;
    let pin = hex::encode(sha2::Sha256::digest(example_bytes("hello")));
    let site = Site::new(&format!(
        "version = 1\n[plugins.hello]\nsha256 = \"{pin}\"\nstdio = [\"stdout\"]\n"
    ));
    let dir = site.path("plugins");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("a-squat.wasm"), WatPlugin::new("hello").bytes()).unwrap();
    std::fs::copy(example_plugin("hello"), dir.join("hello.wasm")).unwrap();
    let registry = Registry::open(site.warden(), &dir).unwrap();
    let commands = registry.commands();
    let by_file = |file: &str| {
        commands
            .iter()
            .find(|c| c.path.ends_with(file))
            .unwrap_or_else(|| panic!("{file} not listed: {commands:?}"))
            .status
            .clone()
    };
    assert!(
        matches!(by_file("a-squat.wasm"), CommandStatus::Refused(r) if r.contains("sha256")),
        "{commands:?}"
    );
    assert_eq!(by_file("hello.wasm"), CommandStatus::Ready);
    let report = registry.call("hello", &args(&["Ada"])).unwrap();
    assert_eq!(
        report.result.unwrap(),
        ExecuteResult::Success("Hello, Ada!".into())
    );

    // A second ready copy: a clash, reported with both files, and nothing runs.
    std::fs::copy(example_plugin("hello"), dir.join("hello-copy.wasm")).unwrap();
    registry.refresh().unwrap();
    let commands = registry.commands();
    for file in ["hello.wasm", "hello-copy.wasm"] {
        let status = commands
            .iter()
            .find(|c| c.path.ends_with(file))
            .unwrap()
            .status
            .clone();
        let CommandStatus::Failed(reason) = status else {
            panic!("{file}: {status:?}")
        };
        for named in ["hello.wasm", "hello-copy.wasm"] {
            assert!(
                reason.contains(&format!("{}`", dir.join(named).display())),
                "{reason}"
            );
        }
    }
    let err = registry.call("hello", &[]).unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("hello-copy.wasm"), "{err}");
    registry.warden().flush().unwrap();
    site.verify();
}
