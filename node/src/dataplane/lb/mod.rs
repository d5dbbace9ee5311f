//! Load balancing: the services and backends the proxy programs
//! ([`services::LoadBalancer`], with [`spec::ServiceSpec`]s), the backend
//! table and its ids, Maglev tables, and the operations the load balancer
//! performs on its maps ([`map_ops::LbMapOps`]).

pub mod backends;
pub mod ids;
pub mod maglev;
pub mod map_ops;
#[cfg(test)]
mod memory_maps;
pub mod services;
pub mod spec;
