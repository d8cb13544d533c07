//! `fetcher`: reaches the network only through host effects (`HttpGet`, `HttpPost`,
//! `Sleep`), which the host performs and answers through `plugin_resume`.
//!
//! Declares one endpoint, `http://127.0.0.1` on any port (a local server, e.g.
//! `python3 -m http.server 8000 --bind 127.0.0.1`), so that it can be tried on a
//! machine with no network; the policy says which ports it gets. Every
//! failure the host reports (a refused or failed request) becomes a user error with
//! the host's words; the plugin never panics.
//!
//! Commands:
//! - `get URL [NAME:VALUE...]`: one GET; prints the status, the headers and the body.
//! - `post URL BODY [CONTENT-TYPE]`: one POST, likewise.
//! - `sleep MS`: asks the host to sleep, then says so.
//! - `repeat N URL`: N GETs one after the other; prints each status or error.
//! - `echo ARGS...`: prints its arguments, asking for no effect (the same call as
//!   `get` without the request: a baseline for benchmarks).

use sen_plugin_sdk::prelude::*;
use sen_plugin_sdk::{HttpResponse, NetPattern, NetProtocol};
use std::sync::Mutex;

const USAGE: &str = "usage: fetcher get URL [NAME:VALUE...] | post URL BODY [CONTENT-TYPE] | sleep MS | repeat N URL | echo ARGS...";

/// What a `repeat` still has to do (one call's state; every call gets a fresh instance).
struct Repeat {
    url: String,
    left: u32,
    seen: Vec<String>,
}

static REPEAT: Mutex<Option<Repeat>> = Mutex::new(None);

fn show(response: &HttpResponse) -> String {
    let mut out = format!("HTTP {}\n", response.status);
    for (name, value) in &response.headers {
        out.push_str(&format!("{name}: {value}\n"));
    }
    out.push('\n');
    out.push_str(&response.body);
    out
}

fn next_repeat(result: Option<EffectResult>) -> ExecuteResult {
    let Ok(mut guard) = REPEAT.lock() else {
        return ExecuteResult::system_error("state lock poisoned");
    };
    let Some(state) = guard.as_mut() else {
        return ExecuteResult::system_error("resumed without a request in flight");
    };
    match result {
        Some(EffectResult::Http(r)) => state.seen.push(r.status.to_string()),
        Some(EffectResult::Error(e)) => state.seen.push(format!("error: {e}")),
        Some(_) => state.seen.push("unexpected answer".into()),
        None => {}
    }
    if state.left == 0 {
        let lines = state.seen.join("\n");
        return ExecuteResult::success(lines);
    }
    state.left -= 1;
    let id = state.seen.len() as u32;
    ExecuteResult::http_get(id, state.url.clone())
}

struct Fetcher;

impl Plugin for Fetcher {
    fn manifest() -> PluginManifest {
        PluginManifest::new(
            CommandSpec::new("fetcher", "Fetches URLs through the host's network effects")
                .version("1.0.0")
                .arg(ArgSpec::positional("command").help("get, post, sleep or repeat"))
                .arg(ArgSpec::positional("args").help("the command's arguments")),
        )
        .capabilities(Capabilities::default().with_net(vec![NetPattern {
                host: "127.0.0.1".into(),
                port: None,
                protocol: NetProtocol::Http,
            }]))
    }

    fn execute(args: Vec<String>) -> ExecuteResult {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match args.as_slice() {
            ["get", url, headers @ ..] => {
                let mut pairs = Vec::new();
                for h in headers {
                    match h.split_once(':') {
                        Some((name, value)) => pairs.push((name.trim().to_string(), value.trim().to_string())),
                        None => return ExecuteResult::user_error(format!("`{h}` is not NAME:VALUE")),
                    }
                }
                ExecuteResult::Effect(Effect::HttpGet {
                    id: 1,
                    url: url.to_string(),
                    headers: pairs,
                })
            }
            ["post", url, body, rest @ ..] if rest.len() <= 1 => ExecuteResult::Effect(Effect::HttpPost {
                id: 1,
                url: url.to_string(),
                body: body.to_string(),
                content_type: rest.first().map(|c| c.to_string()),
                headers: vec![],
            }),
            ["sleep", ms] => match ms.parse::<u64>() {
                Ok(ms) => ExecuteResult::sleep(1, ms),
                Err(_) => ExecuteResult::user_error(format!("`{ms}` is not a number of milliseconds")),
            },
            ["repeat", n, url] => match n.parse::<u32>() {
                Ok(n) if n > 0 => {
                    if let Ok(mut guard) = REPEAT.lock() {
                        *guard = Some(Repeat {
                            url: url.to_string(),
                            left: n,
                            seen: Vec::new(),
                        });
                    }
                    next_repeat(None)
                }
                _ => ExecuteResult::user_error(format!("`{n}` is not a positive count")),
            },
            ["echo", rest @ ..] => ExecuteResult::success(rest.join(" ")),
            _ => ExecuteResult::user_error(USAGE),
        }
    }

    fn resume(_effect_id: u32, result: EffectResult) -> ExecuteResult {
        let repeating = REPEAT.lock().map(|g| g.is_some()).unwrap_or(false);
        if repeating {
            return next_repeat(Some(result));
        }
        match result {
            EffectResult::Http(response) => ExecuteResult::success(show(&response)),
            EffectResult::SleepComplete => ExecuteResult::success("slept"),
            EffectResult::Error(e) => ExecuteResult::user_error(e),
        }
    }
}

export_plugin!(Fetcher);
