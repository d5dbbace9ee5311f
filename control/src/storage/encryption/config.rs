//! kube-apiserver's `--encryption-provider-config` file: an
//! `EncryptionConfiguration` (`apiserver.config.k8s.io/v1`) naming, per
//! group of resources, the providers that write (the first) and read (all)
//! their values. Validation and its messages follow kube-apiserver's.

use base64::Engine as _;
use serde::Deserialize;

use super::prefix::{PrefixTransformer, PrefixTransformers};
use super::providers::Transformer;

const API_VERSION: &str = "apiserver.config.k8s.io/v1";
const KIND: &str = "EncryptionConfiguration";
const AES_KEY_SIZES: &[usize] = &[16, 24, 32];
const SECRETBOX_KEY_SIZES: &[usize] = &[32];

/// Why an encryption configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("error reading encryption provider configuration file {path:?}: {message}")]
    Read { path: String, message: String },
    #[error("encryption provider configuration file {0:?} is empty")]
    Empty(String),
    #[error("error decoding encryption provider configuration file {path:?}: {message}")]
    Decode { path: String, message: String },
    #[error("error while parsing file: {0}")]
    Invalid(String),
    #[error("resource {resource:?} is masked by earlier rule {rule:?}")]
    Masked { resource: String, rule: String },
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    resources: Vec<ResourceConfiguration>,
}

#[derive(Debug, Deserialize)]
struct ResourceConfiguration {
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    providers: Vec<ProviderConfiguration>,
}

#[derive(Debug, Deserialize)]
struct ProviderConfiguration {
    aesgcm: Option<Keys>,
    aescbc: Option<Keys>,
    secretbox: Option<Keys>,
    identity: Option<serde_json::Value>,
    kms: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Keys {
    #[serde(default)]
    keys: Vec<Key>,
}

#[derive(Debug, Deserialize)]
struct Key {
    #[serde(default)]
    name: String,
    #[serde(default)]
    secret: String,
}

/// A resource pattern of the file: `secrets`, `deployments.apps`, `*.apps`,
/// `*.` (every core resource) or `*.*` (everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    /// Splits at the first dot, as `schema.ParseGroupResource` does.
    pub fn parse(s: &str) -> Self {
        match s.split_once('.') {
            Some((resource, group)) => GroupResource {
                group: group.to_string(),
                resource: resource.to_string(),
            },
            None => GroupResource {
                group: String::new(),
                resource: s.to_string(),
            },
        }
    }

    /// Whether the pattern covers `plural` of `group`.
    pub fn matches(&self, group: &str, plural: &str) -> bool {
        (self.group == "*" || self.group == group)
            && (self.resource == "*" || self.resource == plural)
    }

    /// The pattern as the file spells it (`secrets`, `*.apps`, `*.`).
    fn spelled(&self) -> String {
        match (self.group.as_str(), self.resource.as_str()) {
            ("", "*") => "*.".to_string(),
            ("", r) => r.to_string(),
            (g, r) => format!("{r}.{g}"),
        }
    }
}

/// A validated configuration: the transformers of each resource pattern
/// of the file, the providers of every entry naming it appended in the
/// file's order.
#[derive(Debug, Clone, Default)]
pub struct EncryptionConfig {
    pub resources: Vec<(GroupResource, PrefixTransformers)>,
}

impl EncryptionConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        if text.trim().is_empty() {
            return Err(ConfigError::Empty(shown));
        }
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Decode { message, .. } => ConfigError::Decode {
                path: shown,
                message,
            },
            e => e,
        })
    }

    /// Parses and validates a configuration (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let decode = |message: String| ConfigError::Decode {
            path: String::new(),
            message,
        };
        let file: File = serde_yaml_ng::from_str(text).map_err(|e| decode(e.to_string()))?;
        if file.api_version != API_VERSION || file.kind != KIND {
            return Err(decode(format!(
                "no kind {:?} is registered for version {:?}",
                file.kind, file.api_version
            )));
        }
        let errors = validate(&file);
        match errors.len() {
            0 => {}
            1 => return Err(ConfigError::Invalid(errors[0].clone())),
            _ => return Err(ConfigError::Invalid(format!("[{}]", errors.join(", ")))),
        }
        let mut config = EncryptionConfig::default();
        for conf in &file.resources {
            let transformers: Vec<PrefixTransformer> =
                conf.providers.iter().map(provider_transformer).collect();
            for resource in &conf.resources {
                config.add(GroupResource::parse(resource), &transformers)?;
            }
        }
        Ok(config)
    }

    /// Appends `transformers` to those of `gr`. A `*.group` or `*.*` of an
    /// earlier entry would hide it: refused, as upstream does.
    fn add(
        &mut self,
        gr: GroupResource,
        transformers: &[PrefixTransformer],
    ) -> Result<(), ConfigError> {
        let any_in_group = GroupResource {
            group: gr.group.clone(),
            resource: "*".into(),
        };
        let any = GroupResource {
            group: "*".into(),
            resource: "*".into(),
        };
        for rule in [any_in_group, any] {
            if self.resources.iter().any(|(r, _)| *r == rule) {
                return Err(ConfigError::Masked {
                    resource: gr.spelled(),
                    rule: rule.spelled(),
                });
            }
        }
        match self.resources.iter_mut().find(|(r, _)| *r == gr) {
            Some((_, t)) => t.transformers.extend(transformers.iter().cloned()),
            None => self
                .resources
                .push((gr, PrefixTransformers::new(transformers.to_vec()))),
        }
        Ok(())
    }

    /// Whether no resource is configured.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The transformers of `plural` in `group`: those of the resource
    /// itself, else of `*.group`, else of `*.*`.
    pub fn for_resource(&self, group: &str, plural: &str) -> Option<&PrefixTransformers> {
        let find = |g: &str, r: &str| {
            self.resources
                .iter()
                .find(|(gr, _)| gr.group == g && gr.resource == r)
                .map(|(_, t)| t)
        };
        find(group, plural)
            .or_else(|| find(group, "*"))
            .or_else(|| find("*", "*"))
    }
}

/// A provider's transformer: its keys in order (the first writes).
fn provider_transformer(p: &ProviderConfiguration) -> PrefixTransformer {
    let keyed = |name: &str, keys: &Keys, make: fn(&[u8]) -> Option<Transformer>| {
        let keys = keys
            .keys
            .iter()
            .filter_map(|k| {
                let secret = base64::engine::general_purpose::STANDARD
                    .decode(&k.secret)
                    .ok()?;
                Some((k.name.clone(), make(&secret)?))
            })
            .collect();
        PrefixTransformer::provider(name, keys)
    };
    if let Some(k) = &p.aesgcm {
        keyed("aesgcm", k, Transformer::aes_gcm)
    } else if let Some(k) = &p.aescbc {
        keyed("aescbc", k, Transformer::aes_cbc)
    } else if let Some(k) = &p.secretbox {
        keyed("secretbox", k, Transformer::secretbox)
    } else {
        PrefixTransformer::identity()
    }
}

/// kube-apiserver's checks of the file; each error is
/// `<field>: <Invalid value|Required value>: <detail>`.
fn validate(file: &File) -> Vec<String> {
    let mut errs = Vec::new();
    if file.resources.is_empty() {
        errs.push("resources: Required value: at least one resources is required".to_string());
        return errs;
    }
    for (i, conf) in file.resources.iter().enumerate() {
        let r = format!("resources[{i}].resources");
        let p = format!("resources[{i}].providers");
        if conf.resources.is_empty() {
            errs.push(format!("{r}: Required value: at least one {r} is required"));
        }
        validate_overlap(&conf.resources, &r, &mut errs);
        validate_names(&conf.resources, &r, &mut errs);
        if conf.providers.is_empty() {
            errs.push(format!("{p}: Required value: at least one {p} is required"));
        }
        for (j, provider) in conf.providers.iter().enumerate() {
            let path = format!("{p}[{j}]");
            let found = [
                provider.kms.is_some(),
                provider.aesgcm.is_some(),
                provider.aescbc.is_some(),
                provider.secretbox.is_some(),
                provider.identity.is_some(),
            ]
            .iter()
            .filter(|f| **f)
            .count();
            if found == 0 {
                errs.push(format!("{path}: Invalid value: provider does not contain any of the expected providers: KMS, AESGCM, AESCBC, Secretbox, Identity"));
                continue;
            }
            if found > 1 {
                errs.push(format!("{path}: Invalid value: more than one provider specified in a single element, should split into different list elements"));
                continue;
            }
            if provider.kms.is_some() {
                errs.push(format!(
                    "{path}.kms: Unsupported value: KMS providers are not supported by this API server"
                ));
            } else if let Some(k) = &provider.aesgcm {
                validate_keys(k, &format!("{path}.aesgcm.keys"), AES_KEY_SIZES, &mut errs);
            } else if let Some(k) = &provider.aescbc {
                validate_keys(k, &format!("{path}.aescbc.keys"), AES_KEY_SIZES, &mut errs);
            } else if let Some(k) = &provider.secretbox {
                validate_keys(
                    k,
                    &format!("{path}.secretbox.keys"),
                    SECRETBOX_KEY_SIZES,
                    &mut errs,
                );
            }
        }
    }
    errs
}

fn validate_overlap(resources: &[String], path: &str, errs: &mut Vec<String>) {
    if resources.len() < 2 {
        return;
    }
    let parsed: Vec<GroupResource> = resources.iter().map(|r| GroupResource::parse(r)).collect();
    let (mut duplicate, mut overlap) = (false, false);
    for (i, a) in parsed.iter().enumerate() {
        for (j, b) in parsed.iter().enumerate() {
            if i == j {
                continue;
            }
            if a == b {
                duplicate = true;
                continue;
            }
            if (a.group == "*" && a.resource == "*")
                || (a.group == b.group && (a.resource == "*" || b.resource == "*"))
            {
                overlap = true;
            }
        }
    }
    let shown = format!("{resources:?}");
    if duplicate {
        errs.push(format!(
            "{path}: Invalid value: {shown}: the same resource cannot be specified multiple times"
        ));
    }
    if overlap {
        errs.push(format!("{path}: Invalid value: {shown}: using overlapping resources such as 'secrets' and '*.' in the same resource list is not allowed as they will be masked"));
    }
}

fn validate_names(resources: &[String], path: &str, errs: &mut Vec<String>) {
    for (j, res) in resources.iter().enumerate() {
        let at = format!("{path}[{j}]: Invalid value: {res:?}");
        let gr = GroupResource::parse(res);
        let detail = if res.to_lowercase() != *res {
            "resource name should not contain capital letters"
        } else if res == "*" {
            "use '*.' to encrypt all the resources from core API group or *.* to encrypt all resources"
        } else if matches!(
            res.as_str(),
            "apiserveripinfo" | "serviceipallocations" | "servicenodeportallocations"
        ) {
            "resources which do not have REST API/s cannot be encrypted"
        } else if gr.group == "events.k8s.io" {
            "'*.events.k8s.io' objects are stored using the 'events' API group in etcd. Use 'events' instead in the config file"
        } else if gr.group == "extensions" {
            "'extensions' group has been removed and cannot be used for encryption"
        } else if gr.group == "*" && gr.resource != "*" {
            "encrypting the same resource across groups is not supported"
        } else {
            continue;
        };
        errs.push(format!("{at}: {detail}"));
    }
}

fn validate_keys(keys: &Keys, path: &str, sizes: &[usize], errs: &mut Vec<String>) {
    if keys.keys.is_empty() {
        errs.push(format!(
            "{path}: Required value: at least one keys is required"
        ));
        return;
    }
    for (i, key) in keys.keys.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if key.name.is_empty() {
            errs.push(format!(
                "{at}.name: Required value: name is a mandatory field for a key"
            ));
        }
        if key.secret.is_empty() {
            errs.push(format!(
                "{at}.secret: Required value: secret is a mandatory field for a key"
            ));
            continue;
        }
        match base64::engine::general_purpose::STANDARD.decode(&key.secret) {
            Err(_) => errs.push(format!(
                "{at}.secret: Invalid value: \"REDACTED\": secrets must be base64 encoded"
            )),
            Ok(secret) if !sizes.contains(&secret.len()) => errs.push(format!(
                "{at}.secret: Invalid value: \"REDACTED\": secret is not of the expected length, got {}, expected one of {}",
                secret.len(),
                go_list(sizes)
            )),
            Ok(_) => {}
        }
    }
}

/// A list as Go's `%v` prints it: `[16 24 32]`.
fn go_list(sizes: &[usize]) -> String {
    let items: Vec<String> = sizes.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::encryption::prefix::Node;

    const GOOD: &str = r#"
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
      - configmaps
    providers:
      - aesgcm:
          keys:
            - name: key2
              secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
            - name: key1
              secret: MDEyMzQ1Njc4OWFiY2RlZg==
      - secretbox:
          keys:
            - name: sb
              secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
      - identity: {}
  - resources:
      - '*.apps'
    providers:
      - aescbc:
          keys:
            - name: c
              secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
"#;

    /// Every key's full prefix, in the order reads try them.
    fn prefixes(t: &PrefixTransformers) -> Vec<String> {
        let mut out = Vec::new();
        for p in &t.transformers {
            let provider = String::from_utf8_lossy(&p.prefix).into_owned();
            match &p.node {
                Node::Keys(keys) => out.extend(
                    keys.transformers
                        .iter()
                        .map(|k| format!("{provider}{}", String::from_utf8_lossy(&k.prefix))),
                ),
                Node::Cipher(_) => out.push(provider),
            }
        }
        out
    }

    #[test]
    fn entries_naming_one_resource_append_and_wildcards_come_last() {
        let two = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers: [{aescbc: {keys: [{name: a, secret: MDEyMzQ1Njc4OWFiY2RlZg==}]}}]\n  - resources: [secrets]\n    providers: [{identity: {}}]\n  - resources: ['*.*']\n    providers: [{identity: {}}]\n";
        let c = EncryptionConfig::parse(two).unwrap();
        assert_eq!(
            prefixes(c.for_resource("", "secrets").unwrap()),
            ["k8s:enc:aescbc:v1:a:", ""]
        );
        assert_eq!(
            prefixes(c.for_resource("apps", "deployments").unwrap()),
            [""]
        );
        let masked = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: ['*.']\n    providers: [{identity: {}}]\n  - resources: [secrets]\n    providers: [{identity: {}}]\n";
        assert_eq!(
            invalid(masked),
            "resource \"secrets\" is masked by earlier rule \"*.\""
        );
    }

    #[test]
    fn a_file_gives_one_transformer_per_key_in_order() {
        let c = EncryptionConfig::parse(GOOD).unwrap();
        let secrets = c.for_resource("", "secrets").unwrap();
        assert_eq!(
            prefixes(secrets),
            [
                "k8s:enc:aesgcm:v1:key2:",
                "k8s:enc:aesgcm:v1:key1:",
                "k8s:enc:secretbox:v1:sb:",
                ""
            ]
        );
        assert!(c.for_resource("", "configmaps").is_some());
        assert_eq!(
            prefixes(c.for_resource("apps", "deployments").unwrap()),
            ["k8s:enc:aescbc:v1:c:"]
        );
        assert!(c.for_resource("", "pods").is_none());
        assert!(c.for_resource("batch", "jobs").is_none());
    }

    #[test]
    fn patterns_match_as_upstream() {
        let gr = GroupResource::parse;
        assert!(gr("*.").matches("", "pods"));
        assert!(!gr("*.").matches("apps", "deployments"));
        assert!(gr("*.*").matches("apps", "deployments"));
        assert!(gr("deployments.apps").matches("apps", "deployments"));
        assert!(!gr("secrets").matches("example.com", "secrets"));
    }

    fn invalid(text: &str) -> String {
        match EncryptionConfig::parse(text) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted: {text}"),
        }
    }

    fn with_provider(provider: &str) -> String {
        format!(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: [secrets]\n    providers:\n{provider}"
        )
    }

    #[test]
    fn bad_files_get_upstreams_errors() {
        assert!(
            invalid("apiVersion: v1\nkind: ConfigMap\n")
                .contains("no kind \"ConfigMap\" is registered")
        );
        let short = with_provider(
            "      - aesgcm:\n          keys:\n            - name: k\n              secret: c2VjcmV0\n",
        );
        assert!(
            invalid(&short).contains("resources[0].providers[0].aesgcm.keys[0].secret: Invalid value: \"REDACTED\": secret is not of the expected length, got 6, expected one of [16 24 32]"),
            "{}",
            invalid(&short)
        );
        let sb = with_provider(
            "      - secretbox:\n          keys:\n            - name: k\n              secret: MDEyMzQ1Njc4OWFiY2RlZg==\n",
        );
        assert!(invalid(&sb).contains("got 16, expected one of [32]"));
        let not_b64 = with_provider(
            "      - aescbc:\n          keys:\n            - name: k\n              secret: '%%%'\n",
        );
        assert!(invalid(&not_b64).contains("secrets must be base64 encoded"));
        let no_name = with_provider(
            "      - aescbc:\n          keys:\n            - secret: MDEyMzQ1Njc4OWFiY2RlZg==\n",
        );
        assert!(
            invalid(&no_name)
                .contains("keys[0].name: Required value: name is a mandatory field for a key")
        );
        let no_keys = with_provider("      - aesgcm:\n          keys: []\n");
        assert!(invalid(&no_keys).contains("at least one keys is required"));
        let two = with_provider("      - identity: {}\n        aesgcm:\n          keys: []\n");
        assert!(invalid(&two).contains("more than one provider specified in a single element"));
        let none = with_provider("      - {}\n");
        assert!(invalid(&none).contains("provider does not contain any of the expected providers"));
        let no_providers = with_provider("      []\n");
        assert!(invalid(&no_providers).contains("at least one resources[0].providers is required"));
        let star = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: ['*', 'Secrets', 'secrets', 'secrets', 'events.events.k8s.io']\n    providers: [{identity: {}}]\n";
        let e = invalid(star);
        assert!(e.contains("use '*.' to encrypt all the resources"), "{e}");
        assert!(e.contains("resource name should not contain capital letters"));
        assert!(e.contains("the same resource cannot be specified multiple times"));
        assert!(e.contains("Use 'events' instead in the config file"));
        let overlap = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n  - resources: ['secrets', '*.']\n    providers: [{identity: {}}]\n";
        assert!(invalid(overlap).contains("using overlapping resources"));
        let empty = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n";
        assert!(invalid(empty).contains("at least one resources is required"));
    }

    #[test]
    fn an_empty_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("enc.yaml");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            EncryptionConfig::load(&path),
            Err(ConfigError::Empty(_))
        ));
        std::fs::write(&path, GOOD).unwrap();
        assert_eq!(EncryptionConfig::load(&path).unwrap().resources.len(), 3);
    }
}
