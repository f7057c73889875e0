//! The library's layers, checked from its own source: every path a file of `src/` names
//! inside the crate (`use crate::…`, `use super::…`, a child module, or `crate::…` written
//! inline) is an edge from that file's top-level module to the target's, and each edge must
//! be in [`ALLOWED`]. Three more rules keep the picture honest:
//! - a name is imported from the module that defines it, not through a re-export (the
//!   re-exports of `lib.rs` are the public API, not a shortcut for the crate's own files);
//! - no two files import each other, directly or round a circle (test code excepted: a test
//!   module imports the code it tests);
//! - every top-level module is in the table, so a new one has to be placed.
//!
//! The picture, bottom to top (docs/design.md, "Layers"):
//! ```text
//!   lab, CLI (other crates)
//!   API:        options, loan, conn, pubsub, inbox, typed, bridge, async_io   (+ inspect)
//!   transports: shm          net          (side by side, never importing each other)
//!   bottom:     vocabulary, endpoint, error, sys, sync
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use shmsock_testkit::source::{assert_no_findings, code_only, is_ident, rust_files};

/// The bottom layer: what every layer above may use.
const BOTTOM: [&str; 7] = [
    "vocabulary",
    "handover",
    "endpoint",
    "error",
    "sys",
    "sync",
    "test_support",
];

/// Each top-level module of `src/` and the top-level modules it may import, besides itself
/// and [`BOTTOM`] (for modules above the bottom). `lib` is `src/lib.rs`, which may import
/// everything: it only declares modules and re-exports the API.
const ALLOWED: &[(&str, &[&str])] = &[
    // Bottom: atomics, syscalls, errors, endpoint strings, and the words every layer shares.
    ("sync", &[]),
    ("sys", &["sync"]),
    ("error", &[]),
    ("endpoint", &["error"]),
    ("vocabulary", &["error"]),
    // What the two transports share to move a connection to shared memory.
    ("handover", &["endpoint"]),
    ("test_support", &[]),
    // Transports, side by side.
    ("shm", &[]),
    ("net", &[]),
    // Reads the shm transport's runtime state from outside (`shmsock ls`).
    ("inspect", &["shm"]),
    // The API.
    ("options", &["shm", "net"]),
    ("loan", &["shm", "net"]),
    ("typed", &[]),
    ("conn", &["shm", "net", "options", "loan", "typed"]),
    ("inbox", &["shm", "net", "options", "loan", "conn", "typed"]),
    ("upgrade", &["shm", "net"]),
    (
        "pubsub",
        &["shm", "net", "options", "loan", "typed", "upgrade"],
    ),
    ("bridge", &["pubsub", "options"]),
    (
        "async_io",
        &["shm", "net", "options", "loan", "conn", "pubsub"],
    ),
    ("hostile_tests", &["shm", "conn", "options"]),
    ("fence_ask_tests", &["shm", "conn", "options"]),
];

/// One place a file names a module of the crate.
#[derive(Debug, Clone)]
struct Edge {
    /// The file, relative to `src/`.
    file: String,
    line: usize,
    /// The importing file's module path (`shm::conn`).
    from: Vec<String>,
    /// The full path named (`crate::shm::ring::Header` as `["shm", "ring", "Header"]`).
    path: Vec<String>,
    /// Whether the place is test code (a `tests` module or a test file).
    test: bool,
}

/// A source file and the module path it defines.
struct Module {
    file: String,
    path: Vec<String>,
    text: String,
}

fn modules(src: &Path) -> Vec<Module> {
    rust_files(src, 2)
        .into_iter()
        .map(|f| {
            let stem = f.rel.trim_end_matches(".rs");
            let mut path: Vec<String> = stem.split('/').map(str::to_owned).collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
                path.pop();
            }
            Module {
                file: f.rel,
                path,
                text: f.text,
            }
        })
        .collect()
}

/// Expands one `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand_use(tree: &str) -> Vec<Vec<String>> {
    fn split_top(s: &str) -> Vec<&str> {
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in s.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        parts
    }
    let tree: String = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let tree = tree.trim();
    if tree.is_empty() {
        return Vec::new();
    }
    match tree.find('{') {
        None => {
            let plain = tree.split(" as ").next().unwrap_or(tree).trim();
            vec![plain
                .split("::")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()]
        }
        Some(open) => {
            let prefix: Vec<String> = tree[..open]
                .split("::")
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let mut out = Vec::new();
            for part in split_top(inner) {
                for mut rest in expand_use(part) {
                    if rest.first().is_some_and(|s| s == "self") {
                        rest.remove(0);
                    }
                    let mut full = prefix.clone();
                    full.append(&mut rest);
                    out.push(full);
                }
            }
            out
        }
    }
}

/// Every path of `module` that names something of the crate, resolved to an absolute path.
fn edges_of(module: &Module, known: &BTreeSet<Vec<String>>) -> Vec<Edge> {
    let code = code_only(&module.text);
    let line_of = |pos: usize| code[..pos].matches('\n').count() + 1;
    let test_file = module
        .path
        .last()
        .is_some_and(|m| m == "tests" || m.ends_with("_tests"));

    // Inline `mod name {` blocks: (open brace position, close brace position, name, test?).
    let mut inline: Vec<(usize, usize, String, bool)> = Vec::new();
    for at in word_starts(&code, "mod ") {
        let rest = &code[at + 4..];
        let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
        let after = rest[name.len()..].trim_start();
        if name.is_empty() || !after.starts_with('{') {
            continue;
        }
        let open = at + 4 + name.len() + (rest[name.len()..].len() - after.len());
        let mut depth = 0;
        let mut close = code.len();
        for (i, c) in code[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        let before = &code[..at];
        let attr_test = before
            .trim_end()
            .rsplit('\n')
            .take(3)
            .any(|l| l.contains("cfg(") && l.contains("test"));
        inline.push((open, close, name.clone(), attr_test || name == "tests"));
    }
    let scope = |pos: usize| {
        let mut path = module.path.clone();
        let mut test = test_file;
        for (open, close, name, is_test) in &inline {
            if *open < pos && pos < *close {
                path.push(name.clone());
                test |= *is_test;
            }
        }
        (path, test)
    };

    let resolve = |from: &[String], path: &[String]| -> Option<Vec<String>> {
        let first = path.first()?;
        match first.as_str() {
            "crate" => Some(path[1..].to_vec()),
            "super" | "self" => {
                let mut base = from.to_vec();
                let mut rest = path;
                while let Some(seg) = rest.first() {
                    match seg.as_str() {
                        "super" => {
                            base.pop()?;
                        }
                        "self" => {}
                        _ => break,
                    }
                    rest = &rest[1..];
                }
                base.extend(rest.iter().cloned());
                Some(base)
            }
            _ => {
                // A child module named without `self::` (2018 paths).
                let mut child = from.to_vec();
                child.push(first.clone());
                known.contains(&child).then(|| {
                    let mut full = from.to_vec();
                    full.extend(path.iter().cloned());
                    full
                })
            }
        }
    };

    let mut edges = Vec::new();
    let mut use_spans = Vec::new();
    // `use` statements.
    for at in word_starts(&code, "use ") {
        let Some(end) = code[at..].find(';').map(|e| at + e) else {
            continue;
        };
        use_spans.push((at, end));
        let (from, test) = scope(at);
        for path in expand_use(&code[at + 4..end]) {
            if let Some(abs) = resolve(&from, &path) {
                edges.push(Edge {
                    file: module.file.clone(),
                    line: line_of(at),
                    from: from.clone(),
                    path: abs,
                    test,
                });
            }
        }
    }
    // Inline paths: `crate::a::b` and `super::a` outside `use` statements.
    for anchor in ["crate::", "super::"] {
        for at in word_starts(&code, anchor) {
            if anchor == "super::" && at >= 2 && &code[at - 2..at] == "::" {
                continue; // the tail of super::super::…, counted from its head
            }
            if use_spans.iter().any(|&(s, e)| s <= at && at < e) {
                continue;
            }
            let tail: String = code[at..]
                .chars()
                .take_while(|&c| is_ident(c) || c == ':')
                .collect();
            let path: Vec<String> = tail
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            let (from, test) = scope(at);
            if let Some(abs) = resolve(&from, &path) {
                edges.push(Edge {
                    file: module.file.clone(),
                    line: line_of(at),
                    from,
                    path: abs,
                    test,
                });
            }
        }
    }
    edges
}

/// The names a module re-exports from elsewhere in the crate (`pub use crate::…::Name`,
/// `pub(crate) use child::{A, B as C}`). Re-exports of other crates' items (the atomics
/// facade of `sync.rs`) define the name for this crate and are not counted.
fn reexports(module: &Module, known: &BTreeSet<Vec<String>>) -> BTreeSet<String> {
    let code = code_only(&module.text);
    let mut names = BTreeSet::new();
    let mut search = 0;
    while let Some(k) = code[search..].find("use ") {
        let at = search + k;
        search = at + 4;
        let head = code[..at].trim_end();
        if !(head.ends_with("pub") || head.ends_with(')') && head.contains("pub(")) {
            continue;
        }
        let Some(end) = code[at..].find(';').map(|e| at + e) else {
            continue;
        };
        let tree: String = code[at + 4..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let head = tree.split("::").next().unwrap_or("").trim();
        let mut child = module.path.clone();
        child.push(head.to_owned());
        if !matches!(head, "crate" | "super" | "self") && !known.contains(&child) {
            continue;
        }
        for part in tree.split([',', '{', '}']) {
            let part = part.trim();
            let name = match part.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => part.rsplit("::").next().unwrap_or(part).trim(),
            };
            if !name.is_empty() && name != "self" && name != "*" {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

/// The longest prefix of `path` that is a module of the crate.
fn target_module<'a>(path: &[String], known: &'a BTreeSet<Vec<String>>) -> Option<&'a Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| known.get(&path[..n].to_vec()))
}

fn top(path: &[String]) -> &str {
    path.first().map_or("lib", String::as_str)
}

/// Where `word` stands in `code` as a word of its own: not the tail of an identifier or
/// of a macro variable (`$crate::`).
fn word_starts<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    code.match_indices(word).map(|(at, _)| at).filter(|&at| {
        let before = code[..at].chars().next_back();
        !before.is_some_and(|c| is_ident(c) || c == '$')
    })
}

/// Everything that runs against the layering, as `src/FILE:LINE: what`.
fn violations(src: &Path) -> Vec<String> {
    let mods = modules(src);
    let known: BTreeSet<Vec<String>> = mods.iter().map(|m| m.path.clone()).collect();
    let by_path: BTreeMap<&Vec<String>, &Module> = mods.iter().map(|m| (&m.path, m)).collect();
    let table: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut bad = BTreeSet::new();

    for m in &mods {
        let t = top(&m.path);
        if t != "lib" && !table.contains_key(t) {
            bad.insert(format!(
                "src/{}:1: top-level module `{t}` is not in the layering table (tests/layers.rs)",
                m.file
            ));
        }
    }

    let mut graph: BTreeMap<String, BTreeSet<(String, usize)>> = BTreeMap::new();
    for m in &mods {
        for e in edges_of(m, &known) {
            let Some(target) = target_module(&e.path, &known) else {
                continue;
            };
            let (from_top, to_top) = (top(&e.from), top(target));
            // Layers.
            if from_top != "lib" && !target.is_empty() && from_top != to_top {
                let allowed = table.get(from_top).is_some_and(|deps| {
                    deps.contains(&to_top)
                        || (BOTTOM.contains(&to_top) && !BOTTOM.contains(&from_top))
                });
                if !allowed {
                    bad.insert(format!(
                        "src/{}:{}: `{from_top}` may not import `{to_top}` (crate::{})",
                        e.file,
                        e.line,
                        e.path.join("::")
                    ));
                }
            }
            // Names from their defining module (lib.rs re-exports them for users; test
            // code may use the API as a user does).
            if e.from.is_empty() || e.test {
                continue;
            }
            if let Some(name) = e.path.get(target.len()) {
                let defining = by_path[target];
                if reexports(defining, &known).contains(name) {
                    bad.insert(format!(
                        "src/{}:{}: `{name}` is a re-export of `{}`: import it from the module \
                         that defines it",
                        e.file,
                        e.line,
                        if target.is_empty() {
                            "lib.rs".to_owned()
                        } else {
                            target.join("::")
                        }
                    ));
                }
            }
            // File graph for circles (test code excepted).
            if !e.test && target != &m.path {
                let to = by_path[target].file.clone();
                graph
                    .entry(m.file.clone())
                    .or_default()
                    .insert((to, e.line));
            }
        }
    }
    for circle in circles(&graph) {
        bad.insert(format!("circle of imports: {}", circle.join(" -> ")));
    }
    bad.into_iter().collect()
}

/// The strongly connected components of more than one file, each as a readable circle
/// (`src/a.rs:3 -> src/b.rs:7 -> src/a.rs`).
fn circles(graph: &BTreeMap<String, BTreeSet<(String, usize)>>) -> Vec<Vec<String>> {
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(n) = stack.pop() {
            for (to, _) in graph.get(&n).into_iter().flatten() {
                if seen.insert(to.clone()) {
                    stack.push(to.clone());
                }
            }
        }
        seen
    };
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for from in graph.keys() {
        if done.contains(from) {
            continue;
        }
        // The shortest way back to `from`, by breadth-first search.
        if !reach(from).contains(from) {
            continue;
        }
        let mut prev: BTreeMap<String, (String, usize)> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.clone()]);
        'bfs: while let Some(n) = queue.pop_front() {
            for (to, line) in graph.get(&n).into_iter().flatten() {
                if to == from {
                    prev.insert(format!("{from}#end"), (n.clone(), *line));
                    break 'bfs;
                }
                if !prev.contains_key(to) {
                    prev.insert(to.clone(), (n.clone(), *line));
                    queue.push_back(to.clone());
                }
            }
        }
        let mut chain = vec![format!("src/{from}")];
        let mut at = format!("{from}#end");
        while let Some((p, line)) = prev.get(&at) {
            chain.push(format!("src/{p}:{line}"));
            done.insert(p.clone());
            if p == from {
                break;
            }
            at = p.clone();
        }
        chain.reverse();
        out.push(chain);
    }
    out
}

#[test]
fn imports_follow_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_no_findings(
        &violations(&src),
        "imports against the layering (table in tests/layers.rs)",
    );
}

/// The check finds what it claims to find, naming file and line.
#[test]
fn the_layering_check_finds_planted_violations() {
    let dir = std::env::temp_dir().join(format!("shmsock-layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for d in ["shm", "net"] {
        std::fs::create_dir_all(dir.join(d)).expect("temp src");
    }
    let files = [
        (
            "lib.rs",
            "mod shm;\nmod net;\nmod error;\npub use error::Result;\n",
        ),
        (
            "error.rs",
            "pub type Result<T> = std::result::Result<T, ()>;\n",
        ),
        (
            "shm/mod.rs",
            // A string and a comment that name crate::net are not imports.
            "mod ring;\nuse crate::error::Result;\nuse crate::net::{Thing, zmtp};\n\
             fn f() { let _ = \"crate::net::x\"; } // crate::net\n",
        ),
        (
            "shm/ring.rs",
            "use crate::Result;\nuse super::super::net::Thing;\n\
             #[cfg(test)]\nmod tests {\n    use super::*;\n    use crate::shm::ring;\n}\n",
        ),
        ("net/mod.rs", "pub mod zmtp;\npub struct Thing;\n"),
        (
            "net/zmtp.rs",
            "use crate::net::pump::Pump;\nfn g() -> Option<u8> { None }\n",
        ),
        (
            "net/pump.rs",
            "pub struct Pump;\nfn h() { let _ = crate::net::zmtp::g(); }\n",
        ),
        ("mystery.rs", "\n"),
    ];
    for (f, text) in files {
        std::fs::write(dir.join(f), text).expect("write");
    }
    let bad = violations(&dir);
    std::fs::remove_dir_all(&dir).ok();
    let expect = [
        "src/mystery.rs:1: top-level module `mystery` is not in the layering table",
        "src/shm/mod.rs:3: `shm` may not import `net` (crate::net::Thing)",
        "src/shm/mod.rs:3: `shm` may not import `net` (crate::net::zmtp)",
        "src/shm/ring.rs:1: `Result` is a re-export of `lib.rs`",
        "src/shm/ring.rs:2: `shm` may not import `net` (crate::net::Thing)",
        "circle of imports: src/net/pump.rs:2 -> src/net/zmtp.rs:1 -> src/net/pump.rs",
    ];
    for e in expect {
        assert!(
            bad.iter().any(|b| b.starts_with(e)),
            "missing {e:?} in:\n{}",
            bad.join("\n")
        );
    }
    assert_eq!(
        bad.len(),
        expect.len(),
        "unexpected findings:\n{}",
        bad.join("\n")
    );
}
