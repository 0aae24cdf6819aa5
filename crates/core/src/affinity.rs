//! CPU affinity for the thread-per-core runtimes (the key shards here, the S3 front-end's
//! cores, the FTP sessions that run on the key shards).

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
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
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
            tracing::warn!(cpu, error = %e, "could not pin the thread");
        }
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
}
