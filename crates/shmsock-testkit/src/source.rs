//! The library's own source files, read by the source-scanning lints (the layering of
//! imports, where unsafe code may stand): one walker and one comment and literal stripper
//! for both.

use std::path::{Path, PathBuf};

/// One `.rs` file under a source directory.
pub struct SourceFile {
    /// Its path relative to the directory, with `/` separators (`shm/ring.rs`).
    pub rel: String,
    pub path: PathBuf,
    pub text: String,
}

/// Every `.rs` file under `src`, sorted by path; there must be at least `at_least` (so a
/// lint run on the wrong directory fails instead of passing on nothing).
#[track_caller]
pub fn rust_files(src: &Path, at_least: usize) -> Vec<SourceFile> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(src, &mut paths);
    paths.sort();
    assert!(
        paths.len() >= at_least,
        "found {} source files in {}, expected at least {at_least}",
        paths.len(),
        src.display()
    );
    paths
        .into_iter()
        .map(|path| SourceFile {
            rel: path
                .strip_prefix(src)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/"),
            text: std::fs::read_to_string(&path).expect("reading a source file"),
            path,
        })
        .collect()
}

/// Checks that a lint found nothing; the failure lists every finding under `what`.
#[track_caller]
pub fn assert_no_findings(findings: &[String], what: &str) {
    assert!(
        findings.is_empty(),
        "{} finding(s): {what}:\n{}",
        findings.len(),
        findings.join("\n")
    );
}

/// The text with comments, string and char literals blanked out (newlines kept, so line
/// numbers stay right).
pub fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"' | '#')) && (i == 0 || !is_ident(chars[i - 1]))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body_start = j + 1;
            let rest: String = chars[body_start..].iter().collect();
            let end = rest.find(&close).map_or(chars.len(), |k| {
                body_start + rest[..k].chars().count() + close.len()
            });
            for &ch in &chars[i..end] {
                out.push(blank(ch));
            }
            i = end;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): blank only the former.
            let lit_end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&ch| ch == '\'')
                    .map(|k| i + 2 + k)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match lit_end {
                Some(end) => {
                    for _ in i..=end {
                        out.push(' ');
                    }
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

pub fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[test]
fn code_only_blanks_comments_and_literals_and_keeps_lines() {
    let text =
        "let a = \"x // y\"; // c\n/* b\n c */ let q = 'x'; let r = r#\"s\"#;\nfn f<'a>() {}\n";
    let code = code_only(text);
    assert_eq!(code.lines().count(), text.lines().count());
    assert_eq!(code.len(), text.len());
    for gone in ["x", "y", "c", "b", "s"] {
        assert!(
            !code.split(|c: char| !is_ident(c)).any(|w| w == gone),
            "{gone:?} left in {code:?}"
        );
    }
    for kept in ["let a", "let q", "let r", "fn f<'a>()"] {
        assert!(code.contains(kept), "{kept:?} missing from {code:?}");
    }
}
