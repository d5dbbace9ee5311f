//! Completion indexes of Indexed Jobs: the index a pod carries
//! (`getCompletionIndex`) and the interval form of `status.completedIndexes`
//! (`"1,3-5,7"`, `parseIndexesFromString` / `succeededIndexes.String`).

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Pod;

use crate::validation::batch::COMPLETION_INDEX;

/// The pod's completion index (annotation, else label), when valid.
pub fn of_pod(p: &Pod) -> Option<i32> {
    let from = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.and_then(|m| m.get(COMPLETION_INDEX))
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|i| *i >= 0)
    };
    from(p.metadata.annotations.as_ref()).or_else(|| from(p.metadata.labels.as_ref()))
}

/// Parses `"1,3-5"`; indexes at or above `completions` are dropped.
pub fn parse(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            out.extend((lo.max(0)..=hi.min(completions - 1)).filter(|i| *i >= lo));
        }
    }
    out
}

/// The interval form: runs of consecutive indexes as `a-b`, single
/// indexes alone.
pub fn format(set: &BTreeSet<i32>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if end == start {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

/// The lowest `n` indexes below `completions` that are neither succeeded
/// nor held by an active pod (`firstPendingIndexes`).
pub fn first_pending(
    succeeded: &BTreeSet<i32>,
    active: &BTreeSet<i32>,
    n: usize,
    completions: i32,
) -> Vec<i32> {
    (0..completions)
        .filter(|i| !succeeded.contains(i) && !active.contains(i))
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_form_round_trips() {
        let s: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format(&s), "0-2,4,6-7");
        assert_eq!(parse("0-2,4,6-7", 10), s);
        assert_eq!(parse("0-2,4,6-7", 5), [0, 1, 2, 4].into());
        assert_eq!(format(&BTreeSet::new()), "");
    }

    #[test]
    fn pending_indexes_skip_done_and_running() {
        assert_eq!(first_pending(&[0, 2].into(), &[1].into(), 2, 6), vec![3, 4]);
        assert_eq!(
            first_pending(&[0, 1].into(), &[].into(), 5, 2),
            Vec::<i32>::new()
        );
    }
}
