//! A container's log as the runtime writes it (the CRI log format, one
//! `<time> <stream> <P|F> <content>` record a line), rendered as
//! `kubectl logs` shows it.

/// One CRI log line: timestamp, stream, partial flag, content.
fn parse_cri_line(line: &str) -> Option<(&str, &str, bool, &str)> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let content = it.next().unwrap_or("");
    Some((time, stream, tag == "P", content))
}

/// A CRI log line as `kubectl logs` shows it (`None`: before `since`).
pub fn render(line: &str, timestamps: bool, since: Option<jiff::Timestamp>) -> Option<String> {
    let (time, _stream, partial, content) = parse_cri_line(line)?;
    if let Some(since) = since
        && time.parse::<jiff::Timestamp>().is_ok_and(|t| t < since)
    {
        return None;
    }
    let mut out = String::with_capacity(content.len() + 40);
    if timestamps {
        out.push_str(time);
        out.push(' ');
    }
    out.push_str(content);
    if !partial {
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_log_lines_render_like_kubectl_logs() {
        let full_line = "2026-11-22T10:00:00.123456789Z stdout F hello world";
        assert_eq!(
            render(full_line, false, None).as_deref(),
            Some("hello world\n")
        );
        assert_eq!(
            render(full_line, true, None).as_deref(),
            Some("2026-11-22T10:00:00.123456789Z hello world\n")
        );
        let partial = "2026-11-22T10:00:00.123456789Z stderr P part";
        assert_eq!(render(partial, false, None).as_deref(), Some("part"));
        let later: jiff::Timestamp = "2026-11-22T11:00:00Z".parse().unwrap();
        assert_eq!(render(full_line, false, Some(later)), None);
    }
}
