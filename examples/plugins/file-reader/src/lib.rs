//! `file-reader`: exercises read-only capabilities (fs_read `./data`,
//! env_read `HOME` / `APP_*`, stdout).
//!
//! Inside the sandbox the host is expected to preopen the granted `./data`
//! directory as `/data`, so relative paths given to this plugin are resolved
//! under `/data`.

use sen_plugin_sdk::prelude::*;

const USAGE: &str = "usage: file-reader read PATH | env NAME | env-all | list DIR | print TEXT";

/// Relative paths are joined onto `/data`; absolute paths are used verbatim.
fn resolve(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/data/{path}")
    }
}

fn read(path: &str) -> ExecuteResult {
    match std::fs::read(resolve(path)) {
        Ok(bytes) => ExecuteResult::success(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) => ExecuteResult::user_error(format!("cannot read {path}: {e}")),
    }
}

fn env(name: &str) -> ExecuteResult {
    match std::env::var_os(name) {
        Some(v) => ExecuteResult::success(v.to_string_lossy().into_owned()),
        None => ExecuteResult::success("<unset>"),
    }
}

fn env_all() -> ExecuteResult {
    let mut vars: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    vars.sort();
    ExecuteResult::success(vars.join("\n"))
}

fn list(dir: &str) -> ExecuteResult {
    let entries = match std::fs::read_dir(resolve(dir)) {
        Ok(it) => it,
        Err(e) => return ExecuteResult::user_error(format!("cannot list {dir}: {e}")),
    };
    let mut names = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => names.push(entry.file_name().to_string_lossy().into_owned()),
            Err(e) => return ExecuteResult::user_error(format!("cannot list {dir}: {e}")),
        }
    }
    names.sort();
    ExecuteResult::success(names.join("\n"))
}

fn print(text: &str) -> ExecuteResult {
    // Plain `println!`, as a typical plugin would write it. Note that std
    // treats EBADF on stdout (no fd 1) as success; any other write error
    // panics, which with panic = "abort" becomes a wasm trap.
    println!("{text}");
    ExecuteResult::success("printed")
}

struct FileReader;

impl Plugin for FileReader {
    fn manifest() -> PluginManifest {
        PluginManifest::with_capabilities(
            CommandSpec::new(
                "file-reader",
                "Reads files under ./data and allowed env vars",
            )
            .version("1.0.0")
            .arg(
                ArgSpec::positional("action")
                    .required()
                    .help("read | env | env-all | list | print"),
            )
            .arg(ArgSpec::positional("arg").help("PATH, NAME, DIR or TEXT for the action")),
            Capabilities::default()
                .with_fs_read(vec![PathPattern::new("./data").recursive()])
                .with_env_read(vec!["HOME".into(), "APP_*".into()])
                .with_stdio(StdioCapability::stdout_only()),
        )
    }

    fn execute(args: Vec<String>) -> ExecuteResult {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["read", path] => read(path),
            ["env", name] => env(name),
            ["env-all"] => env_all(),
            ["list", dir] => list(dir),
            ["print", text] => print(text),
            _ => ExecuteResult::user_error(USAGE),
        }
    }
}

export_plugin!(FileReader);
