//! `hello`: the smallest possible sen-plugin. Requests no capabilities.

use sen_plugin_sdk::prelude::*;

struct Hello;

impl Plugin for Hello {
    fn manifest() -> PluginManifest {
        PluginManifest::new(
            CommandSpec::new("hello", "Says hello")
                .version("1.0.0")
                .arg(
                    ArgSpec::positional("name")
                        .help("Name to greet")
                        .default("World"),
                ),
        )
    }

    fn execute(args: Vec<String>) -> ExecuteResult {
        let name = args.first().map(String::as_str).unwrap_or("World");
        ExecuteResult::success(format!("Hello, {name}!"))
    }
}

export_plugin!(Hello);
