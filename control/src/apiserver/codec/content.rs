//! Content negotiation: which representation a client accepts (plain JSON,
//! YAML, protobuf, a meta.k8s.io Table, PartialObjectMetadata, aggregated
//! discovery) and decoding of request bodies (JSON, YAML, protobuf).

use serde_json::Value;

use crate::api::status::ApiError;

/// The media type of JSON responses.
pub const JSON: &str = "application/json";
pub const YAML: &str = "application/yaml";
/// kube-apiserver's content type for aggregated discovery v2.
pub const DISCOVERY_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const DISCOVERY_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// What the client asked to receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accept {
    Json,
    Yaml,
    /// `as=Table;g=meta.k8s.io;v=v1` (or v1beta1).
    Table {
        version: &'static str,
    },
    /// `as=PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata {
        version: &'static str,
    },
    /// Aggregated discovery (`as=APIGroupDiscoveryList`).
    Discovery {
        version: &'static str,
    },
    /// `application/vnd.kubernetes.protobuf`.
    Protobuf,
}

impl Accept {
    pub fn content_type(&self) -> String {
        match self {
            Accept::Json => JSON.into(),
            Accept::Yaml => YAML.into(),
            Accept::Protobuf => super::protobuf::MEDIA_TYPE.into(),
            Accept::Table { version } => format!("{JSON};as=Table;v={version};g=meta.k8s.io"),
            Accept::Metadata { version } => {
                format!("{JSON};as=PartialObjectMetadata;v={version};g=meta.k8s.io")
            }
            Accept::Discovery { version } => {
                format!("{JSON};g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList")
            }
        }
    }
}

/// A media range split into type and parameters.
struct MediaRange<'a> {
    essence: &'a str,
    params: Vec<(&'a str, &'a str)>,
    /// The `q` parameter (1 when absent, 0 when unparsable, as goautoneg
    /// reads it).
    q: f64,
}

impl<'a> MediaRange<'a> {
    fn parse(s: &'a str) -> Self {
        let mut parts = s.split(';');
        let essence = parts.next().unwrap_or("").trim();
        let mut params = Vec::new();
        let mut q = 1.0;
        for (k, v) in parts.filter_map(|p| p.split_once('=')) {
            let (k, v) = (k.trim(), v.trim().trim_matches('"'));
            if k == "q" {
                q = v.parse().unwrap_or(0.0);
            } else {
                params.push((k, v));
            }
        }
        MediaRange { essence, params, q }
    }

    fn param(&self, k: &str) -> Option<&'a str> {
        self.params.iter().find(|(a, _)| *a == k).map(|(_, v)| *v)
    }

    /// Sort key of goautoneg's order: higher q first, then concrete types
    /// before `application/*` before `*/*`; ties keep the client's order.
    fn rank(&self) -> (std::cmp::Reverse<u32>, bool, bool) {
        let (ty, sub) = self.essence.split_once('/').unwrap_or((self.essence, ""));
        (
            std::cmp::Reverse((self.q * 1000.0) as u32),
            ty == "*",
            sub == "*",
        )
    }
}

/// What an endpoint can answer with besides JSON and YAML.
#[derive(Debug, Clone, Copy, Default)]
pub struct Offers {
    /// Table and PartialObjectMetadata (resource reads).
    pub tables: bool,
    /// Aggregated discovery.
    pub discovery: bool,
    /// Protobuf (kinds that have a protobuf message).
    pub protobuf: bool,
}

/// Picks the first acceptable representation in the client's order.
/// `discovery` allows aggregated discovery; `tables` allows Table and
/// PartialObjectMetadata (resource reads only).
pub fn negotiate(header: Option<&str>, tables: bool, discovery: bool) -> Result<Accept, ApiError> {
    negotiate_offers(
        header,
        Offers {
            tables,
            discovery,
            protobuf: false,
        },
    )
}

/// Picks the representation kube-apiserver would: the clauses ordered by
/// q-value and specificity (the client's order among equals), the first one
/// a served representation matches. `*/*` and `application/*` mean JSON;
/// protobuf only where `offers.protobuf` (never for Tables, which are JSON
/// here), so `protobuf, json` falls back to JSON for kinds without it.
pub fn negotiate_offers(header: Option<&str>, offers: Offers) -> Result<Accept, ApiError> {
    let Some(h) = header.filter(|h| !h.trim().is_empty()) else {
        return Ok(Accept::Json);
    };
    let mut ranges: Vec<MediaRange<'_>> = h.split(',').map(MediaRange::parse).collect();
    ranges.sort_by_key(MediaRange::rank);
    let Offers {
        tables,
        discovery,
        protobuf,
    } = offers;
    for m in ranges {
        let json_like = matches!(m.essence, "application/json" | "*/*" | "application/*");
        match (m.essence, m.param("as")) {
            (super::protobuf::MEDIA_TYPE, None) if protobuf => match m.param("stream") {
                None | Some("watch") => return Ok(Accept::Protobuf),
                Some(_) => continue,
            },
            (_, Some("Table")) if json_like && tables => match (m.param("g"), m.param("v")) {
                (Some("meta.k8s.io"), Some("v1")) => return Ok(Accept::Table { version: "v1" }),
                (Some("meta.k8s.io"), Some("v1beta1")) => {
                    return Ok(Accept::Table { version: "v1beta1" });
                }
                _ => continue,
            },
            (_, Some("PartialObjectMetadata" | "PartialObjectMetadataList"))
                if json_like && tables =>
            {
                match (m.param("g"), m.param("v")) {
                    (Some("meta.k8s.io"), Some("v1")) => {
                        return Ok(Accept::Metadata { version: "v1" });
                    }
                    (Some("meta.k8s.io"), Some("v1beta1")) => {
                        return Ok(Accept::Metadata { version: "v1beta1" });
                    }
                    _ => continue,
                }
            }
            (_, Some("APIGroupDiscoveryList")) if json_like && discovery => {
                match (m.param("g"), m.param("v")) {
                    (Some("apidiscovery.k8s.io"), Some("v2")) => {
                        return Ok(Accept::Discovery { version: "v2" });
                    }
                    (Some("apidiscovery.k8s.io"), Some("v2beta1")) => {
                        return Ok(Accept::Discovery { version: "v2beta1" });
                    }
                    _ => continue,
                }
            }
            (_, Some(_)) => continue,
            (e, None) if json_like || e == "application/json" => return Ok(Accept::Json),
            ("application/yaml", None) => return Ok(Accept::Yaml),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable())
}

/// The request body's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
    Protobuf,
}

/// Classifies a Content-Type for object bodies (create/update).
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, ApiError> {
    let ct = content_type.unwrap_or(JSON);
    let essence = ct.split(';').next().unwrap_or("").trim();
    match essence {
        "application/json" | "" | "*/*" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
        super::protobuf::MEDIA_TYPE => Ok(BodyFormat::Protobuf),
        _ => Err(ApiError::unsupported_media_type(ct)),
    }
}

/// Decodes a JSON or YAML body into a JSON value, with kube-apiserver's
/// 400 messages for malformed input.
pub fn decode(format: BodyFormat, body: &[u8]) -> Result<Value, ApiError> {
    match format {
        BodyFormat::Json => serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "couldn't get version/kind; json parse error: {}",
                json_error(&e)
            ))
        }),
        BodyFormat::Yaml => {
            let v: Value = serde_yaml_ng::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "error converting YAML to JSON: yaml: {}",
                    e.to_string().replace("at line", "line")
                ))
            })?;
            Ok(v)
        }
        BodyFormat::Protobuf => super::protobuf::decode(body)
            .map_err(|e| ApiError::bad_request(format!("failed to decode protobuf: {e}"))),
    }
}

fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => "unexpected end of JSON input".into(),
        _ => format!(
            "invalid character at line {} column {}: {}",
            e.line(),
            e.column(),
            e
        ),
    }
}

/// Serialises a response value in the negotiated format.
pub fn encode(accept: &Accept, v: &Value) -> Vec<u8> {
    match accept {
        Accept::Yaml => serde_yaml_ng::to_string(v).unwrap_or_default().into_bytes(),
        _ => serde_json::to_vec(v).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_accept_headers() {
        let get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            negotiate(Some(get), true, false).unwrap(),
            Accept::Table { version: "v1" }
        );
        assert_eq!(negotiate(Some(get), false, false).unwrap(), Accept::Json);
        let disc = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(
            negotiate(Some(disc), false, true).unwrap(),
            Accept::Discovery { version: "v2" }
        );
        // Without protobuf for the endpoint, the next clause wins.
        assert_eq!(
            negotiate(
                Some("application/vnd.kubernetes.protobuf, */*"),
                true,
                false
            )
            .unwrap(),
            Accept::Json
        );
        assert!(negotiate(Some("text/html"), true, false).is_err());
        assert_eq!(negotiate(None, true, true).unwrap(), Accept::Json);
    }

    #[test]
    fn protobuf_by_order_and_q_value() {
        let pb = Offers {
            tables: true,
            protobuf: true,
            ..Default::default()
        };
        let none = Offers {
            tables: true,
            ..Default::default()
        };
        let n = |h: &str, o: Offers| negotiate_offers(Some(h), o);
        // client-go with ContentType protobuf (kube-proxy, kube-scheduler).
        let client_go = "application/vnd.kubernetes.protobuf, application/json";
        assert_eq!(n(client_go, pb).unwrap(), Accept::Protobuf);
        assert_eq!(n(client_go, none).unwrap(), Accept::Json);
        assert_eq!(
            n("application/json, application/vnd.kubernetes.protobuf", pb).unwrap(),
            Accept::Json
        );
        assert_eq!(n("*/*", pb).unwrap(), Accept::Json);
        assert_eq!(n("application/*", pb).unwrap(), Accept::Json);
        assert_eq!(
            n("application/vnd.kubernetes.protobuf, */*", pb).unwrap(),
            Accept::Protobuf
        );
        // q-values outrank order; specific types outrank wildcards.
        assert_eq!(
            n(
                "application/json;q=0.5, application/vnd.kubernetes.protobuf",
                pb
            )
            .unwrap(),
            Accept::Protobuf
        );
        assert_eq!(
            n(
                "application/vnd.kubernetes.protobuf;q=0.8, application/json;q=0.9",
                pb
            )
            .unwrap(),
            Accept::Json
        );
        assert_eq!(
            n("*/*, application/vnd.kubernetes.protobuf", pb).unwrap(),
            Accept::Protobuf
        );
        assert_eq!(
            n("application/vnd.kubernetes.protobuf;stream=watch", pb).unwrap(),
            Accept::Protobuf
        );
        // Tables stay JSON; protobuf alone where there is none is a 406.
        let table = "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, application/json;as=Table;v=v1;g=meta.k8s.io";
        assert_eq!(n(table, pb).unwrap(), Accept::Table { version: "v1" });
        assert_eq!(
            n("application/vnd.kubernetes.protobuf", none)
                .unwrap_err()
                .code,
            406
        );
        assert_eq!(
            Accept::Protobuf.content_type(),
            "application/vnd.kubernetes.protobuf"
        );
    }

    #[test]
    fn bodies_decode_or_give_400() {
        let v = decode(BodyFormat::Yaml, b"kind: Pod\nmetadata:\n  name: a\n").unwrap();
        assert_eq!(v["metadata"]["name"], "a");
        assert_eq!(decode(BodyFormat::Json, b"{").unwrap_err().code, 400);
        assert_eq!(decode(BodyFormat::Yaml, b"a: [").unwrap_err().code, 400);
        assert!(body_format(Some("text/plain")).is_err());
    }
}
