//! What machine the numbers come from, and which CPUs the two sides run on.
//!
//! The parent side runs on the first CPU this process may use and the child on the second, so
//! every message crosses between two cores (the case shared memory is for). With a single
//! usable CPU both sides share it; the report says so, because every number then includes
//! context switches.

use serde::{Deserialize, Serialize};

use crate::error::LabError;
use crate::process::allowed_cpus;

/// The CPUs the two sides of every pair are pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinning {
    /// CPU of the parent process (the ping side, the receiving side).
    pub parent_cpu: usize,
    /// CPU of the child process (the pong side, the sending side).
    pub child_cpu: usize,
}

impl Pinning {
    /// Picks the first two CPUs this thread may run on (or the only one, twice).
    pub fn choose() -> Result<Self, LabError> {
        let cpus = allowed_cpus()?;
        let parent_cpu = *cpus.first().ok_or(LabError::Os {
            what: "choosing CPUs",
            source: std::io::Error::other("the CPU affinity mask is empty"),
        })?;
        let child_cpu = cpus.get(1).copied().unwrap_or(parent_cpu);
        Ok(Self {
            parent_cpu,
            child_cpu,
        })
    }

    /// Whether both sides share one CPU (only one was usable).
    pub fn same_cpu(&self) -> bool {
        self.parent_cpu == self.child_cpu
    }

    /// One line for the report header.
    pub fn describe(&self) -> String {
        if self.same_cpu() {
            format!(
                "both sides on CPU {} (only one CPU usable: numbers include context switches)",
                self.parent_cpu
            )
        } else {
            format!(
                "parent on CPU {}, child on CPU {}",
                self.parent_cpu, self.child_cpu
            )
        }
    }
}

/// The machine the report was measured on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// `model name` from `/proc/cpuinfo` ("unknown" if absent).
    pub cpu_model: String,
    /// CPUs listed in `/proc/cpuinfo` (0 if it could not be read).
    pub cpus_online: usize,
    /// CPUs this process may run on.
    pub cpus_allowed: usize,
    /// Kernel: `uname -s -r -v`.
    pub kernel: String,
    /// CPU architecture (`uname -m`).
    pub machine: String,
    /// CPU frequency governor of CPU 0 (`None` when the kernel does not expose it, as on
    /// most VMs).
    #[serde(default)]
    pub governor: Option<String>,
    /// Where the two sides ran.
    pub pinning: Pinning,
    /// `pinning` in words.
    pub pinning_text: String,
    /// The NUMA nodes and their CPUs (`/sys/devices/system/node`); empty when the kernel does
    /// not say (and in reports written before the lab read them).
    #[serde(default)]
    pub numa_nodes: Vec<NumaNode>,
}

/// One NUMA node: memory and the CPUs closest to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NumaNode {
    /// The node's number (`node0` is 0).
    pub id: usize,
    /// Its CPUs.
    pub cpus: Vec<usize>,
}

impl HostInfo {
    /// A made-up host for tests: `cpus` CPUs, the parent on CPU 0 and the child on CPU 1.
    #[cfg(test)]
    pub(crate) fn for_tests(cpus: usize) -> Self {
        let pinning = Pinning {
            parent_cpu: 0,
            child_cpu: 1,
        };
        Self {
            cpu_model: "test CPU".into(),
            cpus_online: cpus,
            cpus_allowed: cpus,
            kernel: "Linux".into(),
            machine: "x86_64".into(),
            governor: None,
            pinning,
            pinning_text: pinning.describe(),
            numa_nodes: vec![NumaNode {
                id: 0,
                cpus: (0..cpus).collect(),
            }],
        }
    }

    /// Collects the host description.
    pub fn collect(pinning: Pinning) -> Result<Self, LabError> {
        let uname = rustix::system::uname();
        let text = |s: &std::ffi::CStr| s.to_string_lossy().into_owned();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Ok(Self {
            cpu_model: parse_cpu_model(&cpuinfo).unwrap_or_else(|| "unknown".into()),
            cpus_online: count_processors(&cpuinfo),
            cpus_allowed: allowed_cpus()?.len(),
            kernel: format!(
                "{} {} {}",
                text(uname.sysname()),
                text(uname.release()),
                text(uname.version())
            ),
            machine: text(uname.machine()),
            governor: std::fs::read_to_string(
                "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor",
            )
            .ok()
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty()),
            pinning,
            pinning_text: pinning.describe(),
            numa_nodes: numa_nodes(),
        })
    }

    /// Where the two sides ran with respect to the NUMA nodes, in words.
    pub fn numa_text(&self) -> String {
        let p = self.pinning;
        let node_of = |cpu: usize| self.numa_nodes.iter().find(|n| n.cpus.contains(&cpu));
        match (
            self.numa_nodes.len(),
            node_of(p.parent_cpu),
            node_of(p.child_cpu),
        ) {
            (0, _, _) => "the kernel does not list this machine's NUMA nodes".into(),
            (1, _, _) => format!(
                "this machine has one NUMA node (node{}), so the two sides (CPUs {} and {}) \
                 share it: nothing to compare",
                self.numa_nodes[0].id, p.parent_cpu, p.child_cpu
            ),
            (n, Some(a), Some(b)) if a.id == b.id => format!(
                "this machine has {n} NUMA nodes; the lab ran both sides on node{} (CPUs {} \
                 and {})",
                a.id, p.parent_cpu, p.child_cpu
            ),
            (n, Some(a), Some(b)) => format!(
                "this machine has {n} NUMA nodes; the lab ran the sides on different ones \
                 (CPU {} on node{}, CPU {} on node{}): its numbers include the trip between \
                 nodes",
                p.parent_cpu, a.id, p.child_cpu, b.id
            ),
            (n, _, _) => format!(
                "this machine has {n} NUMA nodes; the node of CPU {} or {} is not listed",
                p.parent_cpu, p.child_cpu
            ),
        }
    }
}

/// The NUMA nodes of `/sys/devices/system/node` (empty if it cannot be read).
fn numa_nodes() -> Vec<NumaNode> {
    let Ok(dir) = std::fs::read_dir("/sys/devices/system/node") else {
        return Vec::new();
    };
    let mut nodes: Vec<NumaNode> = dir
        .flatten()
        .filter_map(|entry| {
            let id = entry
                .file_name()
                .to_str()?
                .strip_prefix("node")?
                .parse()
                .ok()?;
            let list = std::fs::read_to_string(entry.path().join("cpulist")).ok()?;
            Some(NumaNode {
                id,
                cpus: parse_cpu_list(&list)?,
            })
        })
        .collect();
    nodes.sort_by_key(|n| n.id);
    nodes
}

/// A kernel CPU list (`0-3,8,10-11`) as the CPUs in it.
fn parse_cpu_list(text: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.trim().parse::<usize>().ok()?..=b.trim().parse().ok()?),
            None => cpus.push(part.trim().parse().ok()?),
        }
    }
    Some(cpus)
}

/// Number of `processor` entries in `/proc/cpuinfo`.
fn count_processors(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(k, _)| k.trim() == "processor")
        })
        .count()
}

/// The first `model name` (x86) or `Model`/`CPU part` (arm) line of `/proc/cpuinfo`.
fn parse_cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware", "CPU part"]
        .iter()
        .find_map(|key| {
            cpuinfo.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == *key && !v.trim().is_empty()).then(|| v.trim().to_string())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_read_from_the_model_name_line() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(parse_cpu_model(info).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
        assert_eq!(
            count_processors("processor : 0\nprocessor : 1\nmodel : x\n"),
            2
        );
    }

    #[test]
    fn numa_nodes_are_read_and_described() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11\n"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("x"), None);
        let mut host = HostInfo::for_tests(2);
        assert!(
            host.numa_text().contains("one NUMA node (node0)"),
            "{}",
            host.numa_text()
        );
        host.numa_nodes = vec![
            NumaNode {
                id: 0,
                cpus: vec![0],
            },
            NumaNode {
                id: 1,
                cpus: vec![1],
            },
        ];
        assert!(
            host.numa_text().contains("different ones"),
            "{}",
            host.numa_text()
        );
        host.numa_nodes.clear();
        assert!(host.numa_text().contains("does not list"));
    }

    #[test]
    fn one_usable_cpu_is_said_out_loud() {
        let p = Pinning {
            parent_cpu: 0,
            child_cpu: 0,
        };
        assert!(p.same_cpu());
        assert!(p.describe().contains("only one CPU"));
    }
}
