//! What the kernel says of a process, and a port to give one.

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

/// Peak resident set size of a process (`VmHWM`), in KiB; 0 once it is gone.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(&pid.to_string(), "VmHWM")
}

/// A loopback TCP port free when asked (the kernel's pick), for a process
/// about to listen on it.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_is_a_port() {
        assert_ne!(free_port().unwrap(), 0);
    }

    #[test]
    fn this_process_has_a_peak_and_a_gone_one_has_none() {
        assert!(peak_rss_kib(std::process::id()) > 0);
        assert_eq!(peak_rss_kib(u32::MAX), 0);
    }
}
