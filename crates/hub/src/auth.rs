//! Credentials: Hub tokens (configured or generated), stateless signed xet tokens (scope,
//! bucket, expiry; HMAC-SHA256 with a secret generated once into the data dir) and signed
//! expiring xorb fetch URLs, each signed for exact byte ranges.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::Rng;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::HubError;

type HmacSha256 = Hmac<Sha256>;

/// What a xet token allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reconstructions and fetches.
    Read,
    /// Everything a read token allows, plus xorb and shard uploads.
    Write,
}

impl Scope {
    fn tag(self) -> &'static str {
        match self {
            Scope::Read => "r",
            Scope::Write => "w",
        }
    }
}

/// The verified contents of a xet token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XetClaims {
    /// Scope.
    pub scope: Scope,
    /// Bucket uid the token was issued for.
    pub bucket_uid: u64,
    /// Expiry, unix seconds.
    pub exp: u64,
}

/// Signing keys of one hub instance.
pub struct Keys {
    secret: [u8; 32],
}

impl Keys {
    /// Loads the secret from `data_dir/secret.key`, generating it on first start.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("secret.key");
        let hexed = read_or_create(&path, || {
            let mut s = [0u8; 32];
            rand::rng().fill(&mut s);
            hex::encode(s)
        })?;
        let mut secret = [0u8; 32];
        hex::decode_to_slice(hexed.trim(), &mut secret)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?;
        Ok(Self { secret })
    }

    /// Keys from a given secret (tests).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        for p in parts {
            m.update(p);
            m.update(b"\n");
        }
        m.finalize().into_bytes().into()
    }

    /// Issues a xet token.
    pub fn issue_xet_token(&self, scope: Scope, bucket_uid: u64, exp: u64) -> String {
        let payload = format!("{}.{:016x}.{}", scope.tag(), bucket_uid, exp);
        let sig = self.mac(&[b"xet-token", payload.as_bytes()]);
        format!(
            "xet_{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(sig)
        )
    }

    /// Verifies a xet token (signature, expiry); 401 when invalid or expired.
    pub fn verify_xet_token(&self, token: &str, now: u64) -> Result<XetClaims, HubError> {
        let bad = || HubError::Unauthorized("invalid xet access token".into());
        let rest = token.strip_prefix("xet_").ok_or_else(bad)?;
        let (p, s) = rest.split_once('.').ok_or_else(bad)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| bad())?;
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let want = self.mac(&[b"xet-token", &payload]);
        if !bool::from(want.as_slice().ct_eq(&sig)) {
            return Err(bad());
        }
        let payload = String::from_utf8(payload).map_err(|_| bad())?;
        let mut it = payload.split('.');
        let scope = match it.next() {
            Some("r") => Scope::Read,
            Some("w") => Scope::Write,
            _ => return Err(bad()),
        };
        let bucket_uid = it
            .next()
            .and_then(|u| u64::from_str_radix(u, 16).ok())
            .ok_or_else(bad)?;
        let exp: u64 = it.next().and_then(|e| e.parse().ok()).ok_or_else(bad)?;
        if exp <= now {
            return Err(HubError::Unauthorized("xet access token expired".into()));
        }
        Ok(XetClaims {
            scope,
            bucket_uid,
            exp,
        })
    }

    /// Signature of a fetch URL for byte ranges `ranges` (`S-E[,S-E...]`) of xorb
    /// `xorb_hex`, valid until `exp`.
    pub fn fetch_sig(&self, xorb_hex: &str, ranges: &str, exp: u64) -> String {
        let sig = self.mac(&[
            b"fetch",
            xorb_hex.as_bytes(),
            ranges.as_bytes(),
            exp.to_string().as_bytes(),
        ]);
        URL_SAFE_NO_PAD.encode(&sig[..20])
    }

    /// Checks a fetch URL signature; 403 when bad or expired.
    pub fn verify_fetch(
        &self,
        xorb_hex: &str,
        ranges: &str,
        exp: u64,
        sig: &str,
        now: u64,
    ) -> Result<(), HubError> {
        let want = self.fetch_sig(xorb_hex, ranges, exp);
        if !bool::from(want.as_bytes().ct_eq(sig.as_bytes())) {
            return Err(HubError::Forbidden("invalid fetch URL signature".into()));
        }
        if exp <= now {
            return Err(HubError::Forbidden("fetch URL expired".into()));
        }
        Ok(())
    }
}

/// Constant-time membership of `token` in `tokens`.
pub fn token_matches(tokens: &[String], token: &str) -> bool {
    let mut ok = false;
    for t in tokens {
        ok |= bool::from(t.as_bytes().ct_eq(token.as_bytes()));
    }
    ok
}

/// The Hub token stored in `data_dir/hub_token`, generated on first start. The bool is true
/// when it was just created.
pub fn load_or_create_hub_token(data_dir: &Path) -> std::io::Result<(String, bool)> {
    let path = data_dir.join("hub_token");
    let existed = path.exists();
    let tok = read_or_create(&path, || {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let s: String = (0..34)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("hf_{s}")
    })?;
    Ok((tok.trim().to_string(), !existed))
}

/// Reads a small secret file, or creates it (mode 0600, fsynced) with `make()`.
fn read_or_create(path: &Path, make: impl FnOnce() -> String) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let value = make();
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
        let mut f = opts.open(&tmp)?;
        f.write_all(value.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(value)
}

/// The bearer token of an `Authorization` header.
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, tok) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| tok.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xet_tokens() {
        let k = Keys::from_secret([7; 32]);
        let t = k.issue_xet_token(Scope::Write, 0xabc, 1000);
        let c = k.verify_xet_token(&t, 999).unwrap();
        assert_eq!(
            c,
            XetClaims {
                scope: Scope::Write,
                bucket_uid: 0xabc,
                exp: 1000
            }
        );
        assert!(matches!(
            k.verify_xet_token(&t, 1000),
            Err(HubError::Unauthorized(m)) if m.contains("expired")
        ));
        // Tampering with the payload (read -> write) breaks the signature.
        let r = k.issue_xet_token(Scope::Read, 0xabc, 1000);
        let forged = r.replacen(
            &URL_SAFE_NO_PAD.encode("r.0000000000000abc.1000"),
            &URL_SAFE_NO_PAD.encode("w.0000000000000abc.1000"),
            1,
        );
        assert_ne!(forged, r);
        assert!(k.verify_xet_token(&forged, 0).is_err());
        // Another instance's key does not verify.
        assert!(Keys::from_secret([8; 32]).verify_xet_token(&t, 0).is_err());
    }

    #[test]
    fn fetch_sigs() {
        let k = Keys::from_secret([1; 32]);
        let s = k.fetch_sig("ab", "0-9", 50);
        k.verify_fetch("ab", "0-9", 50, &s, 10).unwrap();
        assert!(k.verify_fetch("ab", "0-9", 50, &s, 50).is_err());
        assert!(k.verify_fetch("ac", "0-9", 50, &s, 10).is_err());
        assert!(k.verify_fetch("ab", "0-9", 51, &s, 10).is_err());
        assert!(k.verify_fetch("ab", "0-8", 50, &s, 10).is_err());
        assert!(k.verify_fetch("ab", "0-9,20-29", 50, &s, 10).is_err());
    }

    #[test]
    fn secrets_persist() {
        let d = tempfile::tempdir().unwrap();
        let (t1, new1) = load_or_create_hub_token(d.path()).unwrap();
        let (t2, new2) = load_or_create_hub_token(d.path()).unwrap();
        assert!(new1 && !new2);
        assert_eq!(t1, t2);
        assert!(t1.starts_with("hf_") && t1.len() == 37);
        let k1 = Keys::load_or_create(d.path()).unwrap();
        let k2 = Keys::load_or_create(d.path()).unwrap();
        let tok = k1.issue_xet_token(Scope::Read, 1, 10);
        k2.verify_xet_token(&tok, 5).unwrap();
    }
}
