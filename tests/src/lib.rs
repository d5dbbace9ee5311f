//! The namespace cluster harness: a whole baton cluster on one machine, in
//! network namespaces, for end-to-end tests, `cargo xtask up` and benchmarks.
#![forbid(unsafe_code)]
