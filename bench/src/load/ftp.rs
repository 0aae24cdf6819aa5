//! FTP load: `--sessions` logged-in control connections (binary type, extended passive or
//! passive data connections, via `suppaftp`), each doing one transfer at a time.
//!
//! Files are `{dir}/obj-{n:08}`. Their contents are those of the S3 key `{dir minus the
//! bucket}/obj-{n:08}`, so `ftp --dir /b/p` and `s3 --bucket b --prefix p/` write and
//! verify the same objects. `retr` and `mixed` first store `--objects` files numbered
//! `0..objects` (skipped with `--no-prepare`); `stor` writes `0, 1, 2, …` (modulo
//! `--objects` when given); mixed-mode STORs write new numbers from `objects` upward.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use suppaftp::Mode;
use suppaftp::tokio::AsyncFtpStream;
use suppaftp::types::FileType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::data::{ObjectPieces, PIECE, Verifier, splitmix64};
use super::report::{Progress, Report, RunInfo};
use super::spec::{Mix, SizeSpec};
use super::stats::{Dispenser, ErrorLog, Live, Recorder};
use super::{Limit, LoadError, check_loopback, object_key};

/// What the FTP sessions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FtpMode {
    /// STOR of new files.
    Stor,
    /// RETR of the prepared files.
    Retr,
    /// A weighted mix of stor/retr (`--mix`).
    Mixed,
}

impl FtpMode {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            FtpMode::Stor => "stor",
            FtpMode::Retr => "retr",
            FtpMode::Mixed => "mixed",
        }
    }
}

/// Operations of the `mixed` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FtpOp {
    /// STOR.
    Stor,
    /// RETR.
    Retr,
}

impl FromStr for FtpOp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "stor" => Ok(FtpOp::Stor),
            "retr" => Ok(FtpOp::Retr),
            _ => Err(format!("unknown FTP operation {s:?} (stor, retr)")),
        }
    }
}

/// Everything an FTP run needs.
#[derive(Debug, Clone)]
pub struct FtpConfig {
    /// Server host.
    pub host: String,
    /// Control port.
    pub port: u16,
    /// Allow a non-loopback host.
    pub allow_remote: bool,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// Directory of the files, `/bucket[/prefix…]`.
    pub dir: String,
    /// MKD the directory (and its parents) first; failures are ignored.
    pub create_dir: bool,
    /// Mode.
    pub mode: FtpMode,
    /// File sizes.
    pub size: SizeSpec,
    /// Parallel sessions.
    pub sessions: usize,
    /// End of the run.
    pub limit: Limit,
    /// Operation mix of `mixed`.
    pub mix: Mix<FtpOp>,
    /// Prepared files (retr/mixed) or name space (stor).
    pub objects: Option<u64>,
    /// Do not store the prepared files.
    pub no_prepare: bool,
    /// Check RETR data byte by byte.
    pub verify: bool,
    /// Data seed.
    pub seed: u64,
    /// Per-operation timeout.
    pub timeout: Duration,
    /// PASV instead of EPSV.
    pub pasv: bool,
    /// No progress line.
    pub quiet: bool,
}

/// Prepared files of retr/mixed when `--objects` is not given.
pub const DEFAULT_OBJECTS: u64 = 100;

/// `(ftp path, data key)` of file number `i` in `dir` (`/bucket/p` → key `p/obj-…`).
pub fn file_names(dir: &str, i: u64) -> (String, String) {
    let dir = dir.trim_end_matches('/');
    let inner = dir
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, rest)| format!("{rest}/"))
        .unwrap_or_default();
    let key = object_key(&inner, i);
    let path = format!("{dir}/obj-{i:08}");
    (path, key)
}

struct Shared {
    cfg: FtpConfig,
    live: Arc<Live>,
    log: ErrorLog,
    stable: u64,
}

/// Opens and logs in one session.
async fn connect(cfg: &FtpConfig) -> Result<AsyncFtpStream, String> {
    let mut s = AsyncFtpStream::connect((cfg.host.as_str(), cfg.port))
        .await
        .map_err(|e| e.to_string())?;
    s.login(cfg.user.as_str(), cfg.password.as_str())
        .await
        .map_err(|e| format!("login: {e}"))?;
    s.transfer_type(FileType::Binary)
        .await
        .map_err(|e| format!("TYPE I: {e}"))?;
    s.set_mode(if cfg.pasv {
        Mode::Passive
    } else {
        Mode::ExtendedPassive
    });
    Ok(s)
}

async fn stor(
    s: &mut AsyncFtpStream,
    path: &str,
    seed: u64,
    key: &str,
    len: u64,
) -> Result<u64, String> {
    let mut w = s.put_with_stream(path).await.map_err(|e| e.to_string())?;
    for piece in ObjectPieces::new(seed, key, 0, len) {
        w.write_all(&piece)
            .await
            .map_err(|e| format!("data: {e}"))?;
    }
    s.finalize_put_stream(w).await.map_err(|e| e.to_string())?;
    Ok(len)
}

async fn retr(
    s: &mut AsyncFtpStream,
    path: &str,
    mut verify: Option<Verifier>,
) -> Result<u64, String> {
    let mut r = s.retr_as_stream(path).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; PIECE];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf).await.map_err(|e| format!("data: {e}"))?;
        if got == 0 {
            break;
        }
        n += got as u64;
        if let Some(v) = verify.as_mut() {
            v.update(&buf[..got]);
        }
    }
    s.finalize_retr_stream(r).await.map_err(|e| e.to_string())?;
    if let Some(v) = verify {
        v.finish().map_err(|e| format!("verify: {e}"))?;
    }
    Ok(n)
}

/// One session's worker: a control connection, reopened after any failure.
struct Session {
    ftp: Option<AsyncFtpStream>,
}

impl Session {
    async fn transfer(&mut self, sh: &Shared, op: FtpOp, idx: u64) -> Result<u64, String> {
        let cfg = &sh.cfg;
        let (path, key) = file_names(&cfg.dir, idx);
        let run = async {
            if self.ftp.is_none() {
                self.ftp = Some(connect(cfg).await?);
            }
            let Some(s) = self.ftp.as_mut() else {
                return Err("not connected".to_string());
            };
            match op {
                FtpOp::Stor => {
                    let len = cfg.size.size_for(cfg.seed, &key);
                    stor(s, &path, cfg.seed, &key, len).await
                }
                FtpOp::Retr => {
                    let v = cfg
                        .verify
                        .then(|| Verifier::new(cfg.seed, &key, cfg.size.size_for(cfg.seed, &key)));
                    retr(s, &path, v).await
                }
            }
        };
        let r = match tokio::time::timeout(cfg.timeout, run).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {:?}", cfg.timeout)),
        };
        if r.is_err() {
            // The control connection may be mid-transfer: start afresh.
            self.ftp = None;
        }
        r
    }

    async fn op(&mut self, sh: &Shared, rec: &mut Recorder, i: u64) {
        let (op, idx) = match sh.cfg.mode {
            FtpMode::Stor => (
                FtpOp::Stor,
                match sh.cfg.objects {
                    Some(n) if n > 0 => i % n,
                    _ => i,
                },
            ),
            FtpMode::Retr => (FtpOp::Retr, i % sh.stable.max(1)),
            FtpMode::Mixed => {
                let r = splitmix64(sh.cfg.seed ^ i.rotate_left(17));
                match sh.cfg.mix.pick(r) {
                    FtpOp::Stor => (FtpOp::Stor, sh.stable + i),
                    FtpOp::Retr => (FtpOp::Retr, splitmix64(r) % sh.stable.max(1)),
                }
            }
        };
        let name = match op {
            FtpOp::Stor => "stor",
            FtpOp::Retr => "retr",
        };
        let t = Instant::now();
        match self.transfer(sh, op, idx).await {
            Ok(n) => rec.ok(&sh.live, name, t, n),
            Err(e) => {
                let (path, _) = file_names(&sh.cfg.dir, idx);
                rec.err(&sh.live, &sh.log, name, &path, &e);
            }
        }
    }
}

/// Runs one task per session until `disp` runs out; returns the sessions and statistics.
async fn run_sessions(
    sh: &Arc<Shared>,
    sessions: Vec<Session>,
    disp: Arc<Dispenser>,
) -> (Vec<Session>, Recorder) {
    let mut tasks = Vec::with_capacity(sessions.len());
    for mut s in sessions {
        let (sh, disp) = (sh.clone(), disp.clone());
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            while let Some(i) = disp.next() {
                s.op(&sh, &mut rec, i).await;
            }
            (s, rec)
        }));
    }
    let mut all = Recorder::default();
    let mut back = Vec::new();
    for t in tasks {
        match t.await {
            Ok((s, r)) => {
                all.merge(&r);
                back.push(s);
            }
            Err(e) => {
                let mut r = Recorder::default();
                r.err(&sh.live, &sh.log, "worker", "-", &e.to_string());
                all.merge(&r);
            }
        }
    }
    (back, all)
}

/// Runs an FTP load and returns its report.
pub async fn run(cfg: FtpConfig) -> Result<Report, LoadError> {
    if cfg.sessions == 0 {
        return Err(LoadError::Usage("--sessions must be at least 1".into()));
    }
    if !cfg.dir.starts_with('/') || cfg.dir.trim_matches('/').is_empty() {
        return Err(LoadError::Usage(format!(
            "--dir {:?} must be an absolute path below a bucket, e.g. /bucket/prefix",
            cfg.dir
        )));
    }
    check_loopback(&cfg.host, cfg.allow_remote)?;
    let stable = match cfg.mode {
        FtpMode::Retr | FtpMode::Mixed => cfg.objects.unwrap_or(DEFAULT_OBJECTS),
        FtpMode::Stor => 0,
    };
    if stable == 0 && cfg.mode != FtpMode::Stor {
        return Err(LoadError::Usage(
            "--objects must be at least 1 for retr and mixed".into(),
        ));
    }
    // Log every session in before anything is measured.
    let conns = futures::future::join_all((0..cfg.sessions).map(|_| async {
        tokio::time::timeout(cfg.timeout, connect(&cfg))
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {:?}", cfg.timeout)))
    }))
    .await;
    let mut sessions = Vec::with_capacity(conns.len());
    for c in conns {
        let ftp = c.map_err(|e| {
            LoadError::Setup(format!("FTP session to {}:{}: {e}", cfg.host, cfg.port))
        })?;
        sessions.push(Session { ftp: Some(ftp) });
    }
    if cfg.create_dir {
        if let Some(Some(s)) = sessions.first_mut().map(|s| s.ftp.as_mut()) {
            let mut path = String::new();
            for part in cfg.dir.split('/').filter(|p| !p.is_empty()) {
                path.push('/');
                path.push_str(part);
                // Already existing directories answer 550: fine.
                let _ = s.mkdir(&path).await;
            }
        }
    }
    let info = RunInfo {
        protocol: "ftp",
        mode: cfg.mode.name().to_string(),
        target: format!("{}:{}", cfg.host, cfg.port),
        concurrency: cfg.sessions,
        size: cfg.size,
        seed: cfg.seed,
        verify: cfg.verify,
    };
    let quiet = cfg.quiet;
    let sh = Arc::new(Shared {
        cfg,
        live: Arc::default(),
        log: ErrorLog::default(),
        stable,
    });
    if stable > 0 && !sh.cfg.no_prepare {
        let t = Instant::now();
        let prep = Arc::new(Shared {
            cfg: FtpConfig {
                mode: FtpMode::Stor,
                objects: None,
                ..sh.cfg.clone()
            },
            live: Arc::default(),
            log: ErrorLog::default(),
            stable: 0,
        });
        let (back, rec) = run_sessions(
            &prep,
            sessions,
            Arc::new(Dispenser::new(Some(stable), None)),
        )
        .await;
        sessions = back;
        let errors: u64 = rec.ops.values().map(|s| s.errors).sum();
        if errors > 0 {
            let first = prep.log.samples().into_iter().next().unwrap_or_default();
            return Err(LoadError::Setup(format!(
                "storing {stable} files: {errors} failed, first: {first}"
            )));
        }
        if !quiet {
            eprintln!(
                "prepared {stable} files in {} in {:.2} s",
                sh.cfg.dir,
                t.elapsed().as_secs_f64()
            );
        }
    }
    let progress = Progress::start(
        sh.live.clone(),
        format!("ftp {}", sh.cfg.mode.name()),
        quiet,
    );
    let start = Instant::now();
    let (sessions, rec) = run_sessions(&sh, sessions, Arc::new(sh.cfg.limit.dispenser())).await;
    let elapsed = start.elapsed();
    drop(progress);
    for mut s in sessions {
        if let Some(mut f) = s.ftp.take() {
            let _ = f.quit().await;
        }
    }
    Ok(Report::new(&info, &rec, elapsed, sh.log.samples(), &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftp_paths_map_to_s3_keys() {
        assert_eq!(
            file_names("/bucket/pre/fix", 3),
            (
                "/bucket/pre/fix/obj-00000003".to_string(),
                "pre/fix/obj-00000003".to_string()
            )
        );
        assert_eq!(
            file_names("/bucket/", 12),
            (
                "/bucket/obj-00000012".to_string(),
                "obj-00000012".to_string()
            )
        );
        // Same key as the S3 side with --prefix pre/fix/.
        assert_eq!(file_names("/b/pre/fix/", 3).1, object_key("pre/fix/", 3));
    }

    #[test]
    fn mix_parses_ftp_ops() {
        let m: Mix<FtpOp> = "stor=1,retr=3".parse().unwrap();
        assert_eq!(
            m.kinds().collect::<Vec<_>>(),
            vec![FtpOp::Stor, FtpOp::Retr]
        );
        assert!("stor=1,dele=1".parse::<Mix<FtpOp>>().is_err());
    }
}
