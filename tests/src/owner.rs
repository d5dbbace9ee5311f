//! Process identity (from `/proc/<pid>/stat`, read by [`proc_stat`]): a PID
//! plus its start time, so a recycled PID is never
//! mistaken for the process that owned something.

use std::fs;

use serde::{Deserialize, Serialize};

/// A process, identified across PID reuse by its start time (clock ticks
/// after boot, field 22 of `/proc/<pid>/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcessId {
    /// The calling process.
    #[must_use]
    pub fn current() -> Self {
        let pid = std::process::id();
        Self {
            pid,
            // Reading our own /proc entry cannot fail short of /proc missing,
            // and then nothing could be checked anyway.
            start_time: proc_stat(pid).map_or(0, |s| s.start_time),
        }
    }

    /// Reads the identity of a running process.
    #[must_use]
    pub fn of(pid: u32) -> Option<Self> {
        proc_stat(pid).filter(|s| s.state != 'Z').map(|s| Self {
            pid,
            start_time: s.start_time,
        })
    }

    /// Reads the identity of a process, also if it has exited but not been
    /// reaped yet (a child of ours that exited at once).
    #[must_use]
    pub fn of_child(pid: u32) -> Option<Self> {
        proc_stat(pid).map(|s| Self {
            pid,
            start_time: s.start_time,
        })
    }

    /// Whether this very process (same PID, same start time) still runs.
    /// A zombie counts as gone: it runs no code and holds nothing.
    #[must_use]
    pub fn is_alive(&self) -> bool {
        proc_stat(self.pid).is_some_and(|s| s.start_time == self.start_time && s.state != 'Z')
    }
}

/// Whether any process (not a zombie) has this PID. Used for resources that
/// carry only a PID in their name: when in doubt, the owner counts as alive.
#[must_use]
pub fn pid_in_use(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| s.state != 'Z')
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    /// The command name (at most 15 bytes).
    pub comm: String,
    pub state: char,
    /// The session ID.
    pub session: u32,
    /// CPU time of the process and of its reaped children (utime, stime,
    /// cutime, cstime), in clock ticks (`USER_HZ`, 100 on Linux).
    pub cpu_ticks: u64,
    /// Clock ticks after boot.
    pub start_time: u64,
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
#[must_use]
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

/// Parses `/proc/<pid>/stat`; the command name (field 2) may contain spaces
/// and parentheses, so fields are counted after its last `)`.
fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text[close + 1..].split_whitespace().collect();
    // Field 3 is the state, field 6 the session, fields 14–17 the CPU
    // times, field 22 the start time: index n - 3 here.
    let state = fields.first()?.chars().next()?;
    let session = fields.get(3)?.parse().ok()?;
    let cpu_ticks = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    let start_time = fields.get(19)?.parse().ok()?;
    Some(ProcStat {
        comm,
        state,
        session,
        cpu_ticks,
        start_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.comm, "a) b (c)");
        assert_eq!(stat.state, 'S');
        assert_eq!(stat.session, 4242);
        assert_eq!(stat.cpu_ticks, 3);
        assert_eq!(stat.start_time, 987_654);
    }

    #[test]
    fn current_process_is_alive_and_a_changed_start_time_is_not() {
        let me = ProcessId::current();
        assert!(me.is_alive());
        assert_eq!(ProcessId::of(me.pid), Some(me));
        let recycled = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.is_alive());
    }
}
