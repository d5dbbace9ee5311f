//! Names of the resources one test creates for itself (network namespaces,
//! cgroups, bpffs mounts): `<PREFIX><pid>-<tag>`. The pid lets two test
//! binaries run at once and marks a resource whose owner is gone as a
//! leftover of a killed run, to be removed before new ones are made.

use std::path::Path;

/// Prefix of every such name.
pub const PREFIX: &str = "baton-nt";

/// `<PREFIX><pid of this process>-<tag>`.
#[must_use]
pub fn name(tag: &str) -> String {
    format!("{PREFIX}{}-{tag}", std::process::id())
}

/// Whether the process that created a resource named `<PREFIX><pid>-...`
/// is gone (so the resource is a leftover of a killed run). Names without
/// the prefix are never leftovers.
#[must_use]
pub fn owner_is_gone(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return false;
    };
    let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
    !pid.is_empty() && !Path::new("/proc").join(&pid).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_owner_and_only_dead_owners_leave_leftovers() {
        let mine = name("tcp-n");
        assert_eq!(mine, format!("baton-nt{}-tcp-n", std::process::id()));
        assert!(!owner_is_gone(&mine));
        // Above the kernel's pid_max (at most 2^22), so no process has it.
        assert!(owner_is_gone("baton-nt99999999-tcp-n"));
        assert!(!owner_is_gone("baton-nt-no-pid"));
        assert!(!owner_is_gone("baton-1-2"));
    }
}
