//! batch/v1: one module per kind.

pub mod cron_job;
pub mod job;
