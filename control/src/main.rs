//! `baton-control`: the control-plane binary.
#![forbid(unsafe_code)]

fn main() {}
