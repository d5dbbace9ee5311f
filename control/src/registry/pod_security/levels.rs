//! The policy a namespace's `pod-security.kubernetes.io/*` labels set:
//! levels, versions and their parsing, as k8s.io/pod-security-admission/api
//! (`ParseLevel`, `ParseVersion`, `PolicyToEvaluate`) has them.

use std::fmt;

use serde_json::{Map, Value};

use crate::validation::Cause;
use crate::validation::field::{self, Path};

pub const ENFORCE_LEVEL: &str = "pod-security.kubernetes.io/enforce";
pub const ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";
pub const AUDIT_LEVEL: &str = "pod-security.kubernetes.io/audit";
pub const AUDIT_VERSION: &str = "pod-security.kubernetes.io/audit-version";
pub const WARN_LEVEL: &str = "pod-security.kubernetes.io/warn";
pub const WARN_VERSION: &str = "pod-security.kubernetes.io/warn-version";

/// A Pod Security Standards level, ordered from the least strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }

    /// `ParseLevel`: a level name, or its error detail.
    pub fn parse(s: &str) -> Result<Level, &'static str> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err("must be one of privileged, baseline, restricted"),
        }
    }
}

/// A policy version: `latest` or `v1.<minor>`, which selects the revisions
/// of the checks (a version past the newest check is the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Latest,
    V1(u64),
}

impl Version {
    /// `ParseVersion`: `latest` or `v1.x` (no leading zeros), or its error
    /// detail.
    pub fn parse(s: &str) -> Result<Version, &'static str> {
        const ERR: &str = "must be \"latest\" or \"v1.x\"";
        if s == "latest" {
            return Ok(Version::Latest);
        }
        let minor = s.strip_prefix("v1.").ok_or(ERR)?;
        let canonical = !minor.is_empty()
            && minor.bytes().all(|b| b.is_ascii_digit())
            && (minor == "0" || !minor.starts_with('0'));
        if !canonical {
            return Err(ERR);
        }
        minor.parse().map(Version::V1).map_err(|_| ERR)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("latest"),
            Version::V1(minor) => write!(f, "v1.{minor}"),
        }
    }
}

/// A level at a version, printed `restricted:latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    pub level: Level,
    pub version: Version,
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level.as_str(), self.version)
    }
}

/// The three modes' levels of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub enforce: LevelVersion,
    pub audit: LevelVersion,
    pub warn: LevelVersion,
}

impl Default for Policy {
    /// kube-apiserver's default configuration: every mode privileged at
    /// `latest`.
    fn default() -> Self {
        let privileged = LevelVersion {
            level: Level::Privileged,
            version: Version::Latest,
        };
        Policy {
            enforce: privileged,
            audit: privileged,
            warn: privileged,
        }
    }
}

impl Policy {
    /// Whether nothing is checked in any mode.
    pub fn fully_privileged(&self) -> bool {
        [self.enforce, self.audit, self.warn]
            .iter()
            .all(|lv| lv.level == Level::Privileged)
    }

    /// `PolicyToEvaluate`: the policy `labels` set over the defaults, and a
    /// cause per label whose value does not parse. A label that does not
    /// parse falls back to `restricted` for enforce and `privileged` for
    /// audit and warn, and to `latest` for versions.
    pub fn from_labels(labels: Option<&Map<String, Value>>) -> (Policy, Vec<Cause>) {
        let mut policy = Policy::default();
        let mut causes = Vec::new();
        let Some(labels) = labels.filter(|l| !l.is_empty()) else {
            return (policy, causes);
        };
        let modes: [(&mut LevelVersion, &str, &str, Level); 3] = [
            (
                &mut policy.enforce,
                ENFORCE_LEVEL,
                ENFORCE_VERSION,
                Level::Restricted,
            ),
            (
                &mut policy.audit,
                AUDIT_LEVEL,
                AUDIT_VERSION,
                Level::Privileged,
            ),
            (
                &mut policy.warn,
                WARN_LEVEL,
                WARN_VERSION,
                Level::Privileged,
            ),
        ];
        let label_path = |key: &str| Path::new("metadata").child("labels").key(key);
        for (mode, level_key, version_key, fallback) in modes {
            if let Some(value) = labels.get(level_key) {
                let value = value.as_str().unwrap_or_default();
                mode.level = Level::parse(value).unwrap_or_else(|detail| {
                    causes.push(field::invalid(&label_path(level_key), value, detail));
                    fallback
                });
            }
            if let Some(value) = labels.get(version_key) {
                let value = value.as_str().unwrap_or_default();
                mode.version = Version::parse(value).unwrap_or_else(|detail| {
                    causes.push(field::invalid(&label_path(version_key), value, detail));
                    Version::Latest
                });
            }
        }
        (policy, causes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(labels: Value) -> (Policy, Vec<String>) {
        let (policy, causes) = Policy::from_labels(labels.as_object());
        (policy, causes.iter().map(Cause::error_string).collect())
    }

    fn lv(level: Level, version: Version) -> LevelVersion {
        LevelVersion { level, version }
    }

    // No labels: kube-apiserver's default, privileged everywhere.
    #[test]
    fn no_labels_is_privileged() {
        let (policy, causes) = parse(json!({}));
        assert!(causes.is_empty());
        assert_eq!(policy, Policy::default());
        assert!(policy.fully_privileged());
        assert_eq!(policy.enforce.to_string(), "privileged:latest");
    }

    // Each mode and its version, as set.
    #[test]
    fn labels_set_each_mode() {
        let (policy, causes) = parse(json!({
            ENFORCE_LEVEL: "baseline", ENFORCE_VERSION: "v1.29",
            AUDIT_LEVEL: "restricted",
            WARN_LEVEL: "restricted", WARN_VERSION: "latest",
            "app": "x",
        }));
        assert!(causes.is_empty());
        assert_eq!(policy.enforce, lv(Level::Baseline, Version::V1(29)));
        assert_eq!(policy.audit, lv(Level::Restricted, Version::Latest));
        assert_eq!(policy.warn, lv(Level::Restricted, Version::Latest));
        assert_eq!(policy.enforce.to_string(), "baseline:v1.29");
        assert!(!policy.fully_privileged());
    }

    // Upstream's messages, in label order (enforce, audit, warn; level
    // before version), and the fallbacks: enforce fails closed, audit and
    // warn fail open, versions fall back to latest.
    #[test]
    fn invalid_labels_are_causes_with_fallbacks() {
        let (policy, causes) = parse(json!({
            ENFORCE_LEVEL: "strict", ENFORCE_VERSION: "v1.025",
            AUDIT_LEVEL: "none", AUDIT_VERSION: "1.25",
            WARN_LEVEL: "Baseline", WARN_VERSION: "v2.0",
        }));
        assert_eq!(
            causes,
            [
                "metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted",
                "metadata.labels[pod-security.kubernetes.io/enforce-version]: Invalid value: \"v1.025\": must be \"latest\" or \"v1.x\"",
                "metadata.labels[pod-security.kubernetes.io/audit]: Invalid value: \"none\": must be one of privileged, baseline, restricted",
                "metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: \"1.25\": must be \"latest\" or \"v1.x\"",
                "metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"Baseline\": must be one of privileged, baseline, restricted",
                "metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: \"v2.0\": must be \"latest\" or \"v1.x\"",
            ]
        );
        assert_eq!(policy.enforce, lv(Level::Restricted, Version::Latest));
        assert_eq!(policy.audit, lv(Level::Privileged, Version::Latest));
        assert_eq!(policy.warn, lv(Level::Privileged, Version::Latest));
    }

    #[test]
    fn versions() {
        assert_eq!(Version::parse("latest"), Ok(Version::Latest));
        assert_eq!(Version::parse("v1.0"), Ok(Version::V1(0)));
        assert_eq!(Version::parse("v1.33"), Ok(Version::V1(33)));
        for bad in [
            "", "v1.", "v1.01", "v1.x", "V1.2", "v1.2.3", "latest ", "v1.-1",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Version::V1(7).to_string(), "v1.7");
    }

    #[test]
    fn levels_order_by_strictness() {
        assert!(Level::Privileged < Level::Baseline);
        assert!(Level::Baseline < Level::Restricted);
        assert_eq!(Level::parse("restricted"), Ok(Level::Restricted));
        assert!(Level::parse("").is_err());
    }
}
