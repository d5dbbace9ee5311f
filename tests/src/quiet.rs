//! The machine's CPU load, for benchmarks: what the cluster still does
//! after a burst (watch fan-out, etcd compaction, a previous run's
//! teardown: namespaces and mounts released by kernel workers) would
//! otherwise land in the next measurement.

/// (busy, total) jiffies of all CPUs so far, from the first line of
/// /proc/stat (idle and iowait count as not busy).
fn cpu_jiffies() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().sum();
    let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Waits until the machine's CPUs are less than `busy_below` (0–1) busy
/// over a `window`, at most `limit`: what a cluster still does after a
/// burst of writes (watch fan-out, etcd compaction, garbage collection)
/// would otherwise land in the next measurement. Returns how long it took
/// and whether the machine did settle.
pub fn wait_until_quiet(
    busy_below: f64,
    window: std::time::Duration,
    limit: std::time::Duration,
) -> (std::time::Duration, bool) {
    let start = std::time::Instant::now();
    loop {
        let Some((busy0, total0)) = cpu_jiffies() else {
            return (start.elapsed(), false);
        };
        std::thread::sleep(window);
        let Some((busy1, total1)) = cpu_jiffies() else {
            return (start.elapsed(), false);
        };
        let busy = (busy1 - busy0) as f64 / (total1 - total0).max(1) as f64;
        if busy < busy_below {
            return (start.elapsed(), true);
        }
        if start.elapsed() >= limit {
            return (start.elapsed(), false);
        }
    }
}
