//! Annotations admission adds to the audit event of the request it runs
//! for, as kube-apiserver's admission plugins add them to the request's
//! context (`audit.AddAuditAnnotation`). The API server collects them
//! around each request with [`collect`]; admission calls [`add`] while
//! serving it. Outside a request (the API server's own writes, tests)
//! nothing is collected.

use std::cell::RefCell;
use std::collections::BTreeMap;

tokio::task_local! {
    static ANNOTATIONS: RefCell<BTreeMap<String, String>>;
}

/// Runs `request` and returns, with its output, the annotations added
/// while it ran.
pub async fn collect<F: Future>(request: F) -> (F::Output, BTreeMap<String, String>) {
    ANNOTATIONS
        .scope(RefCell::new(BTreeMap::new()), async move {
            let out = request.await;
            let annotations = ANNOTATIONS.with(RefCell::take);
            (out, annotations)
        })
        .await
}

/// Adds `annotations` to the current request's audit event (a key added
/// again keeps its last value, as a write retried on a conflict is
/// admitted again).
pub fn add(annotations: BTreeMap<String, String>) {
    if annotations.is_empty() {
        return;
    }
    // Outside `collect` there is no request to annotate.
    let _ = ANNOTATIONS.try_with(|a| a.borrow_mut().extend(annotations));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn annotations_added_while_a_request_runs_are_collected() {
        let (out, annotations) = collect(async {
            add(BTreeMap::from([("a".to_owned(), "1".to_owned())]));
            tokio::task::yield_now().await;
            add(BTreeMap::from([("a".to_owned(), "2".to_owned())]));
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(
            annotations,
            BTreeMap::from([("a".to_owned(), "2".to_owned())])
        );
        // Outside a request, adding is harmless and nothing is kept.
        add(BTreeMap::from([("b".to_owned(), "1".to_owned())]));
        let ((), none) = collect(async {}).await;
        assert!(none.is_empty());
    }
}
