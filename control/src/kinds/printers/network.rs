//! Services and their endpoints (`printService`, `printEndpoints`,
//! `printEndpointSlice` in kube-apiserver's printers.go).

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{Value, json};

use super::format::{age, format_labels, int_at, list_at, list_with_more, str_at};
use crate::api::table::{AGE, Doc, NAME, Printed, Printer, col, wide};

const SERVICE_SPEC: &str = "io.k8s.api.core.v1.ServiceSpec";

pub const SERVICE: Printer = Printer {
    columns: &[
        NAME,
        col("Type", "string", Doc::Field(SERVICE_SPEC, "type")),
        col(
            "Cluster-IP",
            "string",
            Doc::Field(SERVICE_SPEC, "clusterIP"),
        ),
        col(
            "External-IP",
            "string",
            Doc::Field(SERVICE_SPEC, "externalIPs"),
        ),
        col("Port(s)", "string", Doc::Field(SERVICE_SPEC, "ports")),
        AGE,
        wide("Selector", "string", Doc::Field(SERVICE_SPEC, "selector")),
    ],
    print: print_service,
};

/// The width a load balancer's addresses are clipped to without `-o wide`.
const LOAD_BALANCER_WIDTH: usize = 16;

/// `loadBalancerStatusStringer`: the ingress IPs (or host names), sorted and
/// de-duplicated. kube-apiserver always prints wide, so nothing is clipped
/// here; `wide` is kept to mirror the function.
fn load_balancer_addresses(svc: &Value, wide: bool) -> String {
    let set: BTreeSet<&str> = list_at(svc, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| {
            let ip = str_at(i, "/ip");
            let host = str_at(i, "/hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    let mut r = set.into_iter().collect::<Vec<_>>().join(",");
    if !wide && r.len() > LOAD_BALANCER_WIDTH {
        r.truncate(LOAD_BALANCER_WIDTH - 3);
        r.push_str("...");
    }
    r
}

/// `getServiceExternalIP`.
fn external_ip(svc: &Value, ty: &str) -> String {
    let external: Vec<&str> = list_at(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match ty {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_addresses(svc, true);
            if !external.is_empty() {
                let mut all: Vec<&str> = if lb.is_empty() {
                    vec![]
                } else {
                    lb.split(',').collect()
                };
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => str_at(svc, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    }
}

/// `makePortString`: `80/TCP`, `80:30080/TCP` with a node port.
fn port_string(svc: &Value) -> String {
    list_at(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let port = int_at(p, "/port").unwrap_or(0);
            // The protocol defaults to TCP (SetDefaults_ServicePort).
            let protocol = match str_at(p, "/protocol") {
                "" => "TCP",
                other => other,
            };
            match int_at(p, "/nodePort").filter(|n| *n > 0) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn print_service(svc: &Value, now: Timestamp) -> Printed {
    // The type defaults to ClusterIP (SetDefaults_Service).
    let ty = match str_at(svc, "/spec/type") {
        "" => "ClusterIP",
        other => other,
    };
    // clusterIPs[0]; an object written before clusterIPs existed carries
    // clusterIP only, which the API server copies into clusterIPs.
    let cluster_ip = list_at(svc, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| Some(str_at(svc, "/spec/clusterIP")).filter(|s| !s.is_empty()))
        .unwrap_or("<none>");
    let ports = port_string(svc);
    vec![
        json!(str_at(svc, "/metadata/name")),
        json!(ty),
        json!(cluster_ip),
        json!(external_ip(svc, ty)),
        json!(if ports.is_empty() {
            "<none>".into()
        } else {
            ports
        }),
        json!(age(now, svc)),
        json!(format_labels(svc.pointer("/spec/selector"))),
    ]
    .into()
}

pub const ENDPOINTS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Endpoints",
            "string",
            Doc::Field("io.k8s.api.core.v1.Endpoints", "subsets"),
        ),
        AGE,
    ],
    print: print_endpoints,
};

/// IPv6 addresses are bracketed, as Go's `net.JoinHostPort` does.
fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// `formatEndpoints` (all ports): up to three `ip:port`, then `+ N more...`.
fn format_endpoints(ep: &Value) -> String {
    let subsets = list_at(ep, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut count = 0usize;
    for ss in subsets {
        let addresses = list_at(ss, "/addresses");
        let ports = list_at(ss, "/ports");
        if ports.is_empty() {
            // A headless service without ports: addresses alone.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    break;
                }
                list.push(str_at(a, "/ip").to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    break;
                }
                list.push(join_host_port(
                    str_at(a, "/ip"),
                    int_at(port, "/port").unwrap_or(0),
                ));
            }
        }
    }
    let ret = list.join(",");
    if count > MAX {
        format!("{ret} + {} more...", count - MAX)
    } else {
        ret
    }
}

fn print_endpoints(ep: &Value, now: Timestamp) -> Printed {
    vec![
        json!(str_at(ep, "/metadata/name")),
        json!(format_endpoints(ep)),
        json!(age(now, ep)),
    ]
    .into()
}

const SLICE: &str = "io.k8s.api.discovery.v1.EndpointSlice";

pub const ENDPOINT_SLICE: Printer = Printer {
    columns: &[
        NAME,
        col("AddressType", "string", Doc::Field(SLICE, "addressType")),
        col("Ports", "string", Doc::Field(SLICE, "ports")),
        col("Endpoints", "string", Doc::Field(SLICE, "endpoints")),
        AGE,
    ],
    print: print_endpoint_slice,
};

fn print_endpoint_slice(slice: &Value, now: Timestamp) -> Printed {
    // formatDiscoveryPorts: the number, else the name, else "*".
    let ports_list = list_at(slice, "/ports");
    let ports: Vec<String> = ports_list
        .iter()
        .map(
            |p| match (int_at(p, "/port"), p.get("name").and_then(Value::as_str)) {
                (Some(n), _) => n.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            },
        )
        .collect();
    // formatDiscoveryEndpoints: every address of every endpoint.
    let addresses: Vec<String> = list_at(slice, "/endpoints")
        .iter()
        .flat_map(|e| list_at(e, "/addresses"))
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    vec![
        json!(str_at(slice, "/metadata/name")),
        json!(str_at(slice, "/addressType")),
        json!(list_with_more(&ports, ports.len())),
        json!(list_with_more(&addresses, addresses.len())),
        json!(age(now, slice)),
    ]
    .into()
}
