//! A development server: an embedded hub in a temporary directory, the gateway core and
//! the FTP front-end, until Ctrl-C. For poking at it with lftp/curl/FileZilla and for
//! running `tests/python/test_ftp.py` against it (`HUGBUCKET_FTP_ADDR=127.0.0.1:2121`).
//!
//! `cargo run -p hugbucket-ftp --example embedded -- [LISTEN]` (default 127.0.0.1:2121);
//! users from `FTP_USERNAME` / `FTP_PASSWORD` (default `user` / `password`); FTPS when
//! `FTP_TLS_CERT` and `FTP_TLS_KEY` name PEM files.

use std::time::Duration;

use hugbucket_core::{CoreConfig, Gateway};
use hugbucket_core::{HubClient, UpstreamConfig};
use hugbucket_ftp::{FtpConfig, TlsConfig};
use hugbucket_hub::HubConfig;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2121".into())
        .parse()?;
    let dir = tempfile::tempdir()?;
    let mut hub_config = HubConfig::new("127.0.0.1:0".parse()?, dir.path().join("hub"));
    hub_config.namespace = "dev".into();
    let hub = hugbucket_hub::start(hub_config).await?;
    let client = HubClient::new(
        &hub.url(),
        Some(hub.token().to_string()),
        UpstreamConfig::default(),
    )?;
    let gateway = Gateway::new(CoreConfig::new(dir.path().join("gateway")), client).await?;
    let user = std::env::var("FTP_USERNAME").unwrap_or_else(|_| "user".into());
    let password = std::env::var("FTP_PASSWORD").unwrap_or_else(|_| "password".into());
    let mut config = FtpConfig::new(listen).with_user(user, password);
    config.failed_login_delay = Duration::from_millis(100);
    if let (Ok(cert), Ok(key)) = (std::env::var("FTP_TLS_CERT"), std::env::var("FTP_TLS_KEY")) {
        config.tls = Some(TlsConfig {
            cert: cert.into(),
            key: key.into(),
            required: false,
        });
    }
    let server = hugbucket_ftp::start(config, gateway).await?;
    println!(
        "ftp listening on {} (hub {})",
        server.local_addr(),
        hub.url()
    );
    tokio::signal::ctrl_c().await?;
    server.shutdown().await;
    Ok(())
}
