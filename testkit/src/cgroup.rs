//! A control group (v1: the `memory` and `cpuacct` hierarchies) around a
//! process a benchmark runs: its memory limit, like a pod's, and what the
//! kernel counted for it (CPU time, peak memory, OOM kills), read even after
//! the process is gone.

use std::path::PathBuf;

use anyhow::{Context, Result};

const ROOT: &str = "/sys/fs/cgroup";

pub struct Cgroup {
    memory: PathBuf,
    cpu: PathBuf,
}

impl Cgroup {
    /// Makes `<name>` at the top of both hierarchies, with
    /// `memory_limit` bytes as its hard limit (no swap here).
    pub fn new(name: &str, memory_limit: Option<u64>) -> Result<Cgroup> {
        let group = Cgroup {
            memory: PathBuf::from(ROOT).join("memory/millpond-bench").join(name),
            cpu: PathBuf::from(ROOT)
                .join("cpuacct/millpond-bench")
                .join(name),
        };
        for dir in [&group.memory, &group.cpu] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("making {} (cgroup v1, as root)", dir.display()))?;
        }
        if let Some(limit) = memory_limit {
            group.write_memory("memory.limit_in_bytes", &limit.to_string())?;
        }
        Ok(group)
    }

    /// Moves process `pid` (all its threads) into the group.
    pub fn add(&self, pid: u32) -> Result<()> {
        self.write_memory("cgroup.procs", &pid.to_string())?;
        std::fs::write(self.cpu.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("moving {pid} into {}", self.cpu.display()))
    }

    /// CPU time (user and system) used by the group's processes so far.
    pub fn cpu_seconds(&self) -> f64 {
        read_u64(&self.cpu.join("cpuacct.usage")) as f64 / 1e9
    }

    /// The most memory the group was charged at once.
    pub fn peak_bytes(&self) -> u64 {
        read_u64(&self.memory.join("memory.max_usage_in_bytes"))
    }

    /// Processes of the group the kernel killed for its limit.
    pub fn oom_kills(&self) -> u64 {
        std::fs::read_to_string(self.memory.join("memory.oom_control"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }

    fn write_memory(&self, file: &str, value: &str) -> Result<()> {
        std::fs::write(self.memory.join(file), value)
            .with_context(|| format!("writing {value} to {}", self.memory.join(file).display()))
    }
}

impl Drop for Cgroup {
    /// Removes the group once its processes are gone (a group still in use
    /// stays; the kernel refuses to remove it).
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.memory);
        let _ = std::fs::remove_dir(&self.cpu);
    }
}

fn read_u64(path: &std::path::Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
