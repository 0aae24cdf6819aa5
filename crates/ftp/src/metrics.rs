//! Process-wide counters of the FTP front-end (rendered on the gateway's `/metrics`).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// FTP transfer counters.
#[derive(Debug)]
pub struct FtpMetrics {
    /// STORs committed.
    pub stor_ok: AtomicU64,
    /// STORs that failed (nothing committed).
    pub stor_failed: AtomicU64,
    /// RETRs completed.
    pub retr_ok: AtomicU64,
    /// RETRs that failed.
    pub retr_failed: AtomicU64,
    /// Bytes received by committed STORs.
    pub bytes_in: AtomicU64,
    /// Bytes sent by RETRs.
    pub bytes_out: AtomicU64,
}

/// The process's FTP counters.
pub static METRICS: FtpMetrics = FtpMetrics {
    stor_ok: AtomicU64::new(0),
    stor_failed: AtomicU64::new(0),
    retr_ok: AtomicU64::new(0),
    retr_failed: AtomicU64::new(0),
    bytes_in: AtomicU64::new(0),
    bytes_out: AtomicU64::new(0),
};

/// Which transfer [`FtpMetrics::transfer`] accounts for.
#[derive(Debug, Clone, Copy)]
pub enum Transfer {
    /// An upload.
    Stor,
    /// A download.
    Retr,
}

impl FtpMetrics {
    /// Runs a transfer inside `span`, then counts it and logs its one line (bytes, duration,
    /// or the error).
    pub async fn transfer<F, E>(
        &self,
        kind: Transfer,
        span: tracing::Span,
        transfer: F,
    ) -> Result<u64, E>
    where
        F: std::future::Future<Output = Result<u64, E>>,
        E: std::fmt::Display,
    {
        let started = std::time::Instant::now();
        let result = tracing::Instrument::instrument(transfer, span.clone()).await;
        let (ok, failed, bytes) = match kind {
            Transfer::Stor => (&self.stor_ok, &self.stor_failed, &self.bytes_in),
            Transfer::Retr => (&self.retr_ok, &self.retr_failed, &self.bytes_out),
        };
        let _enter = span.enter();
        let ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(n) => {
                ok.fetch_add(1, Relaxed);
                bytes.fetch_add(*n, Relaxed);
                tracing::info!(bytes = n, ms, "ftp transfer");
            }
            Err(e) => {
                failed.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, ms, "ftp transfer failed");
            }
        }
        result
    }

    /// Appends the counters as Prometheus text.
    pub fn render_prometheus(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP hugbucket_ftp_transfers_total FTP transfers by command and result."
        );
        let _ = writeln!(out, "# TYPE hugbucket_ftp_transfers_total counter");
        for (cmd, result, v) in [
            ("STOR", "ok", &self.stor_ok),
            ("STOR", "failed", &self.stor_failed),
            ("RETR", "ok", &self.retr_ok),
            ("RETR", "failed", &self.retr_failed),
        ] {
            let _ = writeln!(
                out,
                "hugbucket_ftp_transfers_total{{command=\"{cmd}\",result=\"{result}\"}} {}",
                v.load(Relaxed)
            );
        }
        for (name, help, v) in [
            (
                "received_bytes",
                "Bytes of committed uploads",
                &self.bytes_in,
            ),
            ("sent_bytes", "Bytes sent by downloads", &self.bytes_out),
        ] {
            let _ = writeln!(out, "# HELP hugbucket_ftp_{name}_total {help}.");
            let _ = writeln!(out, "# TYPE hugbucket_ftp_{name}_total counter");
            let _ = writeln!(out, "hugbucket_ftp_{name}_total {}", v.load(Relaxed));
        }
    }
}
