//! Starts the front-ends chosen by `--mode` on the core's runtime and waits for them on
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Anonymous, Mode, RuntimeKind, ServeArgs};
use crate::credentials::Credential;
use hugbucket_core::Gateway;
use hugbucket_tls::CertStore;

/// The running front-ends.
pub struct Frontends {
    tasks: JoinSet<()>,
    /// The S3 front-end's counters, when it runs.
    pub s3_stats: Option<hugbucket_s3::service::S3Stats>,
    /// The TLS certificates served (HTTPS on the S3 port, FTPS), to reload.
    pub certificates: Vec<Arc<CertStore>>,
}

impl Frontends {
    /// Waits until every front-end has stopped (after the stop signal they finish their
    /// in-flight requests and transfers).
    pub async fn wait(&mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Starts the front-ends. They stop accepting when `stop` turns true.
pub async fn start(
    args: &ServeArgs,
    credentials: &[Credential],
    gateway: Gateway,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Frontends> {
    let mut fronts = Frontends {
        tasks: JoinSet::new(),
        s3_stats: None,
        certificates: Vec::new(),
    };
    if matches!(args.mode, Mode::S3 | Mode::Both) {
        fronts.start_s3(args, credentials, gateway.clone(), stop.clone())?;
    }
    if matches!(args.mode, Mode::Ftp | Mode::Both) {
        fronts.start_ftp(args, credentials, gateway, stop).await?;
    }
    Ok(fronts)
}

impl Frontends {
    /// FTP: libunftp accepting on this tokio runtime, its sessions on the gateway's key-shard
    /// runtimes, calling the core directly (a key's calls on its owner). Users:
    /// `FTP_USERNAME`/`FTP_PASSWORD` and `--ftp-users`; with none (and anonymous off), the S3
    /// key pairs.
    async fn start_ftp(
        &mut self,
        args: &ServeArgs,
        credentials: &[Credential],
        gateway: Gateway,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut config = hugbucket_ftp::FtpConfig::new(args.ftp_listen);
        if let (Some(u), Some(p)) = (&args.ftp_username, &args.ftp_password) {
            config.users.push((u.clone(), p.clone()));
        }
        for pair in &args.ftp_users {
            if let Some((u, p)) = pair.split_once(':') {
                config.users.push((u.to_string(), p.to_string()));
            }
        }
        if config.users.is_empty() && args.ftp_anonymous == Anonymous::Off {
            // Never open by default: without FTP users, the S3 key pairs log in (access key id
            // as user name, secret as password).
            for c in credentials {
                config
                    .users
                    .push((c.access_key_id.clone(), c.secret_access_key.clone()));
            }
            tracing::info!("FTP: no FTP_USERNAME set; the S3 credentials log in");
        }
        config.anonymous = match args.ftp_anonymous {
            Anonymous::Off => hugbucket_ftp::Anonymous::Off,
            Anonymous::Read => hugbucket_ftp::Anonymous::ReadOnly,
            Anonymous::Write => hugbucket_ftp::Anonymous::ReadWrite,
        };
        config.passive_ports = args.ftp_passive_ports.clone();
        config.passive_host = args.ftp_public_host;
        if let (Some(cert), Some(key)) = (&args.ftp_tls_cert, &args.ftp_tls_key) {
            config.tls = Some(hugbucket_ftp::TlsConfig {
                cert: cert.clone(),
                key: key.clone(),
                required: false,
            });
        }
        let server = hugbucket_ftp::start(config, gateway)
            .await
            .with_context(|| format!("--ftp-listen {}", args.ftp_listen))?;
        tracing::info!(addr = %server.local_addr(), "FTP listening");
        self.certificates.extend(server.certificates());
        self.tasks.spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            server.shutdown().await;
        });
        Ok(())
    }

    /// S3: thread-per-core on `--runtime`, bridged to this (the core's) tokio runtime, HTTPS
    /// with `--s3-tls-cert`; on the stop signal it refuses new requests and lets the ones in
    /// flight finish.
    fn start_s3(
        &mut self,
        args: &ServeArgs,
        credentials: &[Credential],
        gateway: Gateway,
        mut stop: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let mut creds = hugbucket_s3::auth::Credentials::new();
        for c in credentials {
            creds.insert(&c.access_key_id, &c.secret_access_key);
        }
        let mut tls = None;
        if let (Some(cert), Some(key)) = (&args.s3_tls_cert, &args.s3_tls_key) {
            let store = CertStore::load(cert, key).context("--s3-tls-cert/--s3-tls-key")?;
            tls = Some(hugbucket_s3::runtime::tls::server_config(store.clone())?);
            self.certificates.push(store);
        }
        let config = hugbucket_s3::service::S3Config {
            runtime: match args.runtime {
                RuntimeKind::Glommio => hugbucket_s3::runtime::RuntimeKind::Glommio,
                RuntimeKind::Tokio => hugbucket_s3::runtime::RuntimeKind::Tokio,
            },
            serve: hugbucket_s3::runtime::ServeConfig {
                addr: args.s3_listen,
                cpus: args.core_cpus(),
                tls,
                ..Default::default()
            },
            router: hugbucket_s3::router::RouterConfig {
                base_domains: args.s3_domain.iter().cloned().collect(),
            },
            credentials: creds,
            region: "us-east-1".into(),
        };
        let bridge = hugbucket_s3::runtime::bridge::Bridge::new(tokio::runtime::Handle::current());
        let server = hugbucket_s3::service::start(gateway, bridge, config)
            .with_context(|| format!("--s3-listen {}", args.s3_listen))?;
        tracing::info!(
            addr = %server.local_addr(),
            runtime = ?args.runtime,
            https = args.s3_tls_cert.is_some(),
            "S3 listening"
        );
        self.s3_stats = Some(server.stats());
        let grace = Duration::from_secs(args.shutdown_timeout);
        self.tasks.spawn(async move {
            let _ = stop.wait_for(|s| *s).await;
            server.shutdown(grace).await;
        });
        Ok(())
    }
}
