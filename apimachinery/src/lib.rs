//! The API machinery baton's control plane and node agent share, so the two
//! sides read and write the API the same way without depending on each
//! other:
//!
//! - [`bootstrap_token`]: bootstrap tokens, the signed `cluster-info` and
//!   the CA public key pin a joining node checks;
//! - [`quantity`]: `resource.Quantity`, exact, with its canonical form;
//! - [`events`]: client-go's event recorder and its correlator (repeats
//!   counted on one Event, similar ones combined, spam dropped).

pub mod bootstrap_token;
pub mod events;
pub mod quantity;
