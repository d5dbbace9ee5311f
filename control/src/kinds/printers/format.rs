//! The formatting helpers kube-apiserver's printers share: ages, label
//! selectors, truncated lists.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::Value;

/// A string at a JSON pointer, or "".
pub fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// An integer at a JSON pointer.
pub fn int_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// An array at a JSON pointer, or empty.
pub fn list_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The number of entries of the map at a JSON pointer.
pub fn map_len(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len() as i64)
}

/// A timestamp field (Time or MicroTime); `None` for absent, null, or Go's
/// zero time (what `IsZero` reports).
pub fn time_at(v: &Value, pointer: &str) -> Option<Timestamp> {
    let ts: Timestamp = str_at(v, pointer).parse().ok()?;
    (ts.as_second() != ZERO_TIME_SECONDS).then_some(ts)
}

/// Go's `time.Time{}` in Unix seconds (0001-01-01T00:00:00Z).
const ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// `translateTimestampSince`: the age of a timestamp, `<unknown>` if unset.
pub fn since(now: Timestamp, then: Option<Timestamp>) -> String {
    match then {
        Some(t) => human_duration(now.as_nanosecond() - t.as_nanosecond()),
        None => "<unknown>".into(),
    }
}

/// The age of an object (`metadata.creationTimestamp`).
pub fn age(now: Timestamp, obj: &Value) -> String {
    since(now, time_at(obj, "/metadata/creationTimestamp"))
}

/// apimachinery `duration.HumanDuration`: ~2-3 significant figures
/// (`45s`, `5m3s`, `12m`, `3h5m`, `20h`, `2d3h`, `30d`, `2y30d`).
pub fn human_duration(nanos: i128) -> String {
    const SECOND: i128 = 1_000_000_000;
    const MINUTE: i128 = 60 * SECOND;
    const HOUR: i128 = 60 * MINUTE;
    // Go's int(d.Seconds()) truncates toward zero.
    let seconds = nanos / SECOND;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = nanos / MINUTE;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = nanos / HOUR;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        }
    } else if hours < 24 * 365 * 2 {
        format!("{}d", hours / 24)
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{dy}d", hours / 24 / 365)
        }
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// `labels.Set.String`: `k=v` pairs sorted as strings, joined by commas.
pub fn label_set(map: Option<&Value>) -> String {
    let mut pairs: Vec<String> = map
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// `labels.FormatLabels`: a label set, `<none>` when empty.
pub fn format_labels(map: Option<&Value>) -> String {
    let s = label_set(map);
    if s.is_empty() { "<none>".into() } else { s }
}

/// `metav1.LabelSelectorAsSelector(..).String()`: requirements sorted by key
/// (`app=web,tier in (a,b),!legacy`); "" for a nil or empty selector.
pub fn label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return String::new();
    };
    // (key, rendered requirement), in the order LabelSelectorAsSelector
    // adds them: matchLabels first, then matchExpressions.
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(expr, "/key").to_string();
        let values: BTreeSet<&str> = list_at(expr, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let values = values.into_iter().collect::<Vec<_>>().join(",");
        let rendered = match str_at(expr, "/operator") {
            "In" => format!("{key} in ({values})"),
            "NotIn" => format!("{key} notin ({values})"),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key, rendered));
    }
    // sort.Sort(ByKey) is not stable, but keys are unique in practice.
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: a selector, `<none>` when it selects all.
pub fn format_label_selector(selector: Option<&Value>) -> String {
    let s = label_selector(selector);
    if s.is_empty() { "<none>".into() } else { s }
}

/// `listWithMoreString`: the first three, `+ N more...`, `<unset>` if none.
pub fn list_with_more(list: &[String], count: usize) -> String {
    const MAX: usize = 3;
    let ret = list.iter().take(MAX).cloned().collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else if ret.is_empty() {
        "<unset>".into()
    } else {
        ret
    }
}

/// `layoutContainerCells`: container names and images, comma-joined.
pub fn container_cells(pod_spec: &Value) -> (String, String) {
    let containers = list_at(pod_spec, "/containers");
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// `"<none>"` for an empty string.
pub fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_use_human_duration() {
        let s = 1_000_000_000i128;
        for (secs, want) in [
            (0, "0s"),
            (-1, "0s"),
            (-2, "<invalid>"),
            (1, "1s"),
            (119, "119s"),
            (120, "2m"),
            (303, "5m3s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 30 * 60, "3h30m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (49 * 3600, "2d1h"),
            (8 * 86400, "8d"),
            (730 * 86400, "2y"),
            (731 * 86400, "2y1d"),
            (8 * 365 * 86400, "8y"),
        ] {
            assert_eq!(human_duration(secs * s), want, "{secs}s");
        }
        // Sub-second parts are truncated like Go's int(d.Seconds()).
        assert_eq!(human_duration(119 * s + s / 2), "119s");
    }
}
