//! Service ClusterIP and NodePort allocation. Each allocated IP or port is
//! one etcd key (`/registry/ranges/serviceips/<ip>`,
//! `/registry/ranges/servicenodeports/<port>`) claimed in the same
//! transaction as the Service write, so two concurrent creates can never
//! get the same value and nothing is half-allocated: the transaction
//! requires every claimed key to be absent.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use rand::Rng;
use serde_json::{Value, json};

use crate::api::status::{ApiError, Cause};
use crate::storage::SideEffect;

pub const IP_PREFIX: &str = "/registry/ranges/serviceips/";
pub const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// The service network settings.
#[derive(Debug, Clone)]
pub struct ServiceNetwork {
    pub base: u32,
    pub prefix_len: u8,
    pub node_ports: RangeInclusive<u16>,
}

/// Errors in service network flags.
#[derive(Debug, thiserror::Error)]
pub enum RangeError {
    #[error("invalid CIDR {0:?}")]
    Cidr(String),
    #[error("invalid port range {0:?}")]
    Ports(String),
}

impl ServiceNetwork {
    pub fn parse(cidr: &str, ports: &str) -> Result<Self, RangeError> {
        let (ip, len) = cidr
            .split_once('/')
            .ok_or_else(|| RangeError::Cidr(cidr.into()))?;
        let ip: Ipv4Addr = ip.parse().map_err(|_| RangeError::Cidr(cidr.into()))?;
        let len: u8 = len.parse().map_err(|_| RangeError::Cidr(cidr.into()))?;
        if !(8..=30).contains(&len) {
            return Err(RangeError::Cidr(cidr.into()));
        }
        let mask = u32::MAX << (32 - len);
        let (a, b) = ports
            .split_once('-')
            .ok_or_else(|| RangeError::Ports(ports.into()))?;
        let a: u16 = a
            .trim()
            .parse()
            .map_err(|_| RangeError::Ports(ports.into()))?;
        let b: u16 = b
            .trim()
            .parse()
            .map_err(|_| RangeError::Ports(ports.into()))?;
        if a > b {
            return Err(RangeError::Ports(ports.into()));
        }
        Ok(ServiceNetwork {
            base: u32::from(ip) & mask,
            prefix_len: len,
            node_ports: a..=b,
        })
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", Ipv4Addr::from(self.base), self.prefix_len)
    }

    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix_len)
    }

    /// The first usable address: the `kubernetes` Service's ClusterIP.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size() - 1
    }

    fn random_ip(&self) -> Ipv4Addr {
        // Dynamic allocations prefer the upper part of the range, leaving
        // the lower band for static IPs (KEP-3070).
        let size = self.size();
        let lower = (size / 16).clamp(16, 256).min(size / 2);
        let v = rand::rng().random_range(self.base + lower..self.base + size - 1);
        Ipv4Addr::from(v)
    }
}

/// A key to claim for a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    /// Set by the user (a taken key is a 422) rather than picked at random.
    pub requested: bool,
    /// Field path for errors.
    pub field: String,
    pub value: String,
}

impl Claim {
    pub fn effect(&self, owner: &str) -> SideEffect {
        SideEffect::Claim {
            key: self.key.clone(),
            value: owner.as_bytes().to_vec(),
        }
    }

    /// The 422 for a requested value that is already taken.
    pub fn taken(&self, kind_name: &str) -> ApiError {
        let cause = if self.key.starts_with(IP_PREFIX) {
            Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: []string{{\"{v}\"}}: failed to allocate IP {v}: provided IP is already allocated",
                    v = self.value
                ),
                field: self.field.clone(),
            }
        } else {
            Cause {
                reason: "FieldValueInvalid".into(),
                message: format!(
                    "Invalid value: {}: provided port is already allocated",
                    self.value
                ),
                field: self.field.clone(),
            }
        };
        ApiError::invalid("Service", "", kind_name, &[cause])
    }
}

fn ip_key(ip: &str) -> String {
    format!("{IP_PREFIX}{ip}")
}

fn port_key(port: i64) -> String {
    format!("{PORT_PREFIX}{port}")
}

fn needs_node_ports(svc: &Value) -> bool {
    matches!(
        svc.pointer("/spec/type").and_then(Value::as_str),
        Some("NodePort" | "LoadBalancer")
    )
}

fn needs_health_check(svc: &Value) -> bool {
    svc.pointer("/spec/type").and_then(Value::as_str) == Some("LoadBalancer")
        && svc
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "Service",
        "",
        name,
        &[Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// Values a Service holds.
pub fn held(svc: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str)
        && !ip.is_empty()
        && ip != "None"
    {
        out.insert(ip_key(ip));
    }
    if let Some(ports) = svc.pointer("/spec/ports").and_then(Value::as_array) {
        for p in ports {
            if let Some(n) = p.get("nodePort").and_then(Value::as_i64)
                && n > 0
            {
                out.insert(port_key(n));
            }
        }
    }
    if let Some(n) = svc
        .pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        && n > 0
    {
        out.insert(port_key(n));
    }
    out
}

/// Fills in ClusterIP and NodePorts of a Service being written (`old` for
/// an update), returning the keys it must newly claim. `avoid` lists keys
/// known to be taken (from a lost transaction) so random picks skip them.
pub fn assign(
    net: &ServiceNetwork,
    svc: &mut Value,
    old: Option<&Value>,
    avoid: &BTreeSet<String>,
) -> Result<Vec<Claim>, ApiError> {
    let name = svc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    if !svc.get("spec").is_some_and(Value::is_object) {
        svc["spec"] = json!({});
    }
    let old_held = old.map(held).unwrap_or_default();
    let mut claims = Vec::new();

    // ClusterIP.
    if kind == "ExternalName" {
        if let Some(m) = svc["spec"].as_object_mut() {
            m.remove("clusterIP");
            m.remove("clusterIPs");
        }
    } else {
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let mut want = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .or_else(|| {
                svc.pointer("/spec/clusterIPs/0")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            });
        if want.is_none() {
            want = old_ip.clone();
        }
        if let (Some(o), Some(w)) = (&old_ip, &want)
            && o != w
        {
            return Err(invalid(
                &name,
                "spec.clusterIPs[0]",
                format!("Invalid value: []string{{\"{w}\"}}: may not change once set"),
            ));
        }
        let ip = match want {
            Some(ip) if ip == "None" => "None".to_string(),
            Some(ip) => {
                let parsed: Ipv4Addr = ip.parse().map_err(|_| {
                    invalid(
                        &name,
                        "spec.clusterIPs[0]",
                        format!("Invalid value: \"{ip}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"),
                    )
                })?;
                if !net.contains(parsed) {
                    return Err(invalid(
                        &name,
                        "spec.clusterIPs",
                        format!(
                            "Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: the provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                            net.cidr()
                        ),
                    ));
                }
                if !old_held.contains(&ip_key(&ip)) {
                    claims.push(Claim {
                        key: ip_key(&ip),
                        requested: true,
                        field: "spec.clusterIPs".into(),
                        value: ip.clone(),
                    });
                }
                ip
            }
            None => {
                let mut pick = net.random_ip().to_string();
                for _ in 0..64 {
                    if !avoid.contains(&ip_key(&pick)) {
                        break;
                    }
                    pick = net.random_ip().to_string();
                }
                claims.push(Claim {
                    key: ip_key(&pick),
                    requested: false,
                    field: "spec.clusterIPs".into(),
                    value: pick.clone(),
                });
                pick
            }
        };
        svc["spec"]["clusterIP"] = json!(ip);
        svc["spec"]["clusterIPs"] = json!([ip]);
        if ip != "None" || svc["spec"].get("ipFamilies").is_none() {
            svc["spec"]["ipFamilies"] = json!(["IPv4"]);
        }
        if svc["spec"].get("ipFamilyPolicy").is_none() {
            svc["spec"]["ipFamilyPolicy"] = json!("SingleStack");
        }
    }

    // NodePorts.
    let mut taken_here: BTreeSet<i64> = BTreeSet::new();
    let old_ports: Vec<Value> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let wants_ports = needs_node_ports(svc);
    if let Some(ports) = svc["spec"].get_mut("ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            if !wants_ports {
                if let Some(m) = p.as_object_mut() {
                    m.remove("nodePort");
                }
                continue;
            }
            let mut n = p.get("nodePort").and_then(Value::as_i64).unwrap_or(0);
            if n == 0 {
                // Keep the port an earlier version of this Service held.
                let same = old_ports.iter().find(|o| {
                    o.get("port") == p.get("port")
                        && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                            == p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                });
                n = same
                    .and_then(|o| o.get("nodePort"))
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
            }
            let field = format!("spec.ports[{i}].nodePort");
            if n != 0 {
                if n < *net.node_ports.start() as i64 || n > *net.node_ports.end() as i64 {
                    return Err(invalid(
                        &name,
                        &field,
                        format!(
                            "Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}-{}",
                            net.node_ports.start(),
                            net.node_ports.end()
                        ),
                    ));
                }
                if !old_held.contains(&port_key(n)) && taken_here.insert(n) {
                    claims.push(Claim {
                        key: port_key(n),
                        requested: true,
                        field,
                        value: n.to_string(),
                    });
                }
            } else {
                n = pick_port(net, avoid, &taken_here, &old_held);
                taken_here.insert(n);
                claims.push(Claim {
                    key: port_key(n),
                    requested: false,
                    field,
                    value: n.to_string(),
                });
            }
            p["nodePort"] = json!(n);
        }
    }

    // Health check node port (LoadBalancer with externalTrafficPolicy Local).
    if needs_health_check(svc) {
        let mut n = svc
            .pointer("/spec/healthCheckNodePort")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if n == 0 {
            n = old
                .and_then(|o| o.pointer("/spec/healthCheckNodePort"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
        }
        if n == 0 {
            n = pick_port(net, avoid, &taken_here, &old_held);
            claims.push(Claim {
                key: port_key(n),
                requested: false,
                field: "spec.healthCheckNodePort".into(),
                value: n.to_string(),
            });
        } else if !old_held.contains(&port_key(n)) && taken_here.insert(n) {
            claims.push(Claim {
                key: port_key(n),
                requested: true,
                field: "spec.healthCheckNodePort".into(),
                value: n.to_string(),
            });
        }
        svc["spec"]["healthCheckNodePort"] = json!(n);
    } else if let Some(m) = svc["spec"].as_object_mut() {
        m.remove("healthCheckNodePort");
    }
    Ok(claims)
}

fn pick_port(
    net: &ServiceNetwork,
    avoid: &BTreeSet<String>,
    here: &BTreeSet<i64>,
    held: &BTreeSet<String>,
) -> i64 {
    let mut rng = rand::rng();
    let (lo, hi) = (*net.node_ports.start() as i64, *net.node_ports.end() as i64);
    for _ in 0..256 {
        let n = rng.random_range(lo..=hi);
        if !here.contains(&n) && !avoid.contains(&port_key(n)) && !held.contains(&port_key(n)) {
            return n;
        }
    }
    (lo..=hi)
        .find(|n| {
            !here.contains(n) && !avoid.contains(&port_key(*n)) && !held.contains(&port_key(*n))
        })
        .unwrap_or(lo)
}

/// Keys an old version held that the new one no longer does.
pub fn releases(old: &Value, new: Option<&Value>) -> Vec<SideEffect> {
    let keep = new.map(held).unwrap_or_default();
    held(old)
        .into_iter()
        .filter(|k| !keep.contains(k))
        .map(|key| SideEffect::Release { key })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net() -> ServiceNetwork {
        ServiceNetwork::parse("10.96.0.0/12", "30000-32767").unwrap()
    }

    #[test]
    fn random_and_requested_values() {
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]}});
        let claims = assign(&net(), &mut svc, None, &BTreeSet::new()).unwrap();
        assert_eq!(claims.len(), 3);
        let ip: Ipv4Addr = svc["spec"]["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(net().contains(ip));
        assert_eq!(svc["spec"]["clusterIPs"][0], svc["spec"]["clusterIP"]);
        let p0 = svc["spec"]["ports"][0]["nodePort"].as_i64().unwrap();
        assert!((30000..=32767).contains(&p0));
        assert!(claims.iter().any(|c| c.requested && c.value == "30080"));
    }

    #[test]
    fn out_of_range_and_immutable() {
        let mut bad = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "1.2.3.4"}});
        let e = assign(&net(), &mut bad, None, &BTreeSet::new()).unwrap_err();
        assert!(
            e.message.contains("is not in the valid range"),
            "{}",
            e.message
        );
        let old = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.10", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30001}]}});
        let mut keep = json!({"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        let claims = assign(&net(), &mut keep, Some(&old), &BTreeSet::new()).unwrap();
        assert!(claims.is_empty());
        assert_eq!(keep["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(keep["spec"]["ports"][0]["nodePort"], 30001);
        let mut change = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.11"}});
        assert_eq!(
            assign(&net(), &mut change, Some(&old), &BTreeSet::new())
                .unwrap_err()
                .code,
            422
        );
        let mut to_cluster_ip = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30001}]}});
        assign(&net(), &mut to_cluster_ip, Some(&old), &BTreeSet::new()).unwrap();
        let rel = releases(&old, Some(&to_cluster_ip));
        assert_eq!(rel.len(), 1);
    }

    #[test]
    fn health_check_port_for_local_load_balancers() {
        let mut svc = json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}});
        let claims = assign(&net(), &mut svc, None, &BTreeSet::new()).unwrap();
        assert!(svc["spec"]["healthCheckNodePort"].as_i64().unwrap() >= 30000);
        assert_eq!(claims.len(), 3);
    }
}
