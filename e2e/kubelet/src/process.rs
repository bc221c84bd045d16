//! Container processes: the command line Kubernetes-style, spawning into a
//! process group with output to a log file, signalling the group, and the
//! restart rules (restart policy, back-off).

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::{Error, Result};

/// Everything needed to start one run of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    pub log: PathBuf,
}

/// The program and arguments for a container, as a container runtime would
/// compute them: without `command`, the image's program runs with `args`;
/// with `command`, `command[0]` runs with `command[1..]` followed by `args`.
///
/// `command[0]` is looked up like this: a name equal to the file name of the
/// image's program (e.g. `millpond-consumer` or `/usr/local/bin/millpond-consumer`)
/// runs the mapped program; another path with a `/` runs as is; a bare name
/// is searched with `lookup` (the host's `PATH`). The error is the
/// `StartError` message.
pub fn command_line(
    image_program: &Path,
    command: &[String],
    args: &[String],
    lookup: impl Fn(&str) -> Option<PathBuf>,
) -> Result<(PathBuf, Vec<String>), String> {
    let Some((first, rest)) = command.split_first() else {
        return Ok((image_program.to_path_buf(), args.to_vec()));
    };
    let name = Path::new(first).file_name();
    let program = if name.is_some() && name == image_program.file_name() {
        image_program.to_path_buf()
    } else if first.contains('/') {
        PathBuf::from(first)
    } else {
        lookup(first)
            .ok_or_else(|| format!("exec: {first:?}: executable file not found in $PATH"))?
    };
    let mut all = rest.to_vec();
    all.extend(args.iter().cloned());
    Ok((program, all))
}

/// Looks a program name up in a `PATH`-style list of directories.
pub fn search_path(name: &str, path: &str) -> Option<PathBuf> {
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

/// True if `path` is a regular file with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Starts a container process in its own process group (its pid is the
/// group id), with exactly `env` as its environment, no stdin, and stdout
/// and stderr appended to the log file.
pub fn spawn(launch: &Launch) -> Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)
        .map_err(|e| Error::io("opening log", &launch.log, e))?;
    let err = log
        .try_clone()
        .map_err(|e| Error::io("opening log", &launch.log, e))?;
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .env_clear()
        .envs(&launch.env)
        .current_dir(&launch.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .process_group(0)
        .kill_on_drop(false);
    cmd.spawn()
        .map_err(|e| Error::io("starting", &launch.program, e))
}

/// Sends `signal` to the process group `pgid`. False if no process of the
/// group was left.
pub fn signal_group(pgid: u32, signal: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid
    // addresses the process group, and pgid > 1 never targets init or "all".
    unsafe { libc::kill(-pgid, signal) == 0 }
}

/// True while any live (non-zombie) process of group `pgid` exists.
pub fn group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return signal_group(pgid, 0);
    };
    entries.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| parse_stat_group(&stat))
            .is_some_and(|(state, group)| group == pgid && state != 'Z' && state != 'X')
    })
}

/// State and process group from a `/proc/<pid>/stat` line.
fn parse_stat_group(stat: &str) -> Option<(char, u32)> {
    // "pid (comm) S ppid pgrp ..."; comm may hold spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let group = fields.next()?.parse().ok()?;
    Some((state, group))
}

/// Exit code and signal of a finished process; a process killed by signal
/// N reports exit code 128+N, like a container runtime.
pub fn exit_info(status: ExitStatus) -> (i32, Option<i32>) {
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (-1, None),
    }
}

/// Whether a container that exited with `exit_code` starts again.
pub fn should_restart(restart_policy: Option<&str>, exit_code: i32) -> bool {
    match restart_policy.unwrap_or("Always") {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Restart back-off of one container: the first restart waits `initial`,
/// each further one twice as long up to `max`. A run that lasted at least
/// twice `max` resets it (the kubelet's rule, with smaller numbers: 1 s
/// doubling to 30 s here instead of 10 s to 5 min).
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Option<Duration>,
}

impl Backoff {
    /// A fresh back-off.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            current: None,
        }
    }

    /// The delay before the next start, after a run that lasted `ran_for`.
    pub fn next_delay(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= self.max * 2 {
            self.current = None;
        }
        let next = match self.current {
            None => self.initial,
            Some(d) => (d * 2).min(self.max),
        };
        self.current = Some(next);
        next
    }

    /// The delay last handed out, if any.
    pub fn current(&self) -> Option<Duration> {
        self.current
    }
}

/// Writes `<pid> <program>` to a pid file (so stale processes of an earlier
/// kubelet run can be recognised and stopped).
pub fn write_pidfile(path: &Path, pid: u32, program: &Path) -> Result<()> {
    std::fs::write(path, format!("{pid} {}\n", program.display()))
        .map_err(|e| Error::io("writing pid file", path, e))
}

/// Reads a pid file written by [`write_pidfile`].
pub fn read_pidfile(path: &Path) -> Option<(u32, PathBuf)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (pid, program) = text.trim().split_once(' ')?;
    Some((pid.parse().ok()?, PathBuf::from(program)))
}

/// True if process `pid` runs `program` (guards against recycled pids).
pub fn pid_runs(pid: u32, program: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|exe| {
            exe == program
                || exe.to_string_lossy().trim_end_matches(" (deleted)") == program.to_string_lossy()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn without_command_the_image_program_runs_with_args() {
        let (p, a) =
            command_line(Path::new("/t/millpond-x"), &[], &s(&["--a", "1"]), |_| None).unwrap();
        assert_eq!(p, PathBuf::from("/t/millpond-x"));
        assert_eq!(a, s(&["--a", "1"]));
    }

    #[test]
    fn command_replaces_the_entrypoint_and_args_follow_it() {
        let lookup = |n: &str| (n == "sh").then(|| PathBuf::from("/bin/sh"));
        let (p, a) = command_line(
            Path::new("/t/millpond-x"),
            &s(&["sh", "-c"]),
            &s(&["echo hi"]),
            lookup,
        )
        .unwrap();
        assert_eq!(p, PathBuf::from("/bin/sh"));
        assert_eq!(a, s(&["-c", "echo hi"]));
    }

    #[test]
    fn command_naming_the_image_program_runs_the_mapped_binary() {
        let (p, a) = command_line(
            Path::new("/t/millpond-x"),
            &s(&["/usr/local/bin/millpond-x", "serve"]),
            &[],
            |_| None,
        )
        .unwrap();
        assert_eq!(p, PathBuf::from("/t/millpond-x"));
        assert_eq!(a, s(&["serve"]));
        let (p, _) = command_line(Path::new("/t/x"), &s(&["/opt/other"]), &[], |_| None).unwrap();
        assert_eq!(p, PathBuf::from("/opt/other"));
        let err = command_line(Path::new("/t/x"), &s(&["nope"]), &[], |_| None).unwrap_err();
        assert!(err.contains("executable file not found"), "{err}");
    }

    #[test]
    fn restart_policy_decides_on_exit_code() {
        assert!(should_restart(None, 0));
        assert!(should_restart(Some("Always"), 1));
        assert!(should_restart(Some("OnFailure"), 1));
        assert!(!should_restart(Some("OnFailure"), 0));
        assert!(!should_restart(Some("Never"), 1));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets_after_a_long_run() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let short = Duration::from_millis(100);
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay(short).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(
            b.next_delay(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(b.current(), Some(Duration::from_secs(1)));
    }

    #[test]
    fn signals_are_reported_as_128_plus_signal() {
        assert_eq!(exit_info(ExitStatus::from_raw(3 << 8)), (3, None));
        assert_eq!(exit_info(ExitStatus::from_raw(15)), (143, Some(15)));
    }

    #[test]
    fn proc_stat_lines_parse_even_with_odd_command_names() {
        assert_eq!(
            parse_stat_group("42 (a b) c) S 1 42 42 0 -1"),
            Some(('S', 42))
        );
        assert_eq!(parse_stat_group("7 (x) Z 1 5 5"), Some(('Z', 5)));
        assert_eq!(parse_stat_group("garbage"), None);
    }

    #[test]
    fn path_search_finds_executables_only() {
        assert!(search_path("sh", "/nonexistent:/bin:/usr/bin").is_some());
        assert!(search_path("sh", "/nonexistent").is_none());
    }

    #[tokio::test]
    async fn spawned_process_logs_to_file_and_dies_with_its_group() {
        let dir = std::env::temp_dir().join(format!("mpk-proc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("c.log");
        let launch = Launch {
            program: PathBuf::from("/bin/sh"),
            args: s(&["-c", "echo \"hello $GREETING\"; sleep 30 & wait"]),
            env: BTreeMap::from([("GREETING".to_string(), "world".to_string())]),
            cwd: dir.clone(),
            log: log.clone(),
        };
        let mut child = spawn(&launch).unwrap();
        let pid = child.id().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(group_alive(pid));
        assert!(signal_group(pid, libc::SIGKILL));
        let status = child.wait().await.unwrap();
        assert_eq!(exit_info(status), (137, Some(9)));
        for _ in 0..50 {
            if !group_alive(pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !group_alive(pid),
            "the background sleep died with the group"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "hello world\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
