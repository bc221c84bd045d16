//! What the kernel says of a process.

/// A `kB` field of `/proc/<process>/status` (`VmRSS`, `VmHWM`, ...), in KiB;
/// `process` is a pid or `self`. 0 when the process or field is gone.
pub fn status_kib(process: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.split(':').next() == Some(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}
