//! Concerns shared by baton's eBPF programs.
#![no_std]
