//! Peer memory is reached only through `shm/segment.rs` (the validating accessor) and
//! syscalls only through `sys.rs`: no other source file of the library may contain `unsafe`
//! or a raw-pointer operation, except that `loan.rs` may write `unsafe` (never a raw-pointer
//! operation) for the public `unsafe fn`s of `Sample`, which only forward the caller's
//! promise to `segment.rs`. Since safe Rust cannot reach a mapping except through a
//! raw pointer, this shows that no other code dereferences peer memory.

use std::path::Path;

use shmsock_testkit::source::{assert_no_findings, code_only, rust_files};

/// The only files allowed to hold `unsafe` code or raw-pointer operations.
const ALLOWED: [&str; 2] = ["shm/segment.rs", "sys.rs"];

/// Files that may write `unsafe` to declare or call an `unsafe fn` of `segment.rs`, but no
/// raw-pointer operation.
const FORWARD_ONLY: [&str; 1] = ["loan.rs"];

/// Tokens of unsafe code and raw-pointer reads or writes.
const FORBIDDEN: [&str; 16] = [
    "unsafe",
    "*const ",
    "*mut ",
    "as_ptr(",
    "as_mut_ptr(",
    "from_ptr(",
    "ptr::read",
    "ptr::write",
    "read_volatile",
    "write_volatile",
    "read_unaligned",
    "copy_nonoverlapping",
    "from_raw_parts",
    "transmute",
    "addr_of!",
    ".offset(",
];

fn offending_lines(src: &Path) -> Vec<String> {
    let files = rust_files(src, 6);
    let mut bad = Vec::new();
    for file in files {
        let rel = file.rel.as_str();
        if ALLOWED.contains(&rel) {
            continue;
        }
        let code = code_only(&file.text);
        for (i, (code, line)) in code.lines().zip(file.text.lines()).enumerate() {
            // `#![deny(unsafe_code)]` and friends name unsafe code without writing any.
            if code.trim_start().starts_with("#![deny(unsafe")
                || code.contains("deny(unsafe_op_in_unsafe_fn)")
            {
                continue;
            }
            for token in FORBIDDEN {
                if token == "unsafe" && FORWARD_ONLY.contains(&rel) {
                    continue;
                }
                if code.contains(token) {
                    bad.push(format!("src/{rel}:{}: `{token}`: {}", i + 1, line.trim()));
                }
            }
        }
    }
    bad
}

#[test]
fn only_segment_rs_and_sys_rs_touch_raw_memory() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    assert_no_findings(
        &offending_lines(&src),
        &format!(
            "unsafe code or raw-pointer operations outside {ALLOWED:?} (and {FORWARD_ONLY:?})"
        ),
    );
}

/// The lint catches what it claims to catch.
#[test]
fn the_memory_lint_finds_a_planted_raw_read() {
    let dir = std::env::temp_dir().join(format!("shmsock-lint-{}", std::process::id()));
    let _cleanup = shmsock_testkit::harness::RemoveOnDrop(dir.clone());
    std::fs::create_dir_all(dir.join("shm")).expect("temp src");
    for f in [
        "lib.rs",
        "a.rs",
        "b.rs",
        "c.rs",
        "d.rs",
        "sys.rs",
        "shm/segment.rs",
    ] {
        std::fs::write(dir.join(f), "// unsafe in a comment is fine\nfn f() {}\n").expect("write");
    }
    // The fixtures are spelled with concat! so that source greps for unsafe blocks (the
    // house checks) do not mistake them for real ones; the written text is unchanged.
    std::fs::write(
        dir.join("shm/segment.rs"),
        concat!("unsafe", " { p.read_volatile() }\n"),
    )
    .expect("write");
    std::fs::write(
        dir.join("shm/ring.rs"),
        concat!(
            "let s = \"unsafe\";\nlet v = unsafe",
            " { std::ptr::read(p) };\n"
        ),
    )
    .expect("write");
    // loan.rs may forward an unsafe contract, but not touch a raw pointer.
    std::fs::write(
        dir.join("loan.rs"),
        concat!(
            "pub unsafe",
            " fn f() {}
let p = v.as_ptr",
            "();
"
        ),
    )
    .expect("write");
    let bad = offending_lines(&dir);
    assert_eq!(bad.len(), 3, "{bad:?}");
    assert!(bad[0].starts_with("src/loan.rs:2: `as_ptr(`"), "{bad:?}");
    assert!(bad[1].starts_with("src/shm/ring.rs:2: `unsafe`"), "{bad:?}");
}
