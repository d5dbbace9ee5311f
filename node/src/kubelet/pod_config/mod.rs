//! What the kubelet builds from a pod's spec for the runtime: the CRI
//! sandbox and container configurations ([`cri_config`]), each
//! container's environment ([`env`]) and `/etc/hosts` ([`hosts`]), and
//! the pod's volumes ([`volumes`]), with the ConfigMaps and Secrets they
//! and the environment read ([`configmap_secret_watch`]) and the
//! service-account tokens of projected volumes
//! ([`service_account_tokens`]).

pub mod configmap_secret_watch;
pub mod cri_config;
pub mod env;
pub mod hosts;
pub mod service_account_tokens;
pub mod volumes;
