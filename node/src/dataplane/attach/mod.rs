//! The programs and where they attach: loading them ([`programs`]), tc on
//! the uplink and pod veths ([`tc`]), socket LB on a cgroup ([`cgroup`]),
//! the links pinned so attachments outlive the process ([`links`]), and
//! the pin directory of the maps ([`pins`]).

pub mod cgroup;
pub mod links;
pub mod pins;
pub mod programs;
pub mod tc;
