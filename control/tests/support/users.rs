//! Clients as users other than the admin: the real kubectl with a
//! kubeconfig of their own, and waiting for the bindings they get.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baton_e2e::kubectl::Kubectl;

use crate::common::ApiServer;

/// kubectl as the user of `kubeconfig` (its caches beside it).
pub fn as_user(kubeconfig: &Path) -> Kubectl {
    let home = kubeconfig
        .parent()
        .unwrap()
        .join(kubeconfig.file_stem().unwrap());
    Kubectl::new(kubeconfig).with_home(home)
}

/// A kubeconfig `<name>.conf` for `api` (its CA) with the credentials
/// `kubectl config set-credentials` takes (`--token T`, or
/// `--client-certificate C --client-key K`).
pub fn kubeconfig_with(api: &ApiServer, name: &str, credentials: &[&str]) -> PathBuf {
    let conf = api.dir.path().join(format!("{name}.conf"));
    std::fs::write(&conf, "").unwrap();
    let conf_s = conf.to_str().unwrap().to_owned();
    let ca = api.cert_dir().join("ca.crt");
    let url = api.url();
    let mut set_credentials = vec!["config", "set-credentials", name];
    set_credentials.extend_from_slice(credentials);
    let user = format!("--user={name}");
    let setup = Kubectl::new(&conf);
    for args in [
        vec![
            "config",
            "set-cluster",
            "c",
            "--server",
            &url,
            "--certificate-authority",
            ca.to_str().unwrap(),
            "--embed-certs",
        ],
        set_credentials,
        vec!["config", "set-context", "c", "--cluster=c", &user],
        vec!["config", "use-context", "c"],
    ] {
        let mut all = vec!["--kubeconfig", conf_s.as_str()];
        all.extend(args);
        setup.run_ok(&all, None);
    }
    conf
}

/// Waits until `check` holds, for at most 30 s.
pub fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
