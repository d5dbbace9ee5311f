//! [`EndpointSink`] for the node's [`Dataplane`]: registers each pod in the
//! endpoints map and attaches the pod-veth program to its host veth (in
//! the calling thread's network namespace, the node's).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::endpoints::EndpointSink;
use crate::cni::EndpointRecord;
use crate::dataplane::{
    AttachError, Dataplane, NodeStateError, PodAttachment, PodEndpoint, TcMode,
};

/// Registering a pod with the dataplane failed.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneSinkError {
    #[error("endpoint {ip}: MAC address {mac:?} is malformed")]
    Mac { ip: Ipv4Addr, mac: String },
    #[error("endpoint {ip}: {source}")]
    Map {
        ip: Ipv4Addr,
        #[source]
        source: NodeStateError,
    },
    #[error("endpoint {ip}: attaching to {iface}: {source}")]
    Attach {
        ip: Ipv4Addr,
        iface: String,
        #[source]
        source: AttachError,
    },
}

fn mac(ip: Ipv4Addr, text: &str) -> Result<[u8; 6], DataplaneSinkError> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .map_err(|_| DataplaneSinkError::Mac {
            ip,
            mac: text.to_owned(),
        })?;
    bytes.try_into().map_err(|_| DataplaneSinkError::Mac {
        ip,
        mac: text.to_owned(),
    })
}

/// The dataplane with the pod attachments baton-node holds.
pub struct DataplaneSink<'a> {
    pub dataplane: &'a mut Dataplane,
    pub attachments: &'a mut HashMap<Ipv4Addr, PodAttachment>,
    pub mode: TcMode,
}

impl EndpointSink for DataplaneSink<'_> {
    type Error = DataplaneSinkError;

    fn add(&mut self, r: &EndpointRecord) -> Result<(), DataplaneSinkError> {
        let endpoint = PodEndpoint {
            addr: r.ip,
            host_ifindex: r.host_ifindex,
            pod_mac: mac(r.ip, &r.pod_mac)?,
            host_mac: mac(r.ip, &r.host_mac)?,
            identity: 0,
        };
        if let Some(old) = self.attachments.remove(&r.ip) {
            let _ = self.dataplane.detach_pod(old);
        }
        let attachment = self
            .dataplane
            .attach_pod(&r.host_ifname, self.mode)
            .map_err(|source| DataplaneSinkError::Attach {
                ip: r.ip,
                iface: r.host_ifname.clone(),
                source,
            })?;
        self.attachments.insert(r.ip, attachment);
        self.dataplane
            .node()
            .register_endpoint(&endpoint)
            .map_err(|source| DataplaneSinkError::Map { ip: r.ip, source })
    }

    fn remove(&mut self, r: &EndpointRecord) -> Result<(), DataplaneSinkError> {
        if let Some(attachment) = self.attachments.remove(&r.ip) {
            // The veth may be gone already, and its link with it.
            let _ = self.dataplane.detach_pod(attachment);
        }
        self.dataplane
            .node()
            .unregister_endpoint(r.ip)
            .map_err(|source| DataplaneSinkError::Map { ip: r.ip, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_parse_from_ip_link_form() {
        let ip = Ipv4Addr::new(10, 244, 1, 2);
        assert_eq!(
            mac(ip, "02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(mac(ip, "02:42").is_err());
        assert!(mac(ip, "zz:42:ac:11:00:02").is_err());
    }
}
