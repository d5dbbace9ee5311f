//! The `loopback` plugin. containerd's CRI runs a plugin of type `loopback`
//! for every sandbox, before the pod network's, to bring the sandbox's `lo`
//! up. baton-cni answers that type too (it is installed under both names),
//! so a node needs no other CNI binary and every sandbox one Go process
//! less. The behaviour is the reference plugin's: the interface is always
//! `lo`, whatever `CNI_IFNAME` says; ADD brings it up and reports its
//! addresses; DEL brings it down and succeeds when the namespace is gone;
//! CHECK fails when it is down.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use serde::Deserialize;

use super::types::codes;
use super::{Command, Invocation, PluginError};
use crate::sys::{ifflags, netns};

/// The plugin type (and binary name) containerd asks for.
pub const PLUGIN_TYPE: &str = "loopback";
/// The only interface this plugin touches.
const LO: &str = "lo";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LoopbackConf {
    cni_version: String,
    #[serde(rename = "type")]
    plugin_type: String,
}

/// Whether `stdin` configures the loopback plugin.
#[must_use]
pub fn is_requested(stdin: &[u8]) -> bool {
    serde_json::from_slice::<LoopbackConf>(stdin).is_ok_and(|c| c.plugin_type == PLUGIN_TYPE)
}

fn network_error(msg: &str, details: impl ToString) -> PluginError {
    PluginError::new(codes::NETWORK, msg, details)
}

/// Runs ADD, DEL or CHECK for the loopback configuration in `stdin`;
/// returns the ADD result.
pub fn run(inv: &Invocation, stdin: &[u8]) -> Result<Option<String>, PluginError> {
    let conf = super::decode_conf(stdin, |c: &LoopbackConf| &c.cni_version)?;
    match inv.command {
        Command::Add => {
            let ns = inv.netns.as_deref().unwrap_or(Path::new(""));
            let addresses = netns::run_in(ns, || {
                ifflags::set_up(LO, true)?;
                lo_addresses()
            })
            .map_err(|err| network_error("entering the sandbox's network namespace", err))?
            .map_err(|err| network_error("bringing lo up", err))?;
            Ok(Some(
                add_result(&conf.cni_version, ns, &addresses).to_string(),
            ))
        }
        Command::Del => {
            let Some(ns) = inv.netns.as_deref() else {
                return Ok(None);
            };
            match netns::run_in(ns, || ifflags::set_up(LO, false)) {
                // Already gone (the runtime removed the namespace, or DEL
                // is repeated): nothing left to do.
                Err(netns::NetnsError::Open { .. }) => Ok(None),
                Err(err) => Err(network_error(
                    "entering the sandbox's network namespace",
                    err,
                )),
                Ok(result) => result
                    .map(|()| None)
                    .map_err(|err| network_error("bringing lo down", err)),
            }
        }
        Command::Check => {
            let ns = inv.netns.as_deref().unwrap_or(Path::new(""));
            let up = netns::run_in(ns, || ifflags::is_up(LO))
                .map_err(|err| network_error("entering the sandbox's network namespace", err))?
                .map_err(|err| network_error("reading lo", err))?;
            if up {
                Ok(None)
            } else {
                Err(network_error("lo interface is down", ""))
            }
        }
        Command::Version => unreachable!("answered before the configuration is read"),
    }
}

/// The addresses of `lo` in the calling thread's namespace.
fn lo_addresses() -> Result<Vec<IpNet>, crate::sys::SyscallError> {
    let addresses = nix::ifaddrs::getifaddrs()
        .map_err(|errno| crate::sys::SyscallError::from_errno("getifaddrs", errno))?;
    Ok(addresses
        .filter(|a| a.interface_name == LO)
        .filter_map(|a| {
            let (address, netmask) = (a.address?, a.netmask?);
            if let (Some(ip), Some(mask)) = (address.as_sockaddr_in(), netmask.as_sockaddr_in()) {
                let prefix = mask.ip().to_bits().count_ones() as u8;
                return IpNet::new(IpAddr::V4(ip.ip()), prefix).ok();
            }
            let (ip, mask) = (address.as_sockaddr_in6()?, netmask.as_sockaddr_in6()?);
            let prefix = mask.ip().to_bits().count_ones() as u8;
            IpNet::new(IpAddr::V6(ip.ip()), prefix).ok()
        })
        .collect())
}

/// The ADD result in `version`: `lo` in the sandbox and its addresses
/// (results before 1.0 name each address's IP version).
fn add_result(version: &str, netns: &Path, addresses: &[IpNet]) -> serde_json::Value {
    let ips: Vec<serde_json::Value> = addresses
        .iter()
        .map(|address| {
            let mut ip = serde_json::json!({"interface": 0, "address": address.to_string()});
            if version.starts_with("0.") {
                ip["version"] = match address {
                    IpNet::V4(_) => "4",
                    IpNet::V6(_) => "6",
                }
                .into();
            }
            ip
        })
        .collect();
    serde_json::json!({
        "cniVersion": version,
        "interfaces": [{"name": LO, "mac": "00:00:00:00:00:00", "sandbox": netns}],
        "ips": ips,
        "dns": {},
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const CONF: &[u8] = br#"{"cniVersion":"0.3.1","name":"cni-loopback","type":"loopback"}"#;

    fn invocation(command: Command, netns: Option<PathBuf>) -> Invocation {
        Invocation {
            command,
            container_id: "sandbox".into(),
            netns,
            ifname: "eth0".into(),
        }
    }

    #[test]
    fn only_loopback_configurations_are_taken() {
        assert!(is_requested(CONF));
        assert!(!is_requested(
            br#"{"cniVersion":"1.0.0","name":"baton","type":"baton-cni","podCIDR":"10.244.1.0/24"}"#
        ));
        assert!(!is_requested(b"not json"));
    }

    #[test]
    fn results_before_1_0_name_the_ip_version() {
        let addresses: Vec<IpNet> =
            vec!["127.0.0.1/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let old = add_result("0.3.1", Path::new("/run/netns/x"), &addresses);
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
        assert_eq!(old["interfaces"][0]["name"], "lo");
        assert_eq!(old["interfaces"][0]["sandbox"], "/run/netns/x");
        let new = add_result("1.0.0", Path::new("/run/netns/x"), &addresses);
        assert!(new["ips"][0].get("version").is_none(), "{new}");
        assert_eq!(new["ips"][0]["address"], "127.0.0.1/8");
    }

    #[test]
    fn add_brings_lo_up_check_sees_it_and_del_brings_it_down() {
        let (ns, _alive) = crate::sys::netns::testing::hold_fresh();
        let lo_up = || netns::run_in(&ns, || ifflags::is_up(LO)).unwrap().unwrap();
        assert!(!lo_up(), "a new namespace starts with lo down");
        let check = run(&invocation(Command::Check, Some(ns.clone())), CONF);
        assert!(check.unwrap_err().msg.contains("down"));

        let result = run(&invocation(Command::Add, Some(ns.clone())), CONF)
            .unwrap()
            .unwrap();
        let result: serde_json::Value = serde_json::from_str(&result).unwrap();
        assert!(lo_up());
        assert_eq!(result["cniVersion"], "0.3.1");
        assert_eq!(
            result["interfaces"][0]["name"], "lo",
            "CNI_IFNAME is ignored"
        );
        assert!(
            result["ips"]
                .as_array()
                .unwrap()
                .iter()
                .any(|ip| ip["address"] == "127.0.0.1/8"),
            "{result}"
        );
        run(&invocation(Command::Check, Some(ns.clone())), CONF).unwrap();

        run(&invocation(Command::Del, Some(ns.clone())), CONF).unwrap();
        assert!(!lo_up());
    }

    #[test]
    fn del_of_a_removed_namespace_succeeds() {
        let gone = PathBuf::from("/run/netns/baton-loopback-gone");
        assert_eq!(
            run(&invocation(Command::Del, Some(gone)), CONF).unwrap(),
            None
        );
        assert_eq!(run(&invocation(Command::Del, None), CONF).unwrap(), None);
    }
}
