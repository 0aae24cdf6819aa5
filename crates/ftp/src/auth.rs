//! Logins: configured users (read-write) and, only when enabled, anonymous (read-only by
//! default). A wrong password or unknown user gets 530 after a short delay.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use unftp_core::auth::{
    AuthenticationError, Authenticator, Credentials, Principal, UserDetail, UserDetailError,
    UserDetailProvider,
};

use crate::{Anonymous, FtpConfig};

/// User names that log in anonymously (RFC 1635).
const ANONYMOUS_NAMES: [&str; 2] = ["anonymous", "ftp"];

/// An authenticated FTP user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpUser {
    /// Login name.
    pub name: String,
    /// Whether the user may create, change or delete anything.
    pub writable: bool,
}

impl fmt::Display for FtpUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl UserDetail for FtpUser {}

/// Checks passwords against the configured users and decides who may write.
#[derive(Clone)]
pub(crate) struct Users {
    users: Arc<Vec<(String, String)>>,
    anonymous: Anonymous,
    failure_delay: Duration,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        f.debug_struct("Users")
            .field("users", &names)
            .field("anonymous", &self.anonymous)
            .finish_non_exhaustive()
    }
}

impl Users {
    pub(crate) fn new(config: &FtpConfig) -> Self {
        Users {
            users: Arc::new(config.users.clone()),
            anonymous: config.anonymous,
            failure_delay: config.failed_login_delay,
        }
    }

    fn is_anonymous(name: &str) -> bool {
        ANONYMOUS_NAMES.iter().any(|a| a.eq_ignore_ascii_case(name))
    }

    /// The user `name` logs in as, if the password checks out.
    fn check(&self, name: &str, password: Option<&str>) -> Result<FtpUser, AuthenticationError> {
        if Self::is_anonymous(name) && !self.users.iter().any(|(u, _)| u == name) {
            return match self.anonymous {
                Anonymous::Off => Err(AuthenticationError::BadUser),
                Anonymous::ReadOnly => Ok(FtpUser {
                    name: name.into(),
                    writable: false,
                }),
                Anonymous::ReadWrite => Ok(FtpUser {
                    name: name.into(),
                    writable: true,
                }),
            };
        }
        let given = password.unwrap_or("");
        // Compare against every user so the time taken does not tell which names exist.
        let mut found = None;
        for (u, p) in self.users.iter() {
            let ok = constant_time_eq(u.as_bytes(), name.as_bytes())
                & constant_time_eq(p.as_bytes(), given.as_bytes());
            if ok && found.is_none() {
                found = Some(u.clone());
            }
        }
        match found {
            Some(name) => Ok(FtpUser {
                name,
                writable: true,
            }),
            None if self.users.iter().any(|(u, _)| u == name) => {
                Err(AuthenticationError::BadPassword)
            }
            None => Err(AuthenticationError::BadUser),
        }
    }

    fn user(&self, name: &str) -> Option<FtpUser> {
        if let Some((u, _)) = self.users.iter().find(|(u, _)| u == name) {
            return Some(FtpUser {
                name: u.clone(),
                writable: true,
            });
        }
        if Self::is_anonymous(name) {
            return match self.anonymous {
                Anonymous::Off => None,
                a => Some(FtpUser {
                    name: name.into(),
                    writable: a == Anonymous::ReadWrite,
                }),
            };
        }
        None
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

#[async_trait]
impl Authenticator for Users {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        match self.check(username, creds.password.as_deref()) {
            Ok(u) => {
                tracing::info!(user = %u.name, ip = %creds.source_ip, writable = u.writable, "ftp login");
                Ok(Principal { username: u.name })
            }
            Err(e) => {
                tracing::warn!(user = %username, ip = %creds.source_ip, "ftp login refused: {e}");
                tokio::time::sleep(self.failure_delay).await;
                Err(e)
            }
        }
    }
}

#[async_trait]
impl UserDetailProvider for Users {
    type User = FtpUser;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<FtpUser, UserDetailError> {
        self.user(&principal.username)
            .ok_or_else(|| UserDetailError::UserNotFound {
                username: principal.username.clone(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users(anonymous: Anonymous) -> Users {
        Users {
            users: Arc::new(vec![
                ("alice".into(), "s3cret".into()),
                ("bob".into(), "pw".into()),
            ]),
            anonymous,
            failure_delay: Duration::ZERO,
        }
    }

    #[test]
    fn passwords_and_anonymous() {
        let u = users(Anonymous::Off);
        assert_eq!(u.check("alice", Some("s3cret")).unwrap().name, "alice");
        assert!(u.check("alice", Some("s3cret")).unwrap().writable);
        assert!(matches!(
            u.check("alice", Some("s3cre")),
            Err(AuthenticationError::BadPassword)
        ));
        assert!(matches!(
            u.check("alice", Some("pw")),
            Err(AuthenticationError::BadPassword)
        ));
        assert!(matches!(
            u.check("alice", None),
            Err(AuthenticationError::BadPassword)
        ));
        assert!(matches!(
            u.check("carol", Some("pw")),
            Err(AuthenticationError::BadUser)
        ));
        assert!(matches!(
            u.check("anonymous", Some("a@b")),
            Err(AuthenticationError::BadUser)
        ));
        assert!(u.user("anonymous").is_none());
        let ro = users(Anonymous::ReadOnly);
        assert!(!ro.check("anonymous", Some("")).unwrap().writable);
        assert!(!ro.check("ftp", None).unwrap().writable);
        assert!(!ro.user("anonymous").unwrap().writable);
        let rw = users(Anonymous::ReadWrite);
        assert!(rw.check("Anonymous", Some("x")).unwrap().writable);
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"\xff"));
    }
}
