//! Step-by-step progress for long operations: each step prints what it is
//! doing, then how long it took, so a user always sees what is going on.

use std::time::Instant;

/// A sequence of numbered steps.
pub struct Steps {
    total: usize,
    done: usize,
}

impl Steps {
    pub fn new(total: usize) -> Self {
        Self { total, done: 0 }
    }

    /// Runs one step, printing its name before and its duration after.
    pub fn step<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.done += 1;
        eprintln!("==> [{}/{}] {name}", self.done, self.total);
        let start = Instant::now();
        let out = f();
        let secs = start.elapsed().as_secs_f64();
        match &out {
            Ok(_) => eprintln!("    {name}: done in {secs:.1}s"),
            Err(e) => eprintln!("    {name}: FAILED after {secs:.1}s: {e:#}"),
        }
        out
    }
}

/// Prints a one-line note under the current step.
pub fn note(msg: impl std::fmt::Display) {
    eprintln!("    {msg}");
}
