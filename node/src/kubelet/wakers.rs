//! The pod workers to wake by pod UID: what notices a change of a pod
//! outside the API — the relist of the runtime, a change of a watched
//! ConfigMap or Secret the pod uses — wakes the pod's worker through them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Workers to wake when their pod changes, by UID.
pub type Wakers = Mutex<HashMap<String, Arc<Notify>>>;
