//! What the datapath reports: its counters ([`metrics`]), the conntrack
//! table, read and garbage-collected ([`conntrack`]), and a dump of every
//! map for `baton-node dataplane dump` ([`dump`]).

pub mod conntrack;
pub mod dump;
pub mod metrics;
