//! CPU affinity for the thread-per-core runtimes (the key shards here, the S3 front-end's
//! cores, the FTP sessions that run on the key shards).
//!
//! On Linux a new thread inherits its creator's affinity, so a thread created from a pinned
//! runtime thread (tokio's blocking pool, the engine's hash and compression threads) would
//! be confined to that one core. Pinned runtimes therefore give the threads they create the
//! process's whole CPU set back ([`unpin`], installed with `on_thread_start`), so that one
//! transfer's CPU work can use every core.

use std::sync::OnceLock;

/// The process's CPU set, read once, before the first thread is pinned.
static PROCESS_CPUS: OnceLock<Vec<usize>> = OnceLock::new();

/// The CPUs this process may run on, in order: the calling thread's set the first time
/// any function of this module runs (before anything is pinned), the same list after.
pub fn allowed_cpus() -> Vec<usize> {
    PROCESS_CPUS.get_or_init(current_thread_cpus).clone()
}

fn current_thread_cpus() -> Vec<usize> {
    let fallback = || {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    };
    match nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => {
            let cpus: Vec<usize> = (0..nix::sched::CpuSet::count())
                .filter(|&i| set.is_set(i).unwrap_or(false))
                .collect();
            if cpus.is_empty() { fallback() } else { cpus }
        }
        Err(_) => fallback(),
    }
}

/// Pins the calling thread to `cpu` (a warning, not an error, when the OS refuses).
pub fn pin_to(cpu: usize) {
    // Remember the process's set before the first pin narrows what a thread can read.
    allowed_cpus();
    set_affinity(&[cpu]);
}

/// Gives the calling thread the process's whole CPU set: for threads created from a
/// pinned thread (they inherit its single core).
pub fn unpin() {
    set_affinity(&allowed_cpus());
}

fn set_affinity(cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &cpu in cpus {
        if set.set(cpu).is_err() {
            tracing::warn!(cpu, "CPU number out of range for the affinity mask");
            return;
        }
    }
    if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
        tracing::warn!(?cpus, error = %e, "could not set the thread's CPU affinity");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn allowed_cpus_are_distinct_and_nonempty() {
        let cpus = super::allowed_cpus();
        assert!(!cpus.is_empty());
        let mut sorted = cpus.clone();
        sorted.dedup();
        assert_eq!(sorted, cpus);
    }

    #[test]
    fn a_thread_created_by_a_pinned_thread_is_unpinned_again() {
        let all = super::allowed_cpus();
        let seen = std::thread::spawn(move || {
            super::pin_to(all[0]);
            let pinned = super::current_thread_cpus();
            let child = std::thread::spawn(|| {
                let inherited = super::current_thread_cpus();
                super::unpin();
                (inherited, super::current_thread_cpus())
            })
            .join()
            .unwrap();
            (pinned, child)
        })
        .join()
        .unwrap();
        let all = super::allowed_cpus();
        assert_eq!(seen.0, vec![all[0]]);
        assert_eq!(
            seen.1.0,
            vec![all[0]],
            "Linux: a new thread inherits the pin"
        );
        assert_eq!(seen.1.1, all, "unpin restores the process's set");
    }
}
