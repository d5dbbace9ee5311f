//! The choice among providers and keys, as kube-apiserver makes it: a
//! resource's transformers are its providers in the configuration's order,
//! each under its prefix (`k8s:enc:<provider>:v1:`; none for `identity`),
//! and an encrypting provider's keys are in turn transformers under
//! `<key name>:`. Writes use the first provider's first key. A read uses
//! the first transformer whose prefix matches and that opens the value,
//! and is stale (an update rewrites it) when that is not the first.

use super::providers::{ENCRYPTED_PREFIX, TransformError, Transformer};

/// What stands under a prefix: a cipher with its key, or a provider's keys.
#[derive(Debug, Clone)]
pub enum Node {
    Cipher(Transformer),
    Keys(PrefixTransformers),
}

/// A transformer and the prefix it reads and writes under.
#[derive(Debug, Clone)]
pub struct PrefixTransformer {
    pub prefix: Vec<u8>,
    pub node: Node,
}

/// Transformers tried in order, and the error of a value none matches.
#[derive(Debug, Clone)]
pub struct PrefixTransformers {
    pub transformers: Vec<PrefixTransformer>,
    no_match: TransformError,
}

impl PrefixTransformer {
    /// `identity`: no prefix.
    pub fn identity() -> Self {
        PrefixTransformer {
            prefix: Vec::new(),
            node: Node::Cipher(Transformer::Identity),
        }
    }

    /// An encrypting provider (`aesgcm`, `aescbc`, `secretbox`) and its
    /// named keys, the first of which writes.
    pub fn provider(name: &str, keys: Vec<(String, Transformer)>) -> Self {
        let kind = if name == "secretbox" {
            "Secretbox"
        } else {
            "AES"
        };
        let keys = keys
            .into_iter()
            .map(|(key, t)| PrefixTransformer {
                prefix: format!("{key}:").into_bytes(),
                node: Node::Cipher(t),
            })
            .collect();
        PrefixTransformer {
            prefix: [ENCRYPTED_PREFIX, format!("{name}:v1:").as_bytes()].concat(),
            node: Node::Keys(PrefixTransformers {
                transformers: keys,
                no_match: TransformError::NoMatchingKey(kind),
            }),
        }
    }

    fn seal(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        let body = match &self.node {
            Node::Cipher(t) => t.seal(data, aad)?,
            Node::Keys(keys) => keys.to_storage(data, aad)?,
        };
        Ok([self.prefix.as_slice(), &body].concat())
    }

    fn open(&self, data: &[u8], aad: &[u8]) -> Result<(Vec<u8>, bool), TransformError> {
        match &self.node {
            Node::Cipher(t) => Ok((t.open(data, aad)?, false)),
            Node::Keys(keys) => keys.from_storage(data, aad),
        }
    }
}

impl PrefixTransformers {
    /// A resource's providers; a value none matches has "no matching
    /// prefix found".
    pub fn new(transformers: Vec<PrefixTransformer>) -> Self {
        PrefixTransformers {
            transformers,
            no_match: TransformError::NoMatchingPrefix,
        }
    }

    /// The stored form of `data` at etcd key `aad`.
    pub fn to_storage(&self, data: &[u8], aad: &[u8]) -> Result<Vec<u8>, TransformError> {
        match self.transformers.first() {
            Some(first) => first.seal(data, aad),
            None => Ok(data.to_vec()),
        }
    }

    /// The plaintext of a stored value and whether it is stale.
    pub fn from_storage(&self, data: &[u8], aad: &[u8]) -> Result<(Vec<u8>, bool), TransformError> {
        let mut errors = Vec::new();
        for (i, t) in self.transformers.iter().enumerate() {
            let Some(rest) = data.strip_prefix(t.prefix.as_slice()) else {
                continue;
            };
            match t.open(rest, aad) {
                Ok((plain, stale)) => return Ok((plain, stale || i != 0)),
                // identity matches everything: its refusal of an encrypted
                // value lets the later providers try.
                Err(_) if t.prefix.is_empty() => continue,
                // One provider may be listed twice with different keys: a
                // failure never ends the search.
                Err(e) => errors.push(e),
            }
        }
        match errors.len() {
            0 => Err(self.no_match.clone()),
            1 => Err(errors.remove(0)),
            _ => Err(TransformError::Aggregate(errors)),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const KEY: &[u8] = b"/registry/secrets/default/s";

    /// Providers of one key each (`identity` for that name).
    pub(crate) fn chain(ts: Vec<(&str, &str, Transformer)>) -> PrefixTransformers {
        PrefixTransformers::new(
            ts.into_iter()
                .map(|(p, k, t)| match t {
                    Transformer::Identity => PrefixTransformer::identity(),
                    t => PrefixTransformer::provider(p, vec![(k.to_string(), t)]),
                })
                .collect(),
        )
    }

    #[test]
    fn reads_try_every_key_and_flag_all_but_the_first_stale() {
        let old = Transformer::aes_gcm(&[1; 32]).unwrap();
        let new = Transformer::aes_gcm(&[2; 32]).unwrap();
        let before = chain(vec![("aesgcm", "key1", old.clone())]);
        let stored = before.to_storage(b"{}", KEY).unwrap();
        let rotated = chain(vec![("aesgcm", "key2", new), ("aesgcm", "key1", old)]);
        assert_eq!(
            rotated.from_storage(&stored, KEY).unwrap(),
            (b"{}".to_vec(), true)
        );
        let rewritten = rotated.to_storage(b"{}", KEY).unwrap();
        assert!(rewritten.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
        assert_eq!(
            rotated.from_storage(&rewritten, KEY).unwrap(),
            (b"{}".to_vec(), false)
        );
    }

    #[test]
    fn identity_reads_plaintext_but_not_encrypted_values() {
        let enc = chain(vec![(
            "aescbc",
            "k",
            Transformer::aes_cbc(&[1; 32]).unwrap(),
        )]);
        let with_identity = chain(vec![
            ("aescbc", "k", Transformer::aes_cbc(&[1; 32]).unwrap()),
            ("identity", "", Transformer::Identity),
        ]);
        assert_eq!(
            with_identity.from_storage(b"{}", KEY).unwrap(),
            (b"{}".to_vec(), true)
        );
        assert_eq!(
            enc.from_storage(b"{}", KEY),
            Err(TransformError::NoMatchingPrefix)
        );
        let identity_first = chain(vec![
            ("identity", "", Transformer::Identity),
            ("aescbc", "k", Transformer::aes_cbc(&[1; 32]).unwrap()),
        ]);
        let stored = enc.to_storage(b"{}", KEY).unwrap();
        assert_eq!(
            identity_first.from_storage(&stored, KEY).unwrap(),
            (b"{}".to_vec(), true)
        );
        assert_eq!(identity_first.to_storage(b"{}", KEY).unwrap(), b"{}");
        let only_identity = chain(vec![("identity", "", Transformer::Identity)]);
        assert_eq!(
            only_identity.from_storage(&stored, KEY),
            Err(TransformError::NoMatchingPrefix)
        );
    }

    #[test]
    fn a_value_under_an_unknown_key_name_has_no_matching_key() {
        let a = chain(vec![(
            "secretbox",
            "a",
            Transformer::secretbox(&[1; 32]).unwrap(),
        )]);
        let b = chain(vec![(
            "secretbox",
            "b",
            Transformer::secretbox(&[1; 32]).unwrap(),
        )]);
        let stored = a.to_storage(b"{}", KEY).unwrap();
        assert_eq!(
            b.from_storage(&stored, KEY),
            Err(TransformError::NoMatchingKey("Secretbox"))
        );
        assert_eq!(
            TransformError::NoMatchingKey("Secretbox").to_string(),
            "no matching key was found for the provided Secretbox transformer"
        );
    }

    #[test]
    fn keys_of_one_provider_are_tried_in_order_and_all_but_the_first_are_stale() {
        let k1 = Transformer::aes_gcm(&[1; 32]).unwrap();
        let k2 = Transformer::aes_gcm(&[2; 32]).unwrap();
        let one = PrefixTransformers::new(vec![PrefixTransformer::provider(
            "aesgcm",
            vec![("key1".into(), k1.clone())],
        )]);
        let both = PrefixTransformers::new(vec![PrefixTransformer::provider(
            "aesgcm",
            vec![("key2".into(), k2), ("key1".into(), k1)],
        )]);
        let stored = one.to_storage(b"{}", KEY).unwrap();
        assert_eq!(
            both.from_storage(&stored, KEY).unwrap(),
            (b"{}".to_vec(), true)
        );
        let rewritten = both.to_storage(b"{}", KEY).unwrap();
        assert!(rewritten.starts_with(b"k8s:enc:aesgcm:v1:key2:"));
        assert_eq!(
            both.from_storage(&rewritten, KEY).unwrap(),
            (b"{}".to_vec(), false)
        );
    }

    #[test]
    fn failures_of_several_providers_are_listed() {
        let a = chain(vec![(
            "aescbc",
            "k",
            Transformer::aes_cbc(&[1; 32]).unwrap(),
        )]);
        let stored = a.to_storage(b"{}", KEY).unwrap();
        let tampered = [&stored[..stored.len() - 1], &[stored[stored.len() - 1] ^ 1]].concat();
        let two = chain(vec![
            ("aesgcm", "k", Transformer::aes_gcm(&[1; 32]).unwrap()),
            ("aescbc", "k", Transformer::aes_cbc(&[2; 32]).unwrap()),
            ("aescbc", "k", Transformer::aes_cbc(&[3; 32]).unwrap()),
        ]);
        // Wrong CBC keys fail on padding or give other bytes; either way
        // the plaintext never comes out.
        if let Ok((v, _)) = two.from_storage(&tampered, KEY) {
            assert_ne!(v, b"{}");
        }
        let gcm = chain(vec![(
            "aesgcm",
            "k",
            Transformer::aes_gcm(&[1; 32]).unwrap(),
        )]);
        let sealed = gcm.to_storage(b"{}", KEY).unwrap();
        let twice = chain(vec![
            ("aesgcm", "k", Transformer::aes_gcm(&[2; 32]).unwrap()),
            ("aesgcm", "k", Transformer::aes_gcm(&[3; 32]).unwrap()),
        ]);
        assert_eq!(
            twice.from_storage(&sealed, KEY).unwrap_err().to_string(),
            "[cipher: message authentication failed, cipher: message authentication failed]"
        );
    }
}
