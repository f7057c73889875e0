//! Support for this crate's tests and documentation examples; not part of the API (hidden
//! from the docs, may change at any time).
//!
//! Every test process points `SHMSOCK_RUNTIME_DIR` at a directory of its own, named after
//! its pid, so that parallel runs never meet. A test harness has no exit hook to remove it,
//! so each new process removes those of processes that have ended instead.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::process::Pid;

/// `$TMPDIR/<prefix><pid>` for this process (not created), after removing the directories
/// of ended processes with the same prefix (see [`remove_dirs_of_dead_runs`]).
pub fn runtime_dir(prefix: &str) -> PathBuf {
    let tmp = std::env::temp_dir();
    remove_dirs_of_dead_runs(&tmp, prefix);
    tmp.join(format!("{prefix}{}", std::process::id()))
}

/// Removes the entries of `tmp` named `<prefix><pid>...` whose process has ended: ours, or
/// anyone's if we are root. A live process's directory, or one whose pid was reused, stays.
pub fn remove_dirs_of_dead_runs(tmp: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let me = rustix::process::geteuid();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Some(pid) = digits.parse().ok().and_then(Pid::from_raw) else {
            continue;
        };
        let ours = entry.metadata().is_ok_and(|m| m.uid() == me.as_raw());
        let dead = rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH);
        if (ours || me.is_root()) && dead {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_of_ended_processes_go_and_live_ones_stay() {
        let tmp = std::env::temp_dir().join(format!("shmsock-reap-{}", std::process::id()));
        std::fs::create_dir_all(&tmp).unwrap();
        // A pid above the kernel's maximum (4,194,304) never runs.
        let dead = tmp.join("run-999999999");
        let alive = tmp.join(format!("run-{}", std::process::id()));
        let other = tmp.join("run-bridge-999999999");
        for d in [&dead, &alive, &other] {
            std::fs::create_dir_all(d.join("inner")).unwrap();
        }
        remove_dirs_of_dead_runs(&tmp, "run-");
        assert!(!dead.exists(), "an ended process's directory is removed");
        assert!(alive.exists(), "a live process's directory stays");
        assert!(other.exists(), "another prefix's directory stays");
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
