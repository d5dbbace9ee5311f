//! The termination message of an exited container, read as the kubelet's
//! `getTerminationMessage` does: what the container wrote to its
//! `terminationMessagePath` (the file the kubelet mounted there), or with
//! `terminationMessagePolicy: FallbackToLogsOnError` and a failure, the end
//! of its log. It becomes the terminated state's `message`.

use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::Path;

use super::container_log::render;
use crate::cri::api as cri;
use crate::cri::labels;

/// At most this much of the message file, its end (`MaxContainerTerminationMessageLength`).
const MAX_MESSAGE: u64 = 4096;
/// The log's fallback: its last 80 lines, at most 2 KiB of them.
const LOG_LINES: usize = 80;
const LOG_BYTES: usize = 2048;
/// How much of the log's end is read to find those lines.
const LOG_WINDOW: u64 = 64 * 1024;

/// Adds the termination message to an exited container's CRI status
/// message (after the runtime's own, if any).
pub fn add_message(status: &mut cri::ContainerStatus) {
    if status.state != cri::ContainerState::ContainerExited as i32 {
        return;
    }
    let annotation = |key: &str| status.annotations.get(key).cloned().unwrap_or_default();
    let path = annotation(labels::TERMINATION_MESSAGE_PATH);
    // A container that could not even start has no log to fall back to.
    let fallback = annotation(labels::TERMINATION_MESSAGE_POLICY) == "FallbackToLogsOnError"
        && status.exit_code != 0
        && status.reason != "ContainerCannotRun";
    let host_file = status
        .mounts
        .iter()
        .find(|m| !path.is_empty() && m.container_path == path)
        .map(|m| m.host_path.clone());
    let written = match host_file {
        Some(file) => match tail(Path::new(&file), MAX_MESSAGE) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => format!("Error on reading termination log {file}: {e}"),
        },
        None => String::new(),
    };
    let message = if written.is_empty() && fallback {
        last_log_lines(Path::new(&status.log_path))
    } else {
        written
    };
    if !message.is_empty() {
        if !status.message.is_empty() {
            status.message.push_str(": ");
        }
        status.message.push_str(&message);
    }
}

/// The last `max` bytes of a file.
fn tail(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut out = Vec::new();
    file.read_to_end(&mut out)?;
    Ok(out)
}

/// The container's last log lines as `kubectl logs --tail=80
/// --limit-bytes=2048` shows them (empty when there is no log).
fn last_log_lines(path: &Path) -> String {
    let Ok(bytes) = tail(path, LOG_WINDOW) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.lines().collect();
    // A window that starts mid-line drops that line.
    if path.metadata().is_ok_and(|m| m.len() > LOG_WINDOW) && !lines.is_empty() {
        lines.remove(0);
    }
    let from = lines.len().saturating_sub(LOG_LINES);
    let mut out: String = lines[from..]
        .iter()
        .filter_map(|l| render(l, false, None))
        .collect();
    if out.len() > LOG_BYTES {
        let mut end = LOG_BYTES;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(dir: &Path, policy: &str, exit_code: i32) -> cri::ContainerStatus {
        cri::ContainerStatus {
            state: cri::ContainerState::ContainerExited as i32,
            exit_code,
            annotations: [
                (
                    labels::TERMINATION_MESSAGE_PATH.to_owned(),
                    "/dev/termination-log".to_owned(),
                ),
                (
                    labels::TERMINATION_MESSAGE_POLICY.to_owned(),
                    policy.to_owned(),
                ),
            ]
            .into(),
            mounts: vec![cri::Mount {
                container_path: "/dev/termination-log".into(),
                host_path: dir.join("message").display().to_string(),
                ..Default::default()
            }],
            log_path: dir.join("0.log").display().to_string(),
            ..Default::default()
        }
    }

    #[test]
    fn the_file_the_container_wrote_is_its_message() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("message"), "it went wrong").unwrap();
        let mut status = exited(dir.path(), "File", 1);
        add_message(&mut status);
        assert_eq!(status.message, "it went wrong");
        // Only its end, when it is long.
        std::fs::write(dir.path().join("message"), "x".repeat(5000) + "end").unwrap();
        let mut status = exited(dir.path(), "File", 1);
        add_message(&mut status);
        assert_eq!(status.message.len(), 4096);
        assert!(status.message.ends_with("xend"));
        // A running container has none yet.
        status.state = cri::ContainerState::ContainerRunning as i32;
        status.message.clear();
        add_message(&mut status);
        assert!(status.message.is_empty());
    }

    #[test]
    fn a_failed_container_falls_back_to_its_log_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("message"), "").unwrap();
        let log: String = (0..100)
            .map(|i| format!("2026-11-24T06:00:00.000000000Z stdout F line {i}\n"))
            .collect::<String>()
            + "2026-11-24T06:00:00.000000000Z stderr P no newline\n";
        std::fs::write(dir.path().join("0.log"), log).unwrap();
        let mut status = exited(dir.path(), "FallbackToLogsOnError", 2);
        add_message(&mut status);
        assert!(
            status.message.starts_with("line 21\nline 22\n"),
            "{}",
            status.message
        );
        assert!(status.message.ends_with("line 99\nno newline"));
        // Not with the default policy, nor after a success.
        for (policy, code) in [("File", 2), ("FallbackToLogsOnError", 0)] {
            let mut status = exited(dir.path(), policy, code);
            add_message(&mut status);
            assert!(status.message.is_empty(), "{policy} {code}");
        }
    }
}
