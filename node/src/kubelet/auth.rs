//! Who may use the kubelet's API, as the real kubelet's webhook modes
//! decide (`--authentication-token-webhook`, `--authorization-mode=Webhook`,
//! anonymous off): a caller is authenticated by its client certificate
//! (signed by the cluster CA: CN the user, each O a group) or by a bearer
//! token the API server accepts in a TokenReview, and authorized by a
//! SubjectAccessReview for the verb of its method on the node's
//! subresource its path names (`nodes/proxy` for exec, attach, port
//! forwarding and logs of containers, `nodes/metrics`, `nodes/stats`,
//! `nodes/log`, `nodes/spec`). Answers are remembered as the kubelet's
//! webhook caches remember them: 2 minutes for tokens, 5 minutes for an
//! allowed request, 30 seconds for a refused one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use http::StatusCode;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};

const TOKEN_TTL: Duration = Duration::from_secs(120);
const ALLOWED_TTL: Duration = Duration::from_secs(300);
const DENIED_TTL: Duration = Duration::from_secs(30);
const MAX_ENTRIES: usize = 4096;

/// A caller of the kubelet's API.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Caller {
    pub name: String,
    pub groups: Vec<String>,
    pub uid: String,
    pub extra: BTreeMap<String, Vec<String>>,
}

/// The user and groups a client certificate names.
pub fn certificate_caller(der: &[u8]) -> Option<Caller> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    groups.push("system:authenticated".to_owned());
    Some(Caller {
        name,
        groups,
        uid: String::new(),
        extra: BTreeMap::new(),
    })
}

/// What a request asks of the node: the verb of its method and the
/// subresource of `nodes` its path falls under, as the kubelet's
/// `GetRequestAttributes` maps them.
pub fn request_attributes(method: &http::Method, path: &str) -> (&'static str, &'static str) {
    let verb = match *method {
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "get",
    };
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    let subresource = if under("/stats") {
        "stats"
    } else if under("/metrics") {
        "metrics"
    } else if under("/logs") {
        "log"
    } else if under("/spec") {
        "spec"
    } else if under("/pods") {
        "pods"
    } else if under("/checkpoint") {
        "checkpoint"
    } else {
        "proxy"
    };
    (verb, subresource)
}

/// The kubelet's refusal of an authenticated caller.
pub fn forbidden_message(caller: &Caller, verb: &str, subresource: &str) -> String {
    format!(
        "Forbidden (user={}, verb={verb}, resource=nodes, subresource={subresource})",
        caller.name
    )
}

/// Who asks for which verb on which subresource of the node.
type Question = (Caller, &'static str, &'static str);

/// Authentication and authorization through the API server.
pub struct KubeletAuth {
    client: kube::Client,
    node: String,
    tokens: Mutex<HashMap<String, (Option<Caller>, Instant)>>,
    decisions: Mutex<HashMap<Question, (bool, Instant)>>,
}

impl KubeletAuth {
    pub fn new(client: kube::Client, node: String) -> Self {
        Self {
            client,
            node,
            tokens: Mutex::default(),
            decisions: Mutex::default(),
        }
    }

    /// The caller a bearer token authenticates, by a TokenReview.
    pub async fn token_caller(&self, token: &str) -> Option<Caller> {
        let now = Instant::now();
        if let Some((caller, until)) = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(token)
            && *until > now
        {
            return caller.clone();
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let answer = Api::<TokenReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await;
        let caller = match answer {
            Ok(r) => r
                .status
                .filter(|s| s.authenticated == Some(true))
                .and_then(|s| {
                    let user = s.user?;
                    Some(Caller {
                        name: user.username.unwrap_or_default(),
                        groups: user.groups.unwrap_or_default(),
                        uid: user.uid.unwrap_or_default(),
                        extra: user.extra.unwrap_or_default().into_iter().collect(),
                    })
                }),
            Err(err) => {
                tracing::warn!(%err, "a TokenReview failed");
                return None;
            }
        };
        let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= MAX_ENTRIES {
            tokens.retain(|_, (_, until)| *until > now);
        }
        tokens.insert(token.to_owned(), (caller.clone(), now + TOKEN_TTL));
        caller
    }

    /// Ok when the API server allows `caller` the request; else the
    /// status and message to answer with.
    pub async fn authorize(
        &self,
        caller: &Caller,
        method: &http::Method,
        path: &str,
    ) -> Result<(), (StatusCode, String)> {
        let (verb, subresource) = request_attributes(method, path);
        let key = (caller.clone(), verb, subresource);
        let now = Instant::now();
        if let Some((allowed, until)) = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && *until > now
        {
            return if *allowed {
                Ok(())
            } else {
                Err((
                    StatusCode::FORBIDDEN,
                    forbidden_message(caller, verb, subresource),
                ))
            };
        }
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.name.clone()),
                groups: Some(caller.groups.clone()),
                uid: (!caller.uid.is_empty()).then(|| caller.uid.clone()),
                extra: (!caller.extra.is_empty())
                    .then(|| caller.extra.clone().into_iter().collect()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.to_owned()),
                    resource: Some("nodes".to_owned()),
                    subresource: Some(subresource.to_owned()),
                    name: Some(self.node.clone()),
                    group: Some(String::new()),
                    version: Some("v1".to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SubjectAccessReviewSpec::default()
            },
            ..SubjectAccessReview::default()
        };
        let allowed = match Api::<SubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await
        {
            Ok(r) => r.status.is_some_and(|s| s.allowed),
            Err(err) => {
                tracing::warn!(%err, "a SubjectAccessReview failed");
                return Err((
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "Authorization error (user={}, verb={verb}, resource=nodes, subresource={subresource})",
                        caller.name
                    ),
                ));
            }
        };
        let ttl = if allowed { ALLOWED_TTL } else { DENIED_TTL };
        let mut decisions = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if decisions.len() >= MAX_ENTRIES {
            decisions.retain(|_, (_, until)| *until > now);
        }
        decisions.insert(key, (allowed, now + ttl));
        if allowed {
            Ok(())
        } else {
            Err((
                StatusCode::FORBIDDEN,
                forbidden_message(caller, verb, subresource),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_node_subresources_as_the_kubelet_maps_them() {
        let get = http::Method::GET;
        assert_eq!(request_attributes(&get, "/metrics"), ("get", "metrics"));
        assert_eq!(
            request_attributes(&get, "/metrics/cadvisor"),
            ("get", "metrics")
        );
        assert_eq!(request_attributes(&get, "/stats/summary"), ("get", "stats"));
        assert_eq!(request_attributes(&get, "/logs/syslog"), ("get", "log"));
        assert_eq!(
            request_attributes(&get, "/containerLogs/ns/p/c"),
            ("get", "proxy")
        );
        assert_eq!(
            request_attributes(&http::Method::POST, "/exec/ns/p/c"),
            ("create", "proxy")
        );
        assert_eq!(request_attributes(&get, "/metricsx"), ("get", "proxy"));
        let jane = Caller {
            name: "jane".into(),
            groups: vec![],
            uid: String::new(),
            extra: BTreeMap::new(),
        };
        assert_eq!(
            forbidden_message(&jane, "create", "proxy"),
            "Forbidden (user=jane, verb=create, resource=nodes, subresource=proxy)"
        );
    }
}
