//! The JSON of the CNI specification 1.0 that baton's plugin reads and
//! writes: the network configuration (from the conflist baton-node writes)
//! and the result and error objects.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The spec version baton's plugin speaks.
pub const CNI_VERSION: &str = "1.0.0";
/// Versions accepted in a configuration (libcni converts older results).
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0"];
/// The plugin type (binary name) in the conflist.
pub const PLUGIN_TYPE: &str = "baton-cni";
/// The network's name.
pub const NETWORK_NAME: &str = "baton";
/// The pods' next hop: a link-local address answered by the host side of
/// every pod veth (the pod gets a static neighbour entry for it), so pods
/// need no address from the podCIDR for a gateway — as Calico and Cilium do.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The plugin's part of the network configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The node's podCIDR.
    #[serde(rename = "podCIDR")]
    pub pod_cidr: Ipv4Net,
    /// Where IPAM state lives (one directory per network).
    pub data_dir: PathBuf,
    /// MTU of the pod interfaces (the node uplink's).
    #[serde(default = "default_mtu")]
    pub mtu: u32,
    /// baton-node's local socket for endpoint registration with the
    /// dataplane, when it serves one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_socket: Option<PathBuf>,
    /// Set by the runtime for CHECK and DEL: the ADD result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_result: Option<serde_json::Value>,
}

fn default_mtu() -> u32 {
    1500
}

/// The conflist baton-node writes into the node's CNI configuration directory.
#[must_use]
pub fn conflist(conf: &NetConf) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [conf],
    })
}

/// An interface of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sandbox: String,
}

/// An address of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    pub address: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Index into `interfaces`.
    pub interface: usize,
}

/// A route of the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: Ipv4Net,
    pub gw: Ipv4Addr,
}

/// The ADD result (spec 1.0 "Success").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AddResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: serde_json::Value,
}

/// The error object (spec 1.0 "Error"), printed on stdout with exit 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResult {
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

/// Well-known error codes of the spec.
pub mod codes {
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    pub const UNSUPPORTED_FIELD: u32 = 2;
    pub const UNKNOWN_CONTAINER: u32 = 3;
    pub const INVALID_ENV: u32 = 4;
    pub const IO: u32 = 5;
    pub const DECODE: u32 = 6;
    pub const INVALID_NETCONF: u32 = 7;
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// Plugin-specific codes start at 100.
    pub const NETWORK: u32 = 100;
    pub const IPAM: u32 = 101;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_round_trips_the_plugin_configuration() {
        let conf = NetConf {
            cni_version: CNI_VERSION.into(),
            name: NETWORK_NAME.into(),
            plugin_type: PLUGIN_TYPE.into(),
            pod_cidr: "10.244.1.0/24".parse().unwrap(),
            data_dir: "/var/lib/baton/ipam".into(),
            mtu: 1500,
            endpoint_socket: None,
            prev_result: None,
        };
        let list = conflist(&conf);
        assert_eq!(list["plugins"][0]["type"], "baton-cni");
        assert_eq!(list["plugins"][0]["podCIDR"], "10.244.1.0/24");
        let back: NetConf = serde_json::from_value(list["plugins"][0].clone()).unwrap();
        assert_eq!(back, conf);
    }
}
