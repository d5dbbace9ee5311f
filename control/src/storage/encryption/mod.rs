//! Encryption at rest (kube-apiserver's `--encryption-provider-config`):
//! the values of the configured resources are transformed on their way to
//! and from etcd. Every read, write and watch of the store passes through
//! [`Encryption`], which the etcd wrapper holds; the caches above it only
//! see plaintext.

pub mod config;
pub mod prefix;
pub mod providers;

use std::borrow::Cow;

pub use config::{ConfigError, EncryptionConfig};
pub use prefix::PrefixTransformers;
pub use providers::TransformError;

use crate::kinds::RESOURCES;
use crate::storage::keys;

/// The transformers of every configured resource, by etcd key prefix.
#[derive(Debug, Default)]
pub struct Encryption {
    config: EncryptionConfig,
    /// The catalog's stored resources the configuration names, by key
    /// prefix.
    prefixes: Vec<(String, PrefixTransformers)>,
}

impl Encryption {
    /// No resource is transformed.
    pub fn none() -> Self {
        Self::default()
    }

    /// The configured resources of the catalog, by key prefix.
    pub fn new(config: EncryptionConfig) -> Self {
        let mut prefixes: Vec<(String, PrefixTransformers)> = Vec::new();
        for r in RESOURCES {
            let stored = r.strategy.stored_as().unwrap_or(r);
            let prefix = keys::resource_prefix(stored);
            if prefixes.iter().any(|(p, _)| *p == prefix) {
                continue;
            }
            if let Some(t) = config.for_resource(stored.group, stored.plural) {
                prefixes.push((prefix, t.clone()));
            }
        }
        Encryption { config, prefixes }
    }

    /// Whether any resource is transformed.
    pub fn is_enabled(&self) -> bool {
        !self.config.is_empty()
    }

    /// The transformers of the value at `key`: a catalog resource by its
    /// prefix, or a resource outside the catalog (`/registry/<group with a
    /// dot>/<plural>/…`) by its group and plural.
    fn for_key(&self, key: &str) -> Option<&PrefixTransformers> {
        if !self.is_enabled() {
            return None;
        }
        if let Some((_, t)) = self
            .prefixes
            .iter()
            .find(|(p, _)| key.starts_with(p.as_str()))
        {
            return Some(t);
        }
        let rest = key.strip_prefix(keys::ROOT)?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let (group, plural) = (parts.next()?, parts.next()?);
        if !group.contains('.') {
            return None;
        }
        self.config.for_resource(group, plural)
    }

    /// The stored form of a value written at `key`.
    pub fn to_storage<'a>(
        &self,
        key: &str,
        value: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, TransformError> {
        match self.for_key(key) {
            Some(t) => Ok(Cow::Owned(t.to_storage(value, key.as_bytes())?)),
            None => Ok(Cow::Borrowed(value)),
        }
    }

    /// The plaintext of a value read at `key`, and whether it is stale
    /// (not written by the first provider: an update rewrites it even when
    /// the object is unchanged).
    pub fn from_storage<'a>(
        &self,
        key: &str,
        value: &'a [u8],
    ) -> Result<(Cow<'a, [u8]>, bool), TransformError> {
        match self.for_key(key) {
            Some(t) => {
                let (plain, stale) = t.from_storage(value, key.as_bytes())?;
                Ok((Cow::Owned(plain), stale))
            }
            None => Ok((Cow::Borrowed(value), false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - aesgcm:
          keys: [{name: key1, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]
  - resources: ['*.example.com']
    providers:
      - secretbox:
          keys: [{name: k, secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}]
"#;

    #[test]
    fn only_the_configured_resources_are_transformed() {
        let e = Encryption::new(EncryptionConfig::parse(CONFIG).unwrap());
        let key = "/registry/secrets/default/s";
        let stored = e.to_storage(key, b"{}").unwrap();
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:key1:"));
        let (plain, stale) = e.from_storage(key, &stored).unwrap();
        assert_eq!((&*plain, stale), (&b"{}"[..], false));
        let pod = "/registry/pods/default/p";
        assert!(matches!(
            e.to_storage(pod, b"{}").unwrap(),
            Cow::Borrowed(_)
        ));
        let widget = "/registry/example.com/widgets/default/w";
        assert!(
            e.to_storage(widget, b"{}")
                .unwrap()
                .starts_with(b"k8s:enc:secretbox:v1:k:")
        );
        // A plaintext Secret with no identity provider is unreadable.
        assert_eq!(
            e.from_storage(key, b"{}").unwrap_err(),
            TransformError::NoMatchingPrefix
        );
        let none = Encryption::none();
        assert!(matches!(
            none.to_storage(key, b"{}").unwrap(),
            Cow::Borrowed(_)
        ));
    }
}
