// A check over the sources as text; its fixtures are written with std.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods,
    missing_docs
)]

//! The house rules of `src/`, checked on the sources as text (a check, not a
//! compiler):
//!
//! 1. **No import circle between files.** Every file imports only files below it, so
//!    each can be read without the ones above it. A file imports the file that
//!    *defines* what it names through a `use crate::…`, `use super::…`, `use self::…`
//!    or a child module's name, or through an inline path (`crate::a::B`,
//!    `super::b::c()`, `child::f()`, `alias::X` after `use crate::a;`). A `mod.rs` or
//!    `lib.rs` is the module's table of contents: a name it re-exports (`pub use`)
//!    resolves to the file it re-exports from, its `pub use` lines are imports only
//!    where its own code uses the name, and `mod x;` declarations are not imports.
//!    Comments (doc links included), string literals and `#[cfg(test)]` items (unit
//!    test modules, in the file or in a file of their own) are not read.
//! 2. **No file past 1,000 lines, and none past 800 without a reason.** Lines are
//!    counted up to a `#[cfg(test)] mod tests { … }` that closes the file (unit tests
//!    live next to what they test and do not count). A file of more than 800 lines
//!    says why at its top, in its module doc, on a line starting `//! Size:`.
//!
//! Set `WARDEN_HOUSE_SRC` to check another tree (e.g. an older checkout's `src`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Largest file, in counted lines.
const MAX_LINES: usize = 1000;
/// Largest file that need not say why it is that long.
const QUIET_LINES: usize = 800;
/// How a long file says why it is long.
const SIZE_NOTE: &str = "//! Size:";

// ---------------------------------------------------------------------------------
// Text: comments and literals out, tokens with their line numbers.

/// `text` with every comment, string literal and char literal replaced by spaces
/// (newlines kept, so lines still count).
fn strip(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let blank = |out: &mut String, from: &[char]| {
        for &ch in from {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    let mut i = 0;
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        // Line comment (doc comments included).
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            let end = c[i..]
                .iter()
                .position(|&x| x == '\n')
                .map_or(c.len(), |p| i + p);
            blank(&mut out, &c[i..end]);
            i = end;
            continue;
        }
        // Block comment, nested.
        if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let (mut depth, mut j) = (1, i + 2);
            while j < c.len() && depth > 0 {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &c[i..j.min(c.len())]);
            i = j;
            continue;
        }
        // Raw string: r"…", r#"…"#, br"…", cr"…".
        if !prev_ident && (c[i] == 'r' || (matches!(c[i], 'b' | 'c') && c.get(i + 1) == Some(&'r')))
        {
            let r = if c[i] == 'r' { i } else { i + 1 };
            let hashes = c[r + 1..].iter().take_while(|&&x| x == '#').count();
            if c.get(r + 1 + hashes) == Some(&'"') {
                let body = r + 2 + hashes;
                let mut j = body;
                while j < c.len() {
                    if c[j] == '"'
                        && c[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&x| x == '#')
                            .count()
                            == hashes
                    {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                blank(&mut out, &c[i..j.min(c.len())]);
                i = j;
                continue;
            }
        }
        // String (its `b`/`c` prefix, an identifier character, stays).
        if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(c.len());
            blank(&mut out, &c[i..end]);
            i = end;
            continue;
        }
        // Char literal; a lifetime (`'a`) stays.
        if c[i] == '\'' {
            let end = if c.get(i + 1) == Some(&'\\') {
                c[i + 3..]
                    .iter()
                    .position(|&x| x == '\'')
                    .map(|p| i + 3 + p + 1)
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            if let Some(end) = end {
                blank(&mut out, &c[i..end.min(c.len())]);
                i = end;
                continue;
            }
        }
        out.push(c[i]);
        i += 1;
    }
    out
}

#[derive(Debug, Clone)]
struct Tok {
    text: String,
    line: usize,
}

/// Identifiers, `::` and single punctuation characters of stripped text.
fn tokens(stripped: &str) -> Vec<Tok> {
    let c: Vec<char> = stripped.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch.is_alphabetic() || ch == '_' {
            let start = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            let mut text: String = c[start..i].iter().collect();
            // `r#type` is `type` as a name.
            if text == "r"
                && c.get(i) == Some(&'#')
                && c.get(i + 1).is_some_and(|x| x.is_alphabetic())
            {
                let s = i + 1;
                i = s;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                text = c[s..i].iter().collect();
            }
            out.push(Tok { text, line });
        } else if ch.is_ascii_digit() {
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
        } else if ch == ':' && c.get(i + 1) == Some(&':') {
            out.push(Tok {
                text: "::".into(),
                line,
            });
            i += 2;
        } else {
            out.push(Tok {
                text: ch.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Index just past the item that starts at `i`: its `;`, or the `}` that closes its
/// body (and a `;` right after).
fn item_end(toks: &[Tok], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < toks.len() {
        match toks[i].text.as_str() {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" => depth -= 1,
            "}" => {
                depth -= 1;
                if depth <= 0 {
                    i += 1;
                    if toks.get(i).is_some_and(|t| t.text == ";") {
                        i += 1;
                    }
                    return i;
                }
            }
            ";" if depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Index just past an attribute `#[…]` starting at `i`.
fn attr_end(toks: &[Tok], i: usize) -> usize {
    let mut j = i + 1;
    if toks.get(j).is_some_and(|t| t.text == "!") {
        j += 1;
    }
    let mut depth = 0;
    while j < toks.len() {
        match toks[j].text.as_str() {
            "[" => depth += 1,
            "]" => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

fn is_cfg_test(toks: &[Tok], i: usize) -> bool {
    let want = ["#", "[", "cfg", "(", "test", ")", "]"];
    toks.len() >= i + want.len() && want.iter().zip(&toks[i..]).all(|(w, t)| *w == t.text)
}

/// The tokens without `#[cfg(test)]` items, and the names of the modules those items
/// declared out of line (`#[cfg(test)] mod tests;`).
fn without_test_items(toks: Vec<Tok>) -> (Vec<Tok>, Vec<String>) {
    let mut out = Vec::with_capacity(toks.len());
    let mut test_modules = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        if is_cfg_test(&toks, i) {
            let mut j = attr_end(&toks, i);
            while toks.get(j).is_some_and(|t| t.text == "#") {
                j = attr_end(&toks, j);
            }
            let end = item_end(&toks, j);
            let item: Vec<&str> = toks[j..end].iter().map(|t| t.text.as_str()).collect();
            if let Some(p) = item.iter().position(|t| *t == "mod")
                && item.get(p + 2) == Some(&";")
            {
                test_modules.push(item[p + 1].to_owned());
            }
            i = end;
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    (out, test_modules)
}

// ---------------------------------------------------------------------------------
// Files and what each defines, binds and names.

/// One leaf of a `use` tree.
#[derive(Debug, Clone)]
struct UseLeaf {
    /// The path as written, `self` leaves folded into their prefix.
    path: Vec<String>,
    /// The name it binds (`None` for a glob).
    binding: Option<String>,
    line: usize,
}

/// Parses the use tree at `i` (just past `use`), pushing its leaves onto `out`;
/// returns the index past the tree.
fn use_tree(toks: &[Tok], mut i: usize, prefix: &[String], out: &mut Vec<UseLeaf>) -> usize {
    let mut path = prefix.to_vec();
    let line = toks.get(i).map_or(0, |t| t.line);
    if toks.get(i).is_some_and(|t| t.text == "::") {
        i += 1;
    }
    loop {
        let Some(t) = toks.get(i) else { return i };
        match t.text.as_str() {
            "{" => {
                i += 1;
                while toks.get(i).is_some_and(|t| t.text != "}") {
                    i = use_tree(toks, i, &path, out);
                    if toks.get(i).is_some_and(|t| t.text == ",") {
                        i += 1;
                    }
                }
                return i + 1;
            }
            "*" => {
                out.push(UseLeaf {
                    path,
                    binding: None,
                    line,
                });
                return i + 1;
            }
            "self" if !path.is_empty() && toks.get(i + 1).is_none_or(|t| t.text != "::") => {
                i += 1;
            }
            name if is_ident(name) => {
                path.push(name.to_owned());
                i += 1;
                if toks.get(i).is_some_and(|t| t.text == "::") {
                    i += 1;
                    continue;
                }
            }
            _ => return i,
        }
        // The end of a simple path: an optional `as NAME`.
        let mut binding = path.last().cloned();
        if toks.get(i).is_some_and(|t| t.text == "as") {
            binding = toks.get(i + 1).map(|t| t.text.clone());
            i += 2;
        }
        out.push(UseLeaf {
            path,
            binding,
            line,
        });
        return i;
    }
}

#[derive(Debug, Default)]
struct SrcFile {
    /// Relative to the root's parent (`src/audit/log.rs`).
    name: String,
    /// Module path (`["audit", "log"]`; `[]` for `lib.rs`).
    module: Vec<String>,
    toks: Vec<Tok>,
    /// Names defined at the file's top level (items, inline and declared modules).
    defines: BTreeSet<String>,
    /// Top-level `use` bindings: name -> the path as written.
    binds: BTreeMap<String, Vec<String>>,
    /// Top-level glob `use`s, as written.
    globs: Vec<Vec<String>>,
    /// Every `use` leaf anywhere, with whether it is a re-export (`pub …`), and the
    /// module it is written in.
    uses: Vec<(UseLeaf, bool, Vec<String>)>,
    /// Token indices inside `use` declarations.
    in_use: BTreeSet<usize>,
    /// For each token, the module it is written in (inline modules included).
    module_at: Vec<Vec<String>>,
    /// Counted lines and whether the module doc says why there are many.
    lines: usize,
    size_note: bool,
}

fn parse_file(name: String, module: Vec<String>, text: &str) -> (SrcFile, Vec<String>) {
    let all = tokens(&strip(text));
    let (toks, test_modules) = without_test_items(all.clone());
    let mut f = SrcFile {
        name,
        module,
        ..SrcFile::default()
    };
    // Lines: up to a `#[cfg(test)] mod tests { … }` that closes the file.
    f.lines = text.lines().count();
    if let Some(i) = (0..all.len()).rev().find(|&i| is_cfg_test(&all, i)) {
        let mut j = attr_end(&all, i);
        while all.get(j).is_some_and(|t| t.text == "#") {
            j = attr_end(&all, j);
        }
        if all.get(j).is_some_and(|t| t.text == "mod") && item_end(&all, j) == all.len() {
            f.lines = all[i].line - 1;
        }
    }
    // The note belongs to the module doc, before the first line of code.
    f.size_note = text
        .lines()
        .take_while(|l| l.starts_with("//") || l.trim().is_empty())
        .any(|l| l.starts_with(SIZE_NOTE));

    // Walk: depth, inline modules, definitions, uses.
    let mut depth = 0usize;
    // Inline modules open here, each with the depth inside its braces.
    let mut stack: Vec<(String, usize)> = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let mut here = f.module.clone();
        here.extend(stack.iter().map(|(n, _)| n.clone()));
        let top = depth == 0;
        match toks[i].text.as_str() {
            "{" => depth += 1,
            "}" => {
                if stack.last().is_some_and(|(_, d)| *d == depth) {
                    stack.pop();
                }
                depth = depth.saturating_sub(1);
            }
            "use" => {
                let public = (1..=6)
                    .filter_map(|back| i.checked_sub(back).map(|k| toks[k].text.as_str()))
                    .take_while(|t| *t != ";" && *t != "}" && *t != "{")
                    .any(|t| t == "pub");
                let mut leaves = Vec::new();
                let end = use_tree(&toks, i + 1, &[], &mut leaves);
                for k in i..end {
                    f.in_use.insert(k);
                    f.module_at.push(here.clone());
                }
                for leaf in leaves {
                    if top {
                        match &leaf.binding {
                            Some(b) if b != "_" => {
                                f.binds.insert(b.clone(), leaf.path.clone());
                            }
                            Some(_) => {}
                            None => f.globs.push(leaf.path.clone()),
                        }
                    }
                    f.uses.push((leaf, public, here.clone()));
                }
                i = end;
                continue;
            }
            "mod" => {
                if let Some(n) = toks.get(i + 1).filter(|n| is_ident(&n.text)) {
                    if top {
                        f.defines.insert(n.text.clone());
                    }
                    if toks.get(i + 2).is_some_and(|b| b.text == "{") {
                        stack.push((n.text.clone(), depth + 1));
                    }
                }
            }
            "fn" | "struct" | "enum" | "const" | "static" | "trait" | "type" | "union" => {
                if top && let Some(n) = toks.get(i + 1).filter(|n| is_ident(&n.text)) {
                    f.defines.insert(n.text.clone());
                }
            }
            "macro_rules" => {
                if let Some(n) = toks.get(i + 2) {
                    f.defines.insert(n.text.clone());
                }
            }
            _ => {}
        }
        f.module_at.push(here);
        i += 1;
    }
    f.toks = toks;
    (f, test_modules)
}

struct Tree {
    files: Vec<SrcFile>,
    /// Module path -> index of the file that is that module.
    by_module: BTreeMap<Vec<String>, usize>,
}

/// Where a path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A file module itself (a use of it names nothing yet).
    Module(usize),
    /// The file that defines the item.
    Item(usize),
    /// The file the path reaches, where no definition was found (a variant, a macro's
    /// item, a re-export of another crate's item).
    Unsure(usize),
}

impl Target {
    fn file(self) -> usize {
        match self {
            Target::Module(f) | Target::Item(f) | Target::Unsure(f) => f,
        }
    }
}

impl Tree {
    fn read(root: &Path) -> Tree {
        let mut paths = Vec::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    paths.push(p);
                }
            }
        }
        paths.sort();
        let top = root.file_name().unwrap().to_string_lossy().into_owned();
        let mut files = Vec::new();
        let mut test_only: BTreeSet<Vec<String>> = BTreeSet::new();
        for p in paths {
            let rel = p.strip_prefix(root).unwrap();
            let mut module: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|l| l == "mod") {
                module.pop();
            }
            if module == ["lib"] {
                module.clear();
            }
            if module == ["main"] {
                // The binary's root: its own crate, which names the library `warden::`.
                module = vec!["#main".into()];
            }
            let text = std::fs::read_to_string(&p).unwrap();
            let name = format!("{top}/{}", rel.display());
            let (f, tests) = parse_file(name, module.clone(), &text);
            for t in tests {
                let mut m = if module == ["#main"] {
                    vec![]
                } else {
                    module.clone()
                };
                m.push(t);
                test_only.insert(m);
            }
            files.push(f);
        }
        files.retain(|f| !test_only.iter().any(|t| f.module.starts_with(t)));
        let by_module = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        Tree { files, by_module }
    }

    /// `path` as written in module `at` made absolute from the crate root, or `None`
    /// when it leaves the crate (std, a dependency) or stays inside the file.
    fn absolute(&self, at: &[String], path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?.as_str();
        match first {
            "crate" | "warden" => Some(path[1..].to_vec()),
            "super" => {
                let ups = path.iter().take_while(|s| *s == "super").count();
                let base = at.get(..at.len().checked_sub(ups)?)?;
                let mut out = base.to_vec();
                out.extend_from_slice(&path[ups..]);
                Some(out)
            }
            "self" => {
                let mut out = at.to_vec();
                out.extend_from_slice(&path[1..]);
                Some(out)
            }
            _ => {
                // A child module of this one, by its name.
                let mut child = at.to_vec();
                child.push(first.to_owned());
                let is_child = self.by_module.contains_key(&child)
                    || self.by_module.keys().any(|m| m.starts_with(&child));
                is_child.then(|| {
                    let mut out = at.to_vec();
                    out.extend_from_slice(path);
                    out
                })
            }
        }
    }

    /// The file that defines what the absolute `path` names.
    fn resolve(&self, path: &[String], hops: usize) -> Option<Target> {
        if hops > 16 {
            return None;
        }
        let (file, rest) = (0..=path.len())
            .rev()
            .find_map(|n| self.by_module.get(&path[..n]).map(|&f| (f, &path[n..])))?;
        let Some(name) = rest.first() else {
            return Some(Target::Module(file));
        };
        let f = &self.files[file];
        if f.defines.contains(name) {
            return Some(Target::Item(file));
        }
        if let Some(written) = f.binds.get(name) {
            return Some(match self.absolute(&f.module, written) {
                Some(mut abs) => {
                    abs.extend_from_slice(&rest[1..]);
                    self.resolve(&abs, hops + 1).unwrap_or(Target::Unsure(file))
                }
                None => Target::Unsure(file),
            });
        }
        for glob in &f.globs {
            if let Some(mut abs) = self.absolute(&f.module, glob) {
                abs.extend_from_slice(rest);
                if let Some(t @ Target::Item(_)) = self.resolve(&abs, hops + 1) {
                    return Some(t);
                }
            }
        }
        Some(Target::Unsure(file))
    }

    /// Every import of every file: (from, to) -> the first place that makes it.
    fn edges(&self) -> BTreeMap<(usize, usize), String> {
        let mut edges = BTreeMap::new();
        for (from, f) in self.files.iter().enumerate() {
            let mut add = |to: usize, why: String| {
                if to != from {
                    edges.entry((from, to)).or_insert(why);
                }
            };
            let show = |p: &[String], line: usize| format!("`{}` at line {line}", p.join("::"));
            // Names that stand for a module here: child modules, and `use`d modules.
            let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for m in self.by_module.keys() {
                if m.len() == f.module.len() + 1 && m.starts_with(&f.module) {
                    aliases.insert(m[m.len() - 1].clone(), m.clone());
                }
            }
            for (leaf, public, at) in &f.uses {
                let Some(abs) = self.absolute(at, &leaf.path) else {
                    continue;
                };
                let Some(target) = self.resolve(&abs, 0) else {
                    continue;
                };
                match (target, &leaf.binding) {
                    (Target::Module(_), Some(b)) => {
                        aliases.insert(b.clone(), abs.clone());
                    }
                    (Target::Module(_), None) if *public => {}
                    (Target::Module(m), None) => add(m, show(&leaf.path, leaf.line)),
                    (t, binding) => {
                        // A re-export is an import only where this file's code uses it.
                        let used_here = !*public
                            || binding.as_ref().is_some_and(|b| {
                                f.toks
                                    .iter()
                                    .enumerate()
                                    .any(|(k, t)| t.text == *b && !f.in_use.contains(&k))
                            });
                        if used_here {
                            add(t.file(), show(&leaf.path, leaf.line));
                        }
                    }
                }
            }
            // Inline paths: `crate::…`, `super::…`, `self::…`, `alias::…`.
            let toks = &f.toks;
            let mut k = 0;
            while k < toks.len() {
                let starts = !f.in_use.contains(&k)
                    && toks.get(k + 1).is_some_and(|t| t.text == "::")
                    && (k == 0 || toks[k - 1].text != "::")
                    && (matches!(toks[k].text.as_str(), "crate" | "super" | "self" | "warden")
                        || aliases.contains_key(&toks[k].text));
                if !starts {
                    k += 1;
                    continue;
                }
                let mut path = vec![toks[k].text.clone()];
                let mut j = k + 1;
                while toks.get(j).is_some_and(|t| t.text == "::")
                    && toks.get(j + 1).is_some_and(|t| is_ident(&t.text))
                {
                    path.push(toks[j + 1].text.clone());
                    j += 2;
                }
                let abs = match aliases.get(&path[0]) {
                    Some(m) if !matches!(path[0].as_str(), "crate" | "super" | "self") => {
                        let mut a = m.clone();
                        a.extend_from_slice(&path[1..]);
                        Some(a)
                    }
                    _ => self.absolute(&f.module_at[k], &path),
                };
                if let Some(target) = abs.and_then(|a| self.resolve(&a, 0))
                    && !matches!(target, Target::Module(_))
                {
                    add(target.file(), show(&path, toks[k].line));
                }
                k = j;
            }
        }
        edges
    }
}

/// Every import circle of the tree at `root`, each as `a -> b -> … -> a` with what
/// makes each step.
fn circles(root: &Path) -> Vec<String> {
    let tree = Tree::read(root);
    let edges = tree.edges();
    let n = tree.files.len();
    let mut next: Vec<Vec<usize>> = vec![Vec::new(); n];
    for &(a, b) in edges.keys() {
        next[a].push(b);
    }
    // Tarjan's strongly connected components.
    struct State {
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        counter: usize,
        found: Vec<Vec<usize>>,
    }
    fn visit(v: usize, next: &[Vec<usize>], s: &mut State) {
        s.index[v] = Some(s.counter);
        s.low[v] = s.counter;
        s.counter += 1;
        s.stack.push(v);
        s.on[v] = true;
        for &w in &next[v] {
            match s.index[w] {
                None => {
                    visit(w, next, s);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        counter: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(v, &next, &mut s);
        }
    }
    let mut out = Vec::new();
    for component in s.found {
        let inside: BTreeSet<usize> = component.iter().copied().collect();
        let start = *inside.iter().next().unwrap();
        // The shortest way round from `start`, within the component.
        let mut came: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut last = None;
        'search: while let Some(v) = queue.pop_front() {
            for &w in &next[v] {
                if w == start {
                    last = Some(v);
                    break 'search;
                }
                if inside.contains(&w) && !came.contains_key(&w) {
                    came.insert(w, v);
                    queue.push_back(w);
                }
            }
        }
        let mut back = Vec::new();
        let mut v = last.unwrap();
        while v != start {
            back.push(v);
            v = came[&v];
        }
        let mut way = vec![start];
        way.extend(back.into_iter().rev());
        way.push(start);
        let mut text = format!("import circle among {} files: ", inside.len());
        for pair in way.windows(2) {
            let why = &edges[&(pair[0], pair[1])];
            let _ = write!(text, "{} -> ({}) ", tree.files[pair[0]].name, why);
        }
        let _ = write!(
            text,
            "{}; the circle's files: {}",
            tree.files[start].name,
            inside
                .iter()
                .map(|&i| tree.files[i].name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        out.push(text);
    }
    out.sort();
    out
}

/// Every file of the tree at `root` that is too long.
fn oversized(root: &Path) -> Vec<String> {
    let tree = Tree::read(root);
    let mut out = Vec::new();
    for f in &tree.files {
        if f.lines > MAX_LINES {
            out.push(format!(
                "{} has {} lines, more than {MAX_LINES}: split it by concept",
                f.name, f.lines
            ));
        } else if f.lines > QUIET_LINES && !f.size_note {
            out.push(format!(
                "{} has {} lines, more than {QUIET_LINES}, and its module doc has no `{SIZE_NOTE}` line saying why",
                f.name, f.lines
            ));
        }
    }
    out
}

fn src() -> PathBuf {
    match std::env::var_os("WARDEN_HOUSE_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    }
}

#[test]
fn no_file_of_src_imports_a_file_that_imports_it_back() {
    let found = circles(&src());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn no_file_of_src_is_too_long_to_hold_in_mind() {
    let found = oversized(&src());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The import graph, for reading (`cargo test --test house -- --ignored --nocapture`).
#[test]
#[ignore = "prints the graph; nothing to check"]
fn print_the_import_graph() {
    let tree = Tree::read(&src());
    for ((a, b), why) in tree.edges() {
        println!("{} -> {} : {why}", tree.files[a].name, tree.files[b].name);
    }
}

// ---------------------------------------------------------------------------------
// The check itself, on small trees made for it.

fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join("src").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn circles_in(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tree(files);
    circles(&dir.path().join("src"))
}

#[test]
fn a_circle_through_use_and_an_inline_path_is_named() {
    let found = circles_in(&[
        ("lib.rs", "pub mod a;\npub mod b;\n"),
        ("a.rs", "use crate::b::B;\npub struct A(B);\n"),
        ("b.rs", "pub struct B;\npub fn f(_: crate::a::A) {}\n"),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "import circle among 2 files: src/a.rs -> (`crate::b::B` at line 1) src/b.rs -> (`crate::a::A` at line 2) src/a.rs"
        ),
        "{}",
        found[0]
    );
}

#[test]
fn a_circle_through_a_table_of_contents_reaches_the_defining_file() {
    // `super::Thing` names what `mod.rs` re-exports from `low.rs`; `low.rs` uses
    // `high.rs`: a circle between the two files, not with `mod.rs`.
    let found = circles_in(&[
        ("lib.rs", "pub mod m;\n"),
        ("m/mod.rs", "mod high;\nmod low;\npub use low::Thing;\n"),
        (
            "m/high.rs",
            "use super::Thing;\npub fn up() -> Thing { Thing }\n",
        ),
        (
            "m/low.rs",
            "pub struct Thing;\nfn f() { super::high::up(); }\n",
        ),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("src/m/high.rs, src/m/low.rs"),
        "{}",
        found[0]
    );
}

#[test]
fn module_aliases_and_child_modules_are_followed() {
    let found = circles_in(&[
        ("lib.rs", "pub mod p;\npub mod q;\n"),
        ("p/mod.rs", "mod inner;\npub fn g() { inner::h(); }\n"),
        ("p/inner.rs", "use crate::q;\npub fn h() { q::k(); }\n"),
        ("q.rs", "pub fn k() { crate::p::g(); }\n"),
    ]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("src/p/inner.rs, src/p/mod.rs, src/q.rs"),
        "{}",
        found[0]
    );
}

#[test]
fn comments_strings_tests_and_re_exports_are_not_imports() {
    let found = circles_in(&[
        ("lib.rs", "pub mod a;\npub mod b;\npub use a::A;\n"),
        (
            "a.rs",
            "//! See [`crate::b::B`].\n/* crate::b::B */\npub struct A;\nconst S: &str = \"crate::b::B\";\nconst C: char = '\"';\n#[cfg(test)]\nmod tests {\n    use crate::b::B;\n}\n#[cfg(test)]\nmod more;\n",
        ),
        ("a/more.rs", "use crate::b::B;\n"),
        ("b.rs", "use crate::A;\npub struct B(A);\n"),
    ]);
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn long_files_need_a_reason_and_very_long_ones_a_split() {
    let body = |n: usize| "fn f() {}\n".repeat(n);
    let tests = format!(
        "#[cfg(test)]\nmod tests {{\n{}}}\n",
        "    fn t() {}\n".repeat(500)
    );
    let dir = tree(&[
        ("lib.rs", "mod fine;\nmod noted;\nmod quiet;\nmod huge;\n"),
        ("fine.rs", &format!("{}{tests}", body(790))),
        (
            "noted.rs",
            &format!("//! What.\n//!\n//! Size: one table.\n{}", body(900)),
        ),
        ("quiet.rs", &body(801)),
        (
            "huge.rs",
            &format!("//! Size: too big anyway.\n{}", body(1000)),
        ),
    ]);
    let found = oversized(&dir.path().join("src"));
    assert_eq!(
        found,
        [
            "src/huge.rs has 1001 lines, more than 1000: split it by concept",
            "src/quiet.rs has 801 lines, more than 800, and its module doc has no `//! Size:` line saying why",
        ]
    );
}
