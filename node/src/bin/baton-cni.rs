//! `baton-cni`: the CNI plugin containerd runs for every pod sandbox
//! (spec 1.0: the command in `CNI_COMMAND`, the network configuration on
//! stdin, the result or error object on stdout). Logs go to stderr, which
//! the runtime keeps in its own log.

use std::io::{Read as _, Write as _};

use baton_node::cni::{self, Invocation, Plugin, link::Netlink};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BATON_CNI_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let invocation = Invocation::from_env(|key| std::env::var(key).ok());
    let mut stdin = Vec::new();
    let (out, code) = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => cni::run(&Plugin::new(Netlink), invocation, &stdin),
        Err(err) => {
            let error = cni::PluginError {
                code: cni::types::codes::IO,
                msg: "reading the network configuration".into(),
                details: err.to_string(),
            };
            (
                serde_json::to_string(&error.to_result()).unwrap_or_default(),
                1,
            )
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    std::process::exit(code);
}
