//! Bootstrap token authentication, as kube-apiserver's
//! `--enable-bootstrap-token-auth`: a bearer token `<id>.<secret>` (six
//! and sixteen characters of `[a-z0-9]`) is accepted when the Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`
//! holds that secret, allows authentication
//! (`usage-bootstrap-authentication: true`), has not expired and is not
//! being deleted. The user is `system:bootstrap:<id>` in
//! `system:bootstrappers` and the token's `auth-extra-groups`. A node joins
//! with one: it may ask for its client certificate and nothing else.

use base64::Engine as _;
use serde_json::Value;

use super::User;
use crate::kinds;
use crate::registry::Registry;

pub use baton_apimachinery::bootstrap_token::{
    GROUP, NAMESPACE, SECRET_PREFIX, SECRET_TYPE, parse,
};

/// A value of the Secret's `data`, decoded.
pub fn data(secret: &Value, key: &str) -> Option<String> {
    if let Some(v) = secret
        .pointer(&format!("/data/{key}"))
        .and_then(Value::as_str)
    {
        let bytes = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
        return String::from_utf8(bytes).ok();
    }
    None
}

/// Whether the token Secret `secret` has expired at `now` (seconds).
pub fn expired(secret: &Value, now: i64) -> bool {
    data(secret, "expiration")
        .and_then(|e| e.parse::<jiff::Timestamp>().ok())
        .is_some_and(|t| t.as_second() <= now)
}

/// The user the Secret grants for `token_secret`, or why not.
pub fn user_of(
    secret: &Value,
    id: &str,
    token_secret: &str,
    now: i64,
) -> Result<User, &'static str> {
    if secret.get("type").and_then(Value::as_str) != Some(SECRET_TYPE) {
        return Err("the secret is not a bootstrap token");
    }
    if secret
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        return Err("the token is being deleted");
    }
    if data(secret, "token-id").as_deref() != Some(id) {
        return Err("the token id does not match");
    }
    let stored = data(secret, "token-secret").unwrap_or_default();
    // Compared in constant time.
    let same = stored.len() == token_secret.len()
        && stored
            .bytes()
            .zip(token_secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err("the token secret does not match");
    }
    if expired(secret, now) {
        return Err("the token has expired");
    }
    if data(secret, "usage-bootstrap-authentication").as_deref() != Some("true") {
        return Err("the token may not authenticate");
    }
    let mut groups = vec![GROUP.to_owned()];
    for g in data(secret, "auth-extra-groups")
        .unwrap_or_default()
        .split(',')
    {
        let g = g.trim();
        if g.starts_with("system:bootstrappers:") && !groups.iter().any(|x| x == g) {
            groups.push(g.to_owned());
        }
    }
    groups.push("system:authenticated".to_owned());
    Ok(User {
        name: format!("system:bootstrap:{id}"),
        groups,
        ..User::default()
    })
}

/// Authenticates `token` when it is a bootstrap token; `None` when it is
/// not of the format (another authenticator's), `Some(None)` when it is
/// and is refused.
pub async fn authenticate(registry: &Registry, token: &str) -> Option<Option<User>> {
    let (id, token_secret) = parse(token)?;
    let secrets = kinds::find("", "v1", "secrets").expect("secrets served");
    let name = format!("{SECRET_PREFIX}{id}");
    let secret = match registry.get_recent(secrets, NAMESPACE, &name).await {
        Ok(Some(secret)) => secret,
        _ => {
            tracing::debug!(%id, "bootstrap token refused: no such secret");
            return Some(None);
        }
    };
    match user_of(
        &secret,
        id,
        token_secret,
        jiff::Timestamp::now().as_second(),
    ) {
        Ok(user) => Some(Some(user)),
        Err(why) => {
            tracing::debug!(%id, why, "bootstrap token refused");
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn secret(expiration: &str) -> Value {
        json!({
            "type": SECRET_TYPE,
            "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
            "data": {
                "token-id": b64("abcdef"),
                "token-secret": b64("0123456789abcdef"),
                "usage-bootstrap-authentication": b64("true"),
                "expiration": b64(expiration),
                "auth-extra-groups": b64("system:bootstrappers:workers,devs"),
            },
        })
    }

    #[test]
    fn a_valid_token_is_a_bootstrapper() {
        let now = "2026-01-01T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_second();
        let s = secret("2026-01-02T00:00:00Z");
        let user = user_of(&s, "abcdef", "0123456789abcdef", now).unwrap();
        assert_eq!(user.name, "system:bootstrap:abcdef");
        assert_eq!(
            user.groups,
            [
                "system:bootstrappers",
                "system:bootstrappers:workers",
                "system:authenticated"
            ],
            "extra groups outside system:bootstrappers: are dropped"
        );
        assert_eq!(
            user_of(&s, "abcdef", "0123456789abcdex", now).unwrap_err(),
            "the token secret does not match"
        );
        let old = secret("2025-12-31T00:00:00Z");
        assert_eq!(
            user_of(&old, "abcdef", "0123456789abcdef", now).unwrap_err(),
            "the token has expired"
        );
        assert!(expired(&old, now));
        let mut unusable = s.clone();
        unusable["data"]["usage-bootstrap-authentication"] = json!(b64("false"));
        assert!(user_of(&unusable, "abcdef", "0123456789abcdef", now).is_err());
    }
}
