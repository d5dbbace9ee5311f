//! `bpf(BPF_PROG_TEST_RUN)`: run a loaded program on a crafted packet.
//!
//! The kernel builds an skb (or XDP buffer) from the input bytes, runs the
//! program once (or `repeat` times), and hands back its return value, the
//! packet as the program left it, and the average run time. This is how the
//! dataplane's packet logic is tested frame by frame without a network.
//!
//! aya 0.14 has no wrapper for this command, so it is issued here directly.
//! The attribute layout is written out from the kernel's `union bpf_attr`
//! (`include/uapi/linux/bpf.h`, the `test` member) rather than taken from
//! aya-obj's generated bindings, which name that struct by its position in
//! the union and so change between releases.

use std::{
    os::fd::{AsRawFd, BorrowedFd},
    time::Duration,
};

use super::SyscallError;

/// `enum bpf_cmd` value of `BPF_PROG_TEST_RUN`.
const BPF_PROG_TEST_RUN: libc::c_int = 10;

/// Output buffer room beyond the input length, for programs that grow the
/// packet (encapsulation, `bpf_skb_adjust_room`). The kernel limits test
/// packets to about a page anyway.
const DEFAULT_OUT_HEADROOM: usize = 4096;

/// The `test` member of `union bpf_attr`. Fields after `batch_size` must be
/// zero, which `_pad` is; the kernel zero-fills the rest of the union because
/// the size passed is smaller than its own.
#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}
const _: () = assert!(size_of::<TestRunAttr>() == 80);

/// One test run: the input packet and the optional context.
#[derive(Debug, Clone)]
#[must_use]
pub struct TestRun<'a> {
    data: &'a [u8],
    ctx: Option<&'a [u8]>,
    repeat: u32,
    out_capacity: usize,
}

impl<'a> TestRun<'a> {
    /// A run of the program on `data`, a whole frame starting at the Ethernet
    /// header for tc programs (the kernel requires at least 14 bytes).
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            ctx: None,
            repeat: 1,
            out_capacity: data.len() + DEFAULT_OUT_HEADROOM,
        }
    }

    /// Program context to start from, e.g. a `struct __sk_buff` for tc
    /// programs (fields the kernel does not accept as input must be zero).
    /// Without it the kernel derives the context from the packet.
    pub fn ctx(mut self, ctx: &'a [u8]) -> Self {
        self.ctx = Some(ctx);
        self
    }

    /// Runs the program `repeat` times on the same input; the reported
    /// duration is the average. Default 1. Each run has its side effects
    /// (map updates) — counters see every repetition.
    pub fn repeat(mut self, repeat: u32) -> Self {
        self.repeat = repeat.max(1);
        self
    }

    /// Size of the buffer for the output packet. Default: the input length
    /// plus 4 KiB.
    pub fn out_capacity(mut self, bytes: usize) -> Self {
        self.out_capacity = bytes;
        self
    }
}

/// What one test run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestRunOutput {
    /// The program's return value as the kernel reports it (a tc verdict such
    /// as `TC_ACT_UNSPEC` (-1) reads as `u32::MAX`; see [`Self::verdict`]).
    pub retval: u32,
    /// The packet after the program ran.
    pub data: Vec<u8>,
    /// The context after the program ran, if one was passed in.
    pub ctx: Option<Vec<u8>>,
    /// Average run time per repetition, as measured by the kernel.
    pub duration: Duration,
}

impl TestRunOutput {
    /// The return value as the signed verdict tc and XDP programs return.
    #[must_use]
    pub fn verdict(&self) -> i32 {
        self.retval.cast_signed()
    }
}

/// A test run failed.
#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    /// An input does not fit the kernel's 32-bit length fields.
    #[error("BPF_PROG_TEST_RUN: {what} of {len} bytes does not fit a u32 length")]
    TooLarge { what: &'static str, len: usize },
    /// The program's output packet is larger than the buffer given.
    #[error("BPF_PROG_TEST_RUN: output packet needs {needed} bytes, the buffer holds {capacity}")]
    OutputTooSmall { needed: usize, capacity: usize },
    /// The kernel refused the run (EINVAL for a frame shorter than an
    /// Ethernet header or a bad context, EPERM without CAP_BPF, ...).
    #[error(transparent)]
    Syscall(#[from] SyscallError),
}

fn len_u32(what: &'static str, len: usize) -> Result<u32, TestRunError> {
    u32::try_from(len).map_err(|_| TestRunError::TooLarge { what, len })
}

/// Runs the loaded program `prog` once per [`TestRun::repeat`] on the input.
pub fn prog_test_run(
    prog: BorrowedFd<'_>,
    run: &TestRun<'_>,
) -> Result<TestRunOutput, TestRunError> {
    let mut data_out = vec![0u8; run.out_capacity];
    let mut ctx_out = run.ctx.map(|ctx| vec![0u8; ctx.len()]);

    let mut attr = TestRunAttr {
        // A valid fd is never negative.
        prog_fd: prog.as_raw_fd().cast_unsigned(),
        data_size_in: len_u32("packet", run.data.len())?,
        data_size_out: len_u32("output buffer", data_out.len())?,
        data_in: run.data.as_ptr() as u64,
        data_out: data_out.as_mut_ptr() as u64,
        repeat: run.repeat,
        ..TestRunAttr::default()
    };
    if let (Some(ctx), Some(out)) = (run.ctx, ctx_out.as_mut()) {
        attr.ctx_size_in = len_u32("context", ctx.len())?;
        attr.ctx_size_out = len_u32("context", out.len())?;
        attr.ctx_in = ctx.as_ptr() as u64;
        attr.ctx_out = out.as_mut_ptr() as u64;
    }

    // SAFETY: `attr` is a properly initialised `bpf_attr.test` prefix whose
    // size is passed along, so the kernel reads no further. Every pointer in it
    // refers to a live buffer of the stated size that outlives the call: the
    // inputs are borrowed by `run`, and the outputs (`data_out`, `ctx_out`)
    // are owned here and only written by the kernel within their sizes. The
    // program fd is borrowed, so it stays open for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            &raw mut attr,
            size_of::<TestRunAttr>(),
        )
    };
    if ret < 0 {
        let error = SyscallError::last("bpf(BPF_PROG_TEST_RUN)");
        if error.source.raw_os_error() == Some(libc::ENOSPC) {
            return Err(TestRunError::OutputTooSmall {
                needed: attr.data_size_out as usize,
                capacity: data_out.len(),
            });
        }
        return Err(error.into());
    }

    data_out.truncate(attr.data_size_out as usize);
    if let Some(out) = ctx_out.as_mut() {
        out.truncate(attr.ctx_size_out as usize);
    }
    Ok(TestRunOutput {
        retval: attr.retval,
        data: data_out,
        ctx: ctx_out,
        duration: Duration::from_nanos(u64::from(attr.duration)),
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn a_non_program_fd_is_refused_with_the_call_named() {
        // /dev/null is not a BPF program: the kernel answers EINVAL (or EPERM
        // without privileges) before touching any buffer.
        let file = std::fs::File::open("/dev/null").unwrap();
        let frame = [0u8; 64];
        let error = prog_test_run(file.as_fd(), &TestRun::new(&frame)).unwrap_err();
        assert!(
            error.to_string().contains("bpf(BPF_PROG_TEST_RUN)"),
            "{error}"
        );
    }

    #[test]
    fn verdict_reads_the_return_value_signed() {
        let output = TestRunOutput {
            retval: u32::MAX,
            data: Vec::new(),
            ctx: None,
            duration: Duration::ZERO,
        };
        assert_eq!(output.verdict(), -1);
    }
}
