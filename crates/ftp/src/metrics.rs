//! Process-wide counters of the FTP front-end, exported on the gateway's `/metrics`
//! through the registry the binary builds (see `hugbucket/src/metrics.rs`).

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The labels of `hugbucket_ftp_transfers_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    command: &'static str,
    result: &'static str,
}

/// FTP transfer counters (`prometheus-client` metrics).
#[derive(Debug)]
pub struct FtpMetrics {
    /// Transfers by command (`STOR`, `RETR`) and result (`ok`, `failed`).
    transfers: Family<TransferLabels, Counter>,
    /// Bytes received by committed STORs.
    pub bytes_in: Counter,
    /// Bytes sent by RETRs.
    pub bytes_out: Counter,
}

/// The process's FTP counters.
pub static METRICS: LazyLock<FtpMetrics> = LazyLock::new(FtpMetrics::default);

impl Default for FtpMetrics {
    fn default() -> Self {
        let transfers = Family::default();
        // Every combination is exported, at zero until it happens.
        for kind in [Transfer::Stor, Transfer::Retr] {
            for ok in [true, false] {
                let _ = transfers.get_or_create_owned(&kind.labels(ok));
            }
        }
        Self {
            transfers,
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
        }
    }
}

/// Which transfer [`FtpMetrics::transfer`] accounts for.
#[derive(Debug, Clone, Copy)]
pub enum Transfer {
    /// An upload.
    Stor,
    /// A download.
    Retr,
}

impl Transfer {
    fn labels(self, ok: bool) -> TransferLabels {
        TransferLabels {
            command: match self {
                Transfer::Stor => "STOR",
                Transfer::Retr => "RETR",
            },
            result: if ok { "ok" } else { "failed" },
        }
    }
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
        let _enter = span.enter();
        let ms = started.elapsed().as_millis() as u64;
        self.transfers
            .get_or_create(&kind.labels(result.is_ok()))
            .inc();
        match &result {
            Ok(n) => {
                let bytes = match kind {
                    Transfer::Stor => &self.bytes_in,
                    Transfer::Retr => &self.bytes_out,
                };
                bytes.inc_by(*n);
                tracing::info!(bytes = n, ms, "ftp transfer");
            }
            Err(e) => tracing::warn!(error = %e, ms, "ftp transfer failed"),
        }
        result
    }

    /// Registers every `hugbucket_ftp_*` family (names without the `_total` that the
    /// encoder appends to counters).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "hugbucket_ftp_transfers",
            "FTP transfers by command and result",
            self.transfers.clone(),
        );
        registry.register(
            "hugbucket_ftp_received_bytes",
            "Bytes of committed uploads",
            self.bytes_in.clone(),
        );
        registry.register(
            "hugbucket_ftp_sent_bytes",
            "Bytes sent by downloads",
            self.bytes_out.clone(),
        );
    }
}
