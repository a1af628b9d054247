//! CPU time and peak memory of the processes under test, from /proc (Linux).
//!
//! CPU is counted for a process and all its descendants (PostgreSQL serves each connection from
//! a child process), peak memory as the main process's high-water mark (VmHWM), which covers the
//! process's whole life: each scenario starts a fresh server so its peak is its own.

use std::fs;
use std::sync::OnceLock;

/// utime + stime of `pid` and its descendants, in clock ticks.
pub fn tree_cpu_ticks(pid: u32) -> u64 {
    let mut stats: Vec<(u32, u32, u64)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some((ppid, ticks)) = stat(p) {
                stats.push((p, ppid, ticks));
            }
        }
    }
    let mut tree = vec![pid];
    let mut total = 0;
    // Parents before children is not guaranteed by /proc order: grow the set until it is stable.
    loop {
        let before = tree.len();
        for &(p, ppid, _) in &stats {
            if tree.contains(&ppid) && !tree.contains(&p) {
                tree.push(p);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    for &(p, _, ticks) in &stats {
        if tree.contains(&p) {
            total += ticks;
        }
    }
    total
}

/// (ppid, utime + stime) from /proc/<pid>/stat. The command name may hold spaces and
/// parentheses, so fields are counted from the last ')'.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// Peak resident memory of `pid` in KiB (VmHWM).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}
