//! Builds the eBPF programs with nightly for `bpfel-unknown-none` and leaves the
//! object in OUT_DIR for `include_bytes_aligned!`.
fn main() -> anyhow::Result<()> {
    let ebpf = aya_build::Package {
        name: "baton-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf/programs"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::default())
}
