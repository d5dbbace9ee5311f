//! The kube-proxy baseline: the cluster's Services expressed as the rules
//! kube-proxy's iptables mode writes (`pkg/proxy/iptables/proxier.go`,
//! `syncProxyRules`), loaded by this benchmark — never by baton — into the
//! network namespace of a node that runs no baton dataplane, with one
//! `iptables-restore` (a single transaction per table), and removed again
//! when the [`LoadedRules`] guard drops.
//!
//! Per service port, as kube-proxy does with `--cluster-cidr` set
//! (LocalModeClusterCIDR) and the default masquerade bit 14:
//!
//! ```text
//! KUBE-SERVICES  -d VIP --dport P            -j KUBE-SVC-<hash>
//! KUBE-SVC-<hash> ! -s <cluster cidr> (VIP:P) -j KUBE-MARK-MASQ
//! KUBE-SVC-<hash> -m statistic --mode random --probability 1/(n-i) -j KUBE-SEP-<hash>   (last: no statistic)
//! KUBE-SEP-<hash> -s <endpoint>               -j KUBE-MARK-MASQ      (hairpin)
//! KUBE-SEP-<hash>                             -j DNAT --to-destination ip:port
//! KUBE-NODEPORTS --dport NP                   -j KUBE-EXT-<hash>
//! KUBE-EXT-<hash>                             -j KUBE-MARK-MASQ, -j KUBE-SVC-<hash>
//! KUBE-SERVICES (last) --dst-type LOCAL       -j KUBE-NODEPORTS
//! KUBE-POSTROUTING: MASQUERADE --random-fully what carries mark 0x4000
//! ```
//!
//! plus kube-proxy's filter-table hooks (KUBE-FORWARD accepting marked and
//! established traffic, the empty firewall and external-services chains).
//! Chain names are kube-proxy's: `KUBE-SVC-` + the first 16 base32
//! characters of sha256(`ns/name:port` + protocol), and so on.

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use baton_e2e::Netns;
use sha2::{Digest, Sha256};

use super::services::ServicePort;

/// kube-proxy's default `--iptables-masquerade-bit` (14).
const MASQ_MARK: &str = "0x4000";

/// Which iptables the baseline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// iptables-nft (Debian's default `iptables`): rules in nf_tables.
    Nft,
    /// iptables-legacy (x_tables).
    Legacy,
}

impl Backend {
    fn restore(self) -> &'static str {
        match self {
            Backend::Nft => "iptables-nft-restore",
            Backend::Legacy => "iptables-legacy-restore",
        }
    }

    fn save(self) -> &'static str {
        match self {
            Backend::Nft => "iptables-nft-save",
            Backend::Legacy => "iptables-legacy-save",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Nft => "iptables-nft",
            Backend::Legacy => "iptables-legacy",
        }
    }
}

/// The first 16 characters of the RFC 4648 base32 encoding (standard
/// alphabet) of `bytes`: exactly the first 10 bytes. Written out because
/// it is the only base32 the workspace needs.
fn base32_16(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(16);
    for group in bytes[..10].chunks(5) {
        let mut acc = 0u64;
        for b in group {
            acc = (acc << 8) | u64::from(*b);
        }
        for i in (0..8).rev() {
            out.push(ALPHABET[((acc >> (i * 5)) & 31) as usize] as char);
        }
    }
    out
}

/// kube-proxy's chain name: `prefix` + hash of the service port's name,
/// protocol (lower case) and, for endpoint chains, `ip:port`.
fn chain(prefix: &str, name: &str, protocol: &str, endpoint: &str) -> String {
    let hash = Sha256::digest(format!("{name}{protocol}{endpoint}").as_bytes());
    format!("{prefix}{}", base32_16(&hash))
}

/// A comment argument as kube-proxy writes it (quoted when it has spaces).
fn comment(text: &str) -> String {
    if text.contains(' ') {
        format!("\"{text}\"")
    } else {
        text.to_owned()
    }
}

/// Puts the service `name` in the middle of `ports`, the rest keeping
/// their order. kube-proxy writes KUBE-SERVICES (and KUBE-NODEPORTS) in Go
/// map order, so a service's rule sits at a random position and a new
/// connection to it is matched, on average, after half of the chain: the
/// middle is where the measured service meets the expected cost, not the
/// best case of the first rule.
pub fn place_in_middle(ports: &mut Vec<ServicePort>, name: &str) {
    let mut measured = Vec::new();
    ports.retain(|p| {
        let keep = p.name != name;
        if !keep {
            measured.push(p.clone());
        }
        keep
    });
    let middle = ports.len() / 2;
    ports.splice(middle..middle, measured);
}

/// The rules kube-proxy would write for `ports`, in their order (an
/// `iptables-restore` input with a `*filter` and a `*nat` table).
pub fn render(ports: &[ServicePort], cluster_cidr: &str) -> String {
    let mut chains: Vec<String> = Vec::new();
    let mut rules = String::new();
    let mut nodeports = String::new();
    for sp in ports {
        let name = sp.display_name();
        let proto = sp.protocol.to_ascii_lowercase();
        let svc = chain("KUBE-SVC-", &name, &proto, "");
        let vip = sp.cluster_ip;
        let port = sp.port;
        if sp.endpoints.is_empty() {
            // kube-proxy rejects these in the filter table; none of the
            // benchmark's services is without endpoints.
            continue;
        }
        chains.push(svc.clone());
        let _ = writeln!(
            rules,
            "-A KUBE-SERVICES -m comment --comment {} -m {proto} -p {proto} -d {vip} --dport {port} -j {svc}",
            comment(&format!("{name} cluster IP"))
        );
        if let Some(node_port) = sp.node_port {
            let ext = chain("KUBE-EXT-", &name, &proto, "");
            chains.push(ext.clone());
            let _ = writeln!(
                nodeports,
                "-A KUBE-NODEPORTS -m comment --comment {} -m {proto} -p {proto} --dport {node_port} -j {ext}",
                comment(&name)
            );
            let _ = writeln!(
                rules,
                "-A {ext} -m comment --comment {} -j KUBE-MARK-MASQ\n-A {ext} -j {svc}",
                comment(&format!(
                    "masquerade traffic for {name} external destinations"
                ))
            );
        }
        let _ = writeln!(
            rules,
            "-A {svc} -m comment --comment {} -m {proto} -p {proto} -d {vip} --dport {port} ! -s {cluster_cidr} -j KUBE-MARK-MASQ",
            comment(&format!("{name} cluster IP"))
        );
        let n = sp.endpoints.len();
        for (i, (ip, target)) in sp.endpoints.iter().enumerate() {
            let endpoint = format!("{ip}:{target}");
            let sep = chain("KUBE-SEP-", &name, &proto, &endpoint);
            chains.push(sep.clone());
            let statistic = if i + 1 < n {
                format!(
                    " -m statistic --mode random --probability {:.10}",
                    1.0 / (n - i) as f64
                )
            } else {
                String::new()
            };
            let _ = writeln!(
                rules,
                "-A {svc} -m comment --comment {}{statistic} -j {sep}",
                comment(&format!("{name} -> {endpoint}"))
            );
            let _ = writeln!(
                rules,
                "-A {sep} -m comment --comment {c} -s {ip} -j KUBE-MARK-MASQ\n-A {sep} -m comment --comment {c} -m {proto} -p {proto} -j DNAT --to-destination {endpoint}",
                c = comment(&name)
            );
        }
    }

    let mut out = String::with_capacity(rules.len() + 4096);
    out.push_str(
        "*filter\n\
         :KUBE-SERVICES - [0:0]\n\
         :KUBE-EXTERNAL-SERVICES - [0:0]\n\
         :KUBE-FORWARD - [0:0]\n\
         :KUBE-NODEPORTS - [0:0]\n\
         :KUBE-PROXY-FIREWALL - [0:0]\n\
         -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n\
         -A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service portals\" -j KUBE-EXTERNAL-SERVICES\n\
         -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j KUBE-PROXY-FIREWALL\n\
         -A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
    );
    let _ = writeln!(
        out,
        "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n\
         -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j ACCEPT\n\
         -A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n\
         COMMIT"
    );
    out.push_str(
        "*nat\n\
         :KUBE-SERVICES - [0:0]\n\
         :KUBE-NODEPORTS - [0:0]\n\
         :KUBE-POSTROUTING - [0:0]\n\
         :KUBE-MARK-MASQ - [0:0]\n",
    );
    for c in &chains {
        let _ = writeln!(out, ":{c} - [0:0]");
    }
    let _ = writeln!(
        out,
        "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n\
         -A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n\
         -A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN\n\
         -A KUBE-POSTROUTING -j MARK --xor-mark {MASQ_MARK}\n\
         -A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n\
         -A KUBE-MARK-MASQ -j MARK --or-mark {MASQ_MARK}"
    );
    out.push_str(&nodeports);
    out.push_str(&rules);
    out.push_str(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n\
         COMMIT\n",
    );
    out
}

/// Number of `-A` rules in an `iptables-restore` input.
pub fn rule_count(rules: &str) -> usize {
    rules.lines().filter(|l| l.starts_with("-A ")).count()
}

/// Rules loaded into a namespace; removed on drop (the namespace held no
/// rules before, so removal empties the tables and, for nf_tables, removes
/// them).
pub struct LoadedRules {
    netns: Netns,
    backend: Backend,
    /// How long the `iptables-restore` took.
    pub load_time: Duration,
    pub rules: usize,
}

fn run_in(netns: &Netns, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut cmd: Command = netns.command(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {program} in {}", netns.name()))?;
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(input.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {args:?} in {} failed ({}): {}",
            netns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `-A` rules `backend` shows in `netns`.
fn current_rules(netns: &Netns, backend: Backend) -> Result<usize> {
    Ok(rule_count(&run_in(netns, backend.save(), &[], None)?))
}

impl LoadedRules {
    /// Loads `rules` into `netns` (which must hold no rules) in one
    /// `iptables-restore`.
    pub fn load(netns: &Netns, backend: Backend, rules: &str) -> Result<Self> {
        let before = current_rules(netns, backend)?;
        ensure!(
            before == 0,
            "{} already holds {before} iptables rules; the baseline needs an empty node",
            netns.name()
        );
        let mut guard = Self {
            netns: netns.clone(),
            backend,
            load_time: Duration::ZERO,
            rules: rule_count(rules),
        };
        let start = Instant::now();
        run_in(netns, backend.restore(), &["--noflush"], Some(rules))?;
        guard.load_time = start.elapsed();
        let loaded = current_rules(netns, backend)?;
        ensure!(
            loaded == guard.rules,
            "{} shows {loaded} rules after loading {}",
            netns.name(),
            guard.rules
        );
        Ok(guard)
    }

    fn remove(&self) -> Result<()> {
        run_in(
            &self.netns,
            self.backend.restore(),
            &[],
            Some("*filter\nCOMMIT\n*nat\nCOMMIT\n"),
        )?;
        if self.backend == Backend::Nft {
            run_in(&self.netns, "nft", &["flush", "ruleset"], None)?;
        }
        let left = current_rules(&self.netns, self.backend)?;
        ensure!(left == 0, "{left} rules left in {}", self.netns.name());
        Ok(())
    }
}

impl Drop for LoadedRules {
    fn drop(&mut self) {
        if let Err(err) = self.remove() {
            eprintln!("removing the baseline's iptables rules: {err:#}");
        }
    }
}

/// Empties the kernel's connection tracking table of `netns` (entries of
/// finished connections would otherwise pile up over the runs and count
/// against the host-wide `nf_conntrack_max`).
pub fn flush_conntrack(netns: &Netns) -> Result<()> {
    let mut cmd = netns.command("conntrack");
    cmd.arg("-F")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // conntrack -F exits 1 when the table is already empty.
    cmd.status().context("running conntrack -F")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(name: &str, endpoints: &[(&str, u16)], node_port: Option<u16>) -> ServicePort {
        ServicePort {
            namespace: "default".into(),
            name: name.into(),
            port_name: "http".into(),
            protocol: "TCP".into(),
            cluster_ip: "10.96.0.10".parse().unwrap(),
            port: 80,
            node_port,
            endpoints: endpoints
                .iter()
                .map(|(ip, p)| (ip.parse().unwrap(), *p))
                .collect(),
        }
    }

    #[test]
    fn chain_names_are_kube_proxys() {
        // From kube-proxy's proxier_test.go: ns1/svc1:p80 over tcp.
        assert_eq!(
            chain("KUBE-SVC-", "ns1/svc1:p80", "tcp", ""),
            "KUBE-SVC-XPGD46QRK7WJZT7O"
        );
        assert_eq!(
            chain("KUBE-SEP-", "ns1/svc1:p80", "tcp", "10.180.0.1:80"),
            "KUBE-SEP-SXIVWICOYRO3J4NJ"
        );
    }

    #[test]
    fn the_measured_service_sits_mid_chain() {
        let mut ports: Vec<ServicePort> = (0..5)
            .map(|i| port(&format!("fill-{i}"), &[("10.244.1.2", 8080)], None))
            .collect();
        ports.insert(0, port("measured", &[("10.244.1.9", 8080)], None));
        place_in_middle(&mut ports, "measured");
        let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            ["fill-0", "fill-1", "measured", "fill-2", "fill-3", "fill-4"]
        );
        let rules = render(&ports, "10.244.0.0/16");
        let services: Vec<&str> = rules
            .lines()
            .filter(|l| l.starts_with("-A KUBE-SERVICES -m comment --comment \"default/"))
            .collect();
        assert!(
            services[2].contains("default/measured:http"),
            "{services:?}"
        );
    }

    #[test]
    fn endpoints_are_chosen_with_kube_proxys_probabilities() {
        let rules = render(
            &[port(
                "web",
                &[
                    ("10.244.1.2", 8080),
                    ("10.244.1.3", 8080),
                    ("10.244.1.4", 8080),
                ],
                Some(30080),
            )],
            "10.244.0.0/16",
        );
        assert!(rules.contains("--probability 0.3333333333 -j KUBE-SEP-"));
        assert!(rules.contains("--probability 0.5000000000 -j KUBE-SEP-"));
        assert_eq!(rules.matches("-m statistic").count(), 2);
        assert_eq!(rules.matches("-j DNAT --to-destination").count(), 3);
        assert!(rules.contains(
            "-A KUBE-SERVICES -m comment --comment \"default/web:http cluster IP\" -m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-SVC-"
        ));
        assert!(rules.contains("-m tcp -p tcp --dport 30080 -j KUBE-EXT-"));
        assert!(rules.contains("! -s 10.244.0.0/16 -j KUBE-MARK-MASQ"));
        // The NodePort jump is the last rule of KUBE-SERVICES.
        let last = rules
            .lines()
            .rfind(|l| l.starts_with("-A KUBE-SERVICES"))
            .unwrap();
        assert!(last.ends_with("-j KUBE-NODEPORTS"));
        assert!(rules.starts_with("*filter\n"));
        assert!(rules.ends_with("COMMIT\n"));
    }
}
