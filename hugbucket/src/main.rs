//! The `hugbucket` binary: see [`hugbucket::cli`].
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

/// jemalloc instead of the system allocator. Every PUT allocates and frees xorb-sized
/// buffers (64 MiB) continuously; glibc returns such blocks to the kernel at once
/// (`munmap`), so each new one is page-faulted and zeroed again, which on the VMs we
/// measured costs more than hashing the bytes (`bench/results/`). jemalloc keeps freed
/// pages for reuse for a few seconds (its dirty-page decay) and then returns them, so the
/// resident size still follows the live data.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    hugbucket::cli::main()
}
