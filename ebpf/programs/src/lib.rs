//! The programs live in the `baton` binary target (`src/main.rs` and its
//! modules), which is what node's build script compiles for
//! `bpfel-unknown-none`. This empty library target exists so that baton-node
//! can name the crate as a build-dependency: cargo then reruns node's build
//! script, and re-embeds the object, whenever these programs or the ABI crate
//! they compile against change.
#![no_std]
