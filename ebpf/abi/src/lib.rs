//! The ABI shared by the eBPF programs and baton-node.
#![no_std]
