//! `shmsock ls`, `shmsock top` and `shmsock clean`: thin shells over `shmsock::inspect`.
//!
//! The hidden rings of `Options::upgrade` (`shm://upgrade.<pid>.<n>.<endpoint>`, the ring a
//! `tcp://`/`unix://` publisher offers its subscribers on this machine) are marked "upgraded
//! from <endpoint>" with the subscribers that moved to them ([`upgraded_from`]): the
//! endpoint is read back from the ring's name, whose non-alphanumeric characters are `-`,
//! exactly when the publisher's command line names an endpoint that gives that name, or when
//! the name can only come from one endpoint (an IPv4 address or a one-word host, and a port).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use shmsock::inspect::{self, Backlog, EndpointInfo, EndpointState, Pattern, Scan, SideInfo};

use crate::stdout::print_out;

/// Options of `shmsock ls`.
#[derive(Args, Debug)]
#[command(
    after_help = "Every live shm:// endpoint of this user: who bound it, each side of each \
connection (pid, command, ring, backlog, messages and bytes sent and received, losses, age), \
and stale names whose listener died. Found through /proc and the rendezvous directory; no \
endpoint is contacted. The hidden ring a tcp:// or unix:// publisher offers its subscribers on \
this machine (shm://upgrade.PID.N.ENDPOINT) is marked \"upgraded from ENDPOINT\", with the \
subscribers that moved to it.

Examples:
  shmsock ls                       a table
  shmsock ls --json | jq '.endpoints[] | {endpoint, state}'
  SHMSOCK_RUNTIME_DIR=/tmp/x shmsock ls   the names of another rendezvous directory"
)]
pub(crate) struct LsArgs {
    /// Print the scan as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Options of `shmsock top`.
#[derive(Args, Debug)]
#[command(
    after_help = "The `ls` table refreshed every interval, with messages and bytes per \
second in and out of each side. On a terminal the screen is cleared between frames; \
otherwise frames follow each other (with --json: one JSON object per line).

Examples:
  shmsock top                              refresh every second until Ctrl-C
  shmsock top --interval 250               four times a second
  shmsock top --json --iterations 5 > frames.jsonl"
)]
pub(crate) struct TopArgs {
    /// Print each frame as one JSON object on its own line.
    #[arg(long)]
    json: bool,
    /// Milliseconds between frames (rates are measured over this interval).
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..))]
    interval: u64,
    /// Stop after this many frames [default: run until interrupted].
    #[arg(long, value_name = "N")]
    iterations: Option<u64>,
}

/// Options of `shmsock clean`.
#[derive(Args, Debug)]
#[command(
    after_help = "Removes the socket and lock files of names whose listener died \
without unbinding (SIGKILL, a crash), each under the name's lock exactly as a new bind \
would replace it: a live endpoint is never touched.

Examples:
  shmsock clean --dry-run      list what would be removed
  shmsock clean"
)]
pub(crate) struct CleanArgs {
    /// Only print what would be removed.
    #[arg(long)]
    dry_run: bool,
}

pub(crate) fn run_ls(args: LsArgs) -> ExitCode {
    let scan = match inspect::scan() {
        Ok(s) => s,
        Err(e) => return fail("ls", &e),
    };
    let text = if args.json {
        json(&scan)
    } else {
        render(&scan, false)
    };
    print_out(&text)
}

/// The prefix of the hidden rings' names (after `shm://`).
const UPGRADE_PREFIX: &str = "upgrade.";

/// Where the subscribers of a hidden ring of `Options::upgrade` came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upgraded {
    /// The network endpoint the ring is named after (`tcp://127.0.0.1:5556`), or, when the
    /// name cannot be read back with certainty, the name's tail as it is (`-` for every
    /// character that is not a letter or a digit).
    pub(crate) from: String,
    /// Whether `from` is the endpoint itself (else the name's tail).
    pub(crate) exact: bool,
    /// The publisher's other network endpoints on its command line: the ring serves the
    /// local subscribers of all of them.
    pub(crate) also: Vec<String>,
}

/// `endpoint` with every character that is not an ASCII letter or digit as `-`: how the
/// library names a hidden ring after it.
fn ring_tail(endpoint: &str) -> String {
    endpoint
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// If `ep` is a hidden ring of `Options::upgrade`: the network endpoint its subscribers moved
/// from. `cmdline` is the publisher's command line, if known.
pub(crate) fn upgraded_from(endpoint: &str, cmdline: Option<&str>) -> Option<Upgraded> {
    let name = endpoint.strip_prefix("shm://")?;
    let rest = name.strip_prefix(UPGRADE_PREFIX)?;
    let mut parts = rest.splitn(3, '.');
    let (pid, n, tail) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    // A name cut at the longest the library allows matches its endpoint's beginning only.
    let truncated = name.len() >= shmsock::SHM_NAME_MAX_BYTES;
    let network: Vec<&str> = cmdline
        .unwrap_or("")
        .split_whitespace()
        .filter(|a| a.starts_with("tcp://") || a.starts_with("unix://"))
        .collect();
    let named = network.iter().find(|a| {
        let t = ring_tail(a);
        t == tail || (truncated && t.starts_with(tail))
    });
    if let Some(named) = named {
        return Some(Upgraded {
            from: (*named).to_string(),
            exact: true,
            also: network
                .iter()
                .filter(|a| *a != named)
                .map(|a| a.to_string())
                .collect(),
        });
    }
    let (from, exact) = match decode_tcp(tail) {
        Some(endpoint) if !truncated => (endpoint, true),
        _ => (tail.to_string(), false),
    };
    Some(Upgraded {
        from,
        exact,
        also: Vec::new(),
    })
}

/// The one `tcp://` endpoint whose ring tail is `tail`, when only one can give it: an IPv4
/// address (`tcp---127-0-0-1-5556`), `*` (`tcp-----5556`) or a one-word host
/// (`tcp---localhost-5556`), then a port.
fn decode_tcp(tail: &str) -> Option<String> {
    let rest = tail.strip_prefix("tcp---")?;
    let (host, port) = rest.rsplit_once('-')?;
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let labels: Vec<&str> = host.split('-').collect();
    let numeric = |l: &&str| !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit());
    let host = if host == "-" {
        "*".to_string()
    } else if labels.len() == 4 && labels.iter().all(numeric) {
        labels.join(".")
    } else if labels.len() == 1 && !host.is_empty() {
        host.to_string()
    } else {
        return None;
    };
    Some(format!("tcp://{host}:{port}"))
}

/// The publisher's command line of `ep`, if the scan knows it.
fn publisher_cmdline(ep: &EndpointInfo) -> Option<&str> {
    ep.bound_by
        .as_ref()
        .and_then(|p| p.cmdline.as_deref())
        .or_else(|| {
            ep.sides
                .iter()
                .find(|s| s.role == inspect::Role::Publisher)
                .and_then(|s| s.process.cmdline.as_deref())
        })
}

/// What `ls` says of a hidden ring: where its subscribers came from, and who they are (each
/// with the endpoint it connected to when its command line names one of the publisher's).
fn upgraded_text(ep: &EndpointInfo, up: &Upgraded) -> String {
    let from = if up.exact {
        up.from.clone()
    } else {
        format!(
            "a network endpoint named {} (every character but letters and digits as '-')",
            up.from
        )
    };
    let also = if up.also.is_empty() {
        String::new()
    } else {
        format!(" (and {})", up.also.join(", "))
    };
    let endpoints: Vec<&str> = std::iter::once(up.from.as_str())
        .chain(up.also.iter().map(String::as_str))
        .filter(|_| up.exact)
        .collect();
    let moved: Vec<String> = ep
        .sides
        .iter()
        .filter(|s| s.role == inspect::Role::Subscriber)
        .map(|s| {
            let via = s.process.cmdline.as_deref().and_then(|c| {
                c.split_whitespace()
                    .find(|a| endpoints.contains(a))
                    .map(|a| format!(" from {a}"))
            });
            format!(
                "{}{}",
                who(s.process.pid, s.process.command.as_deref()),
                via.unwrap_or_default()
            )
        })
        .collect();
    let who_moved = if moved.is_empty() {
        "no subscriber has moved to it yet".to_string()
    } else {
        format!(
            "{} subscriber(s) moved to shared memory: {}",
            moved.len(),
            moved.join(", ")
        )
    };
    format!("  upgraded from {from}{also}: the publisher's hidden ring; {who_moved}\n")
}

pub(crate) fn run_top(args: TopArgs) -> ExitCode {
    let interval = Duration::from_millis(args.interval);
    let tty = std::io::stdout().is_terminal() && !args.json;
    let mut previous = match inspect::scan() {
        Ok(s) => s,
        Err(e) => return fail("top", &e),
    };
    let mut frame = 0u64;
    while args.iterations.is_none_or(|n| frame < n) {
        std::thread::sleep(interval);
        let mut scan = match inspect::scan() {
            Ok(s) => s,
            Err(e) => return fail("top", &e),
        };
        scan.rates_since(&previous);
        frame += 1;
        let text = if args.json {
            json(&scan)
        } else {
            let clear = if tty { "\x1b[H\x1b[2J" } else { "" };
            format!(
                "{clear}shmsock top: frame {frame}, every {} ms\n{}",
                args.interval,
                render(&scan, true)
            )
        };
        if print_out(&text) != ExitCode::SUCCESS {
            return ExitCode::FAILURE;
        }
        previous = scan;
    }
    ExitCode::SUCCESS
}

pub(crate) fn run_clean(args: CleanArgs) -> ExitCode {
    match inspect::clean(args.dry_run) {
        Ok(cleaned) => {
            let verb = if args.dry_run {
                "would remove"
            } else {
                "removed"
            };
            let mut text = String::new();
            for c in &cleaned {
                for file in &c.files {
                    text.push_str(&format!("{verb} {file} ({}, stale)\n", c.endpoint));
                }
            }
            if cleaned.is_empty() {
                let dir = shmsock::runtime_dir().map_or_else(
                    |_| "the rendezvous directory".into(),
                    |d| d.display().to_string(),
                );
                text.push_str(&format!("nothing stale in {dir}\n"));
            }
            print_out(&text)
        }
        Err(e) => fail("clean", &e),
    }
}

fn fail(cmd: &str, e: &shmsock::Error) -> ExitCode {
    eprintln!("shmsock {cmd}: {e}");
    ExitCode::FAILURE
}

fn json(scan: &Scan) -> String {
    let value = serde_json::to_value(scan).map(|mut v| {
        // Hidden rings of Options::upgrade get "upgraded_from": the endpoint (or the name's
        // tail, with "upgraded_from_exact": false) their subscribers moved from.
        let eps = v.get_mut("endpoints").and_then(|e| e.as_array_mut());
        for (json, ep) in eps.into_iter().flatten().zip(&scan.endpoints) {
            if let (Some(up), Some(obj)) = (
                upgraded_from(&ep.endpoint, publisher_cmdline(ep)),
                json.as_object_mut(),
            ) {
                obj.insert("upgraded_from".into(), up.from.into());
                obj.insert("upgraded_from_exact".into(), up.exact.into());
            }
        }
        v
    });
    match value.and_then(|v| serde_json::to_string(&v)) {
        Ok(s) => s + "\n",
        // Every field is a plain number, string or list: serialising cannot fail.
        Err(e) => format!("{{\"error\":{:?}}}\n", e.to_string()),
    }
}

/// The scan as text: one block per endpoint, one row per side.
pub(crate) fn render(scan: &Scan, rates: bool) -> String {
    let mut out = String::new();
    if scan.endpoints.is_empty() {
        out.push_str(&format!(
            "no shm:// endpoints (rendezvous directory {})\n",
            scan.runtime_dir
        ));
    }
    for ep in &scan.endpoints {
        out.push_str(&endpoint_line(ep));
        if let Some(up) = upgraded_from(&ep.endpoint, publisher_cmdline(ep)) {
            out.push_str(&upgraded_text(ep, &up));
        }
        if ep.sides.is_empty() {
            continue;
        }
        let mut header = vec![
            "ROLE", "PID", "COMMAND", "PEER", "RING", "BACKLOG", "SENT", "RECEIVED", "LOST", "AGE",
        ];
        if rates {
            header.extend(["OUT/s", "IN/s"]);
        }
        let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
        rows.extend(ep.sides.iter().map(|s| side_row(s, rates)));
        out.push_str(&table(&rows, "  "));
    }
    for note in &scan.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}

fn endpoint_line(ep: &EndpointInfo) -> String {
    let pattern = match ep.pattern {
        Pattern::Pair => "pair",
        Pattern::PubSub => "pub/sub",
        Pattern::Inbox => "inbox",
        _ => "pattern unknown",
    };
    let state = match ep.state {
        EndpointState::Live => match &ep.bound_by {
            Some(p) => format!("live, bound by {}", who(p.pid, p.command.as_deref())),
            None => "live".into(),
        },
        EndpointState::Stale => format!(
            "STALE: {} is gone; `shmsock clean` removes its files",
            ep.last_bound_by_pid
                .map_or_else(|| "its listener".into(), |p| format!("listener pid {p}"))
        ),
        EndpointState::Unbound => "unbound (connections outlive their listener)".into(),
        _ => "state unknown".into(),
    };
    let age = ep
        .age_secs
        .map_or_else(String::new, |a| format!(", up {}", age(a)));
    let spare = match ep.spare_segments {
        0 => String::new(),
        1 => ", 1 spare segment".into(),
        n => format!(", {n} spare segments"),
    };
    format!(
        "{}  {pattern}  {state}{age}{spare}  [{}]\n",
        ep.endpoint, ep.socket_path
    )
}

fn who(pid: u32, command: Option<&str>) -> String {
    match command {
        Some(c) => format!("pid {pid} ({c})"),
        None => format!("pid {pid}"),
    }
}

fn side_row(s: &SideInfo, rates: bool) -> Vec<String> {
    let peer = match &s.peer {
        Some(p) if p.alive => p.pid.to_string(),
        Some(p) => format!("{} (gone)", p.pid),
        None if s.role == inspect::Role::Publisher => "subscribers".into(),
        None => "-".into(),
    };
    let pair = |m: Option<u64>, b: Option<u64>| match (m, b) {
        (Some(m), Some(b)) => format!("{m} / {}", bytes(b as f64)),
        _ => "-".into(),
    };
    let mut row = vec![
        s.role.to_string(),
        s.process.pid.to_string(),
        s.process.command.clone().unwrap_or_else(|| "?".into()),
        peer,
        bytes(s.ring_capacity_bytes as f64),
        s.backlog.as_ref().map_or_else(|| "?".into(), backlog_text),
        pair(s.msgs_sent, s.bytes_sent),
        pair(s.msgs_received, s.bytes_received),
        s.msgs_lost.map_or_else(|| "-".into(), |l| l.to_string()),
        s.age_secs.map_or_else(|| "?".into(), age),
    ];
    if rates {
        let rate = |m: Option<f64>, b: Option<f64>| match (m, b) {
            (Some(m), Some(b)) => format!("{} msg {}", count(m), bytes(b)),
            _ => "-".into(),
        };
        match &s.rates {
            Some(r) => {
                row.push(rate(r.msgs_sent_per_s, r.bytes_sent_per_s));
                row.push(rate(r.msgs_received_per_s, r.bytes_received_per_s));
            }
            None => row.extend(["new".to_string(), "new".to_string()]),
        }
    }
    row
}

fn backlog_text(b: &Backlog) -> String {
    let msgs = b
        .messages
        .map_or_else(|| "?".into(), |m| format!("{m} msg "));
    let overrun = if b.overrun { " OVERRUN" } else { "" };
    format!(
        "{msgs}{} ({:.0}%){overrun}",
        bytes(b.bytes as f64),
        b.fill * 100.0
    )
}

/// Left-aligned columns separated by two spaces, each row indented.
fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(indent);
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// `512 B`, `4.0 KiB`, `1.5 MiB`, `2.0 GiB`.
pub(crate) fn bytes(n: f64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024.0 {
        return format!("{n:.0} B");
    }
    let mut v = n;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// `950`, `12.3k`, `4.5M`.
fn count(n: f64) -> String {
    if n < 1e3 {
        format!("{n:.0}")
    } else if n < 1e6 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{:.1}M", n / 1e6)
    }
}

/// `42s`, `5m03s`, `2h10m`, `3d04h`.
pub(crate) fn age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ages_read_like_a_person_writes_them() {
        assert_eq!(bytes(0.0), "0 B");
        assert_eq!(bytes(1023.0), "1023 B");
        assert_eq!(bytes(1024.0 * 1024.0), "1.0 MiB");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(age(5.9), "5s");
        assert_eq!(age(303.0), "5m03s");
        assert_eq!(age(7800.0), "2h10m");
        assert_eq!(age(3.0 * 86400.0 + 4.0 * 3600.0), "3d04h");
        assert_eq!(count(950.0), "950");
        assert_eq!(count(12_345.0), "12.3k");
    }

    #[test]
    fn hidden_rings_say_which_endpoint_their_subscribers_moved_from() {
        let cmd = "shmsock pub tcp://127.0.0.1:5556 unix:///tmp/t.sock --size 64";
        let up = upgraded_from("shm://upgrade.42.0.tcp---127-0-0-1-5556", Some(cmd))
            .expect("a hidden ring");
        assert_eq!(up.from, "tcp://127.0.0.1:5556");
        assert!(up.exact);
        assert_eq!(up.also, ["unix:///tmp/t.sock"]);
        // From the command line: a unix:// path cannot be read back from the name alone.
        let up = upgraded_from("shm://upgrade.42.1.unix----tmp-t-sock", Some(cmd)).expect("ring");
        assert_eq!((up.from.as_str(), up.exact), ("unix:///tmp/t.sock", true));
        let up = upgraded_from("shm://upgrade.42.1.unix----tmp-t-sock", None).expect("ring");
        assert_eq!((up.from.as_str(), up.exact), ("unix----tmp-t-sock", false));
        // Without a command line: only names one endpoint alone can give.
        let decoded = |name: &str| {
            upgraded_from(name, None)
                .filter(|u| u.exact)
                .map(|u| u.from)
        };
        assert_eq!(
            decoded("shm://upgrade.7.0.tcp---127-0-0-1-5556").as_deref(),
            Some("tcp://127.0.0.1:5556")
        );
        assert_eq!(
            decoded("shm://upgrade.7.0.tcp-----5556").as_deref(),
            Some("tcp://*:5556")
        );
        assert_eq!(
            decoded("shm://upgrade.7.0.tcp---localhost-80").as_deref(),
            Some("tcp://localhost:80")
        );
        assert_eq!(decoded("shm://upgrade.7.0.tcp---my-host-lan-80"), None);
        assert_eq!(decoded("shm://upgrade.7.0.tcp---1-2-3-4-x"), None);
        assert!(upgraded_from("shm://ticks", Some(cmd)).is_none());
        assert!(upgraded_from("shm://upgrade.x.0.tcp---a-1", None).is_none());
        assert!(upgraded_from("shm://upgrade-notes", None).is_none());
        // The library's rule, on the endpoints above.
        assert_eq!(ring_tail("tcp://127.0.0.1:5556"), "tcp---127-0-0-1-5556");
        assert_eq!(ring_tail("tcp://*:5556"), "tcp-----5556");
    }

    #[test]
    fn columns_line_up() {
        let rows = vec![
            vec!["A".to_string(), "BB".to_string()],
            vec!["CCC".to_string(), "D".to_string()],
        ];
        assert_eq!(table(&rows, "  "), "  A    BB\n  CCC  D\n");
    }
}
