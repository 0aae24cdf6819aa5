//! S3 credentials of `hugbucket serve`: the configured pairs, or a pair generated once
//! into the data directory.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::ServeArgs;

/// S3 credentials (access key id → secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credential {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
}

/// Loads the generated key pair from `path`, or generates and stores one (mode 0600).
/// Returns the pair and whether it was generated now.
pub fn load_or_generate_credentials(path: &Path) -> anyhow::Result<(Credential, bool)> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let c: Credential = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid credentials file", path.display()))?;
        return Ok((c, false));
    }
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |alphabet: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| alphabet[rand::random_range(0..alphabet.len())] as char)
            .collect()
    };
    let c = Credential {
        access_key_id: format!("HB{}", pick(ALNUM, 18)),
        secret_access_key: pick(SECRET, 40),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(serde_json::to_string_pretty(&c)?.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok((c, true))
}

/// All configured S3 credentials (generated ones when none are configured).
pub(crate) fn credentials(args: &ServeArgs) -> anyhow::Result<Vec<Credential>> {
    let mut out = Vec::new();
    if let (Some(k), Some(s)) = (&args.access_key_id, &args.secret_access_key) {
        out.push(Credential {
            access_key_id: k.clone(),
            secret_access_key: s.clone(),
        });
    }
    for pair in &args.credentials {
        if let Some((k, s)) = pair.split_once(':') {
            out.push(Credential {
                access_key_id: k.to_string(),
                secret_access_key: s.to_string(),
            });
        }
    }
    if out.is_empty() {
        let path = credentials_path(&args.data_dir);
        let (c, generated) = load_or_generate_credentials(&path)?;
        if generated {
            // Printed once, on stdout (never into the log).
            println!("Generated S3 credentials (stored in {}):", path.display());
            println!("  AWS_ACCESS_KEY_ID={}", c.access_key_id);
            println!("  AWS_SECRET_ACCESS_KEY={}", c.secret_access_key);
        } else {
            println!(
                "S3 access key id {} (secret in {})",
                c.access_key_id,
                path.display()
            );
        }
        out.push(c);
    }
    Ok(out)
}

/// The data dir's credentials file.
pub fn credentials_path(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials.json")
}
