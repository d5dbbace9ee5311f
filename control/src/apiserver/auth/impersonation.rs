//! User impersonation (`kubectl --as`, `--as-group`, `--as-uid`):
//! kube-apiserver's `WithImpersonation` filter. An authenticated request
//! with `Impersonate-User` (and optionally `Impersonate-Group`,
//! `Impersonate-Uid`, `Impersonate-Extra-<key>`) is served as that user.
//! Each part of an impersonation (the user or service account, every
//! group, the UID, every extra) is authorized with the verb `impersonate`
//! for the authenticated user first ([`requested_access`]).

use http::HeaderMap;
use percent_encoding::percent_decode_str;

use super::User;
use super::authorizer::Attributes;
use crate::api::status::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

const AUTHENTICATED: &str = "system:authenticated";
const UNAUTHENTICATED: &str = "system:unauthenticated";
const ANONYMOUS: &str = "system:anonymous";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The user the request acts as: `authenticated` itself without
/// impersonation headers, otherwise the user they name.
pub fn acting_user(authenticated: User, headers: &HeaderMap) -> Result<User, ApiError> {
    let value = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let name = value(USER);
    let uid = value(UID);
    let groups: Vec<String> = headers
        .get_all(GROUP)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (header, v) in headers {
        if let Some(key) = header.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = v.to_str()
        {
            extra.entry(unescape(key)).or_default().push(v.to_owned());
        }
    }
    if name.is_empty() {
        if groups.is_empty() && extra.is_empty() && uid.is_empty() {
            return Ok(authenticated);
        }
        return Err(without_user(&groups, &extra, &uid));
    }
    let service_account_groups = split_service_account(&name)
        .map(|(namespace, _)| {
            vec![
                "system:serviceaccounts".to_owned(),
                format!("system:serviceaccounts:{namespace}"),
            ]
        })
        .filter(|_| groups.is_empty());
    let mut groups = service_account_groups.unwrap_or(groups);
    if name == ANONYMOUS {
        if !groups.iter().any(|g| g == UNAUTHENTICATED) {
            groups.push(UNAUTHENTICATED.to_owned());
        }
    } else if !groups
        .iter()
        .any(|g| g == AUTHENTICATED || g == UNAUTHENTICATED)
    {
        groups.push(AUTHENTICATED.to_owned());
    }
    tracing::debug!(
        user = %authenticated.name,
        as_user = %name,
        ?groups,
        "impersonating"
    );
    Ok(User {
        name,
        groups,
        uid,
        extra,
    })
}

/// What the impersonation headers ask `authenticated` to be allowed:
/// `impersonate` on the user (`users`, or the ServiceAccount its name
/// names), on each group, on the UID (`uids`) and on each extra value
/// (`userextras/<key>`), as kube-apiserver's filter checks them.
pub fn requested_access(authenticated: &User, headers: &HeaderMap) -> Vec<Attributes> {
    let ask =
        |group: &str, resource: &str, subresource: &str, namespace: &str, name: &str| Attributes {
            user: authenticated.clone(),
            verb: "impersonate".into(),
            resource_request: true,
            namespace: namespace.into(),
            api_group: group.into(),
            resource: resource.into(),
            subresource: subresource.into(),
            name: name.into(),
            path: String::new(),
        };
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    for user in values(USER) {
        out.push(match split_service_account(&user) {
            Some((namespace, name)) => ask("", "serviceaccounts", "", namespace, name),
            None => ask("", "users", "", "", &user),
        });
    }
    for group in values(GROUP) {
        out.push(ask("", "groups", "", "", &group));
    }
    for uid in values(UID) {
        out.push(ask("authentication.k8s.io", "uids", "", "", &uid));
    }
    for (header, v) in headers {
        if let Some(key) = header.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = v.to_str()
        {
            out.push(ask(
                "authentication.k8s.io",
                "userextras",
                &unescape(key),
                "",
                v,
            ));
        }
    }
    out
}

/// `serviceaccount.SplitUsername`: the namespace and name of a service
/// account's user name, when both are valid names.
fn split_service_account(user: &str) -> Option<(&str, &str)> {
    let (namespace, name) = user.strip_prefix(SERVICE_ACCOUNT_PREFIX)?.split_once(':')?;
    use crate::validation::formats::{is_dns1123_label, is_dns1123_subdomain};
    (!name.contains(':')
        && is_dns1123_label(namespace).is_empty()
        && is_dns1123_subdomain(name).is_empty())
    .then_some((namespace, name))
}

/// An extra's key, %-decoded (`url.PathUnescape`), or as sent when it is
/// not valid %-encoding.
fn unescape(key: &str) -> String {
    let well_formed = key.split('%').skip(1).all(|escaped| {
        escaped
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return key.to_owned();
    }
    percent_decode_str(key)
        .decode_utf8()
        .map_or_else(|_| key.to_owned(), Into::into)
}

/// Groups, extras or a UID asked for without a user: kube-apiserver's
/// error, its requests shown as Go prints `[]v1.ObjectReference`.
fn without_user(
    groups: &[String],
    extra: &std::collections::BTreeMap<String, Vec<String>>,
    uid: &str,
) -> ApiError {
    // {Kind Namespace Name UID APIVersion ResourceVersion FieldPath}
    let reference = |kind: &str, name: &str, api_version: &str, field_path: &str| {
        format!("{{{kind}  {name}  {api_version}  {field_path}}}")
    };
    let mut requests: Vec<String> = groups
        .iter()
        .map(|g| reference("Group", g, "", ""))
        .collect();
    for (key, values) in extra {
        for v in values {
            requests.push(reference("UserExtra", v, "authentication.k8s.io/v1", key));
        }
    }
    if !uid.is_empty() {
        requests.push(reference("UID", uid, "authentication.k8s.io/v1", ""));
    }
    ApiError::new(
        500,
        "InternalError",
        format!(
            "Internal error occurred: requested [{}] without impersonating a user",
            requests.join(" ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn admin() -> User {
        User {
            name: "kubernetes-admin".into(),
            groups: vec!["system:masters".into(), AUTHENTICATED.into()],
            ..User::default()
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn without_headers_the_request_acts_as_its_own_user() {
        let user = acting_user(admin(), &headers(&[])).unwrap();
        assert_eq!(user.name, "kubernetes-admin");
    }

    #[test]
    fn an_impersonated_user_has_the_groups_asked_for_and_is_authenticated() {
        let user = acting_user(
            admin(),
            &headers(&[
                (USER, "jane"),
                (GROUP, "devs"),
                (GROUP, "ops"),
                (UID, "1234"),
                ("impersonate-extra-scopes", "view"),
                ("impersonate-extra-scopes", "edit"),
                ("impersonate-extra-example.com%2fteam", "a"),
            ]),
        )
        .unwrap();
        assert_eq!(user.name, "jane");
        assert_eq!(user.groups, ["devs", "ops", AUTHENTICATED]);
        assert_eq!(user.uid, "1234");
        assert_eq!(user.extra["scopes"], ["view", "edit"]);
        assert_eq!(user.extra["example.com/team"], ["a"]);
        assert_eq!(unescape("bad%2"), "bad%2", "malformed: kept as sent");
        // Without groups: only system:authenticated.
        let user = acting_user(admin(), &headers(&[(USER, "jane")])).unwrap();
        assert_eq!(user.groups, [AUTHENTICATED]);
        // A group that already says whether the user is authenticated.
        let user = acting_user(
            admin(),
            &headers(&[(USER, "jane"), (GROUP, UNAUTHENTICATED)]),
        )
        .unwrap();
        assert_eq!(user.groups, [UNAUTHENTICATED]);
        let user = acting_user(admin(), &headers(&[(USER, ANONYMOUS)])).unwrap();
        assert_eq!(user.groups, [UNAUTHENTICATED]);
    }

    #[test]
    fn a_service_account_gets_its_groups_unless_groups_are_asked_for() {
        let user = acting_user(
            admin(),
            &headers(&[(USER, "system:serviceaccount:team:builder")]),
        )
        .unwrap();
        assert_eq!(
            user.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:team",
                AUTHENTICATED
            ]
        );
        let user = acting_user(
            admin(),
            &headers(&[
                (USER, "system:serviceaccount:team:builder"),
                (GROUP, "devs"),
            ]),
        )
        .unwrap();
        assert_eq!(user.groups, ["devs", AUTHENTICATED]);
        // Not a valid service account name: a plain user.
        let user = acting_user(
            admin(),
            &headers(&[(USER, "system:serviceaccount:Team:builder")]),
        )
        .unwrap();
        assert_eq!(user.groups, [AUTHENTICATED]);
    }

    #[test]
    fn each_part_of_an_impersonation_is_asked_for() {
        let asked = requested_access(
            &admin(),
            &headers(&[
                (USER, "system:serviceaccount:team:builder"),
                (GROUP, "devs"),
                (UID, "7"),
                ("impersonate-extra-scopes", "view"),
            ]),
        );
        let parts: Vec<_> = asked
            .iter()
            .map(|a| {
                (
                    a.verb.as_str(),
                    a.api_group.as_str(),
                    a.resource.as_str(),
                    a.subresource.as_str(),
                    a.namespace.as_str(),
                    a.name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            parts,
            [
                ("impersonate", "", "serviceaccounts", "", "team", "builder"),
                ("impersonate", "", "groups", "", "", "devs"),
                ("impersonate", "authentication.k8s.io", "uids", "", "", "7"),
                (
                    "impersonate",
                    "authentication.k8s.io",
                    "userextras",
                    "scopes",
                    "",
                    "view"
                ),
            ]
        );
        assert!(asked.iter().all(|a| a.user.name == "kubernetes-admin"));
        assert!(requested_access(&admin(), &headers(&[])).is_empty());
    }

    #[test]
    fn groups_without_a_user_are_refused() {
        let err = acting_user(admin(), &headers(&[(GROUP, "devs"), (UID, "7")])).unwrap_err();
        assert_eq!(err.code, 500);
        assert_eq!(
            err.message,
            "Internal error occurred: requested [{Group  devs    } {UID  7  authentication.k8s.io/v1  }] without impersonating a user"
        );
    }
}
