//! The FTP front-end against an in-process hub and gateway core, driven by real clients:
//! Python `ftplib` (subprocess), `curl` and `lftp`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use hugbucket_core::{CoreConfig, Gateway};
use hugbucket_core::{HubClient, RetryConfig, UpstreamConfig};
use hugbucket_ftp::{Anonymous, FtpConfig, FtpServer, TlsConfig};
use hugbucket_hub::{HubConfig, RunningHub};
use tokio::process::Command;

const USER: &str = "alice";
const PASS: &str = "s3cret pass";

struct Env {
    _hub: RunningHub,
    gw: Gateway,
    ftp: FtpServer,
    dir: tempfile::TempDir,
}

async fn env_with(tweak: impl FnOnce(&mut FtpConfig, &Path)) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = HubConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("hub"));
    cfg.namespace = "tester".into();
    cfg.tokens = vec!["hf_ftp_test".into()];
    let hub = hugbucket_hub::start(cfg).await.unwrap();
    let upstream = UpstreamConfig {
        retry: RetryConfig {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            total_budget: Duration::from_secs(5),
            ..RetryConfig::default()
        },
        ..UpstreamConfig::default()
    };
    let client = HubClient::new(&hub.url(), Some(hub.token().to_string()), upstream).unwrap();
    let gw = Gateway::new(CoreConfig::new(dir.path().join("gw")), client)
        .await
        .unwrap();
    let mut config = FtpConfig::new("127.0.0.1:0".parse().unwrap()).with_user(USER, PASS);
    config.passive_ports = 40000..=44999;
    config.failed_login_delay = Duration::from_millis(50);
    tweak(&mut config, dir.path());
    let ftp = hugbucket_ftp::start(config, gw.clone()).await.unwrap();
    Env {
        _hub: hub,
        gw,
        ftp,
        dir,
    }
}

async fn env() -> Env {
    env_with(|_, _| {}).await
}

fn random(len: usize, label: &str) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(label.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Shared Python prelude: connection helpers and `code()`, which runs an ftplib call and
/// returns the reply code ("226", "550", ...).
const PRELUDE: &str = r#"
import ftplib, io, os, socket, ssl, struct, sys, time
H = os.environ["FTP_HOST"]; P = int(os.environ["FTP_PORT"])
U = os.environ["FTP_USER"]; W = os.environ["FTP_PASS"]
def login(user=U, pw=W):
    f = ftplib.FTP()
    f.connect(H, P, timeout=60)
    f.login(user, pw)
    return f
def code(fn, *a, **kw):
    """The reply code of an ftplib call ("ok" for calls that return data)."""
    try:
        r = fn(*a, **kw)
    except ftplib.all_errors as e:
        return str(e)[:3]
    return r[:3] if isinstance(r, str) and r[:3].isdigit() else "ok"
def cmd(f, line):
    return code(f.sendcmd, line)
def eq(a, b, what=""):
    if a != b:
        sys.exit(f"{what}: expected {b!r}, got {a!r}")
def retr(f, path, rest=None):
    buf = io.BytesIO()
    f.retrbinary("RETR " + path, buf.write, blocksize=1 << 20, rest=rest)
    return buf.getvalue()
def stor(f, path, data):
    return f.storbinary("STOR " + path, io.BytesIO(data), blocksize=1 << 20)
"#;

impl Env {
    fn port(&self) -> u16 {
        self.ftp.local_addr().port()
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    }

    /// Runs a Python ftplib script (after [`PRELUDE`]); panics with its output if it fails.
    async fn py(&self, script: &str) -> String {
        let out = Command::new("python3")
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .env("FTP_HOST", "127.0.0.1")
            .env("FTP_PORT", self.port().to_string())
            .env("FTP_USER", USER)
            .env("FTP_PASS", PASS)
            .env("WORK", self.dir.path())
            .kill_on_drop(true)
            .output()
            .await
            .expect("python3 runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "python failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    async fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        let r = self
            .gw
            .object(bucket, key)
            .unwrap()
            .get(None)
            .await
            .unwrap();
        let mut body = r.body;
        let mut out = Vec::new();
        while let Some(p) = body.next().await {
            out.extend_from_slice(&p.unwrap());
        }
        out
    }

    async fn exists(&self, bucket: &str, key: &str) -> bool {
        self.gw.object(bucket, key).unwrap().head().await.is_ok()
    }
}

async fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.kill_on_drop(true).output().await.expect("command runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_good_bad_and_anonymous_refused() {
    let e = env().await;
    e.py(
        r#"
f = ftplib.FTP(); f.connect(H, P, timeout=30)
eq(f.getwelcome()[:3], "220", "greeting")
eq(code(f.login, U, W), "230", "good login")
eq(f.pwd(), "/", "pwd after login")
f.quit()
for user, pw in [(U, "wrong"), (U, ""), ("mallory", W), ("anonymous", "me@example.com"), ("ftp", "x")]:
    f = ftplib.FTP(); f.connect(H, P, timeout=30)
    eq(code(f.login, user, pw), "530", f"login {user}/{pw}")
    eq(code(f.nlst, "/"), "530", "commands before login")
    f.close()
"#,
    )
    .await;
    e.ftp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_is_read_only_when_enabled() {
    let e = env_with(|c, _| c.anonymous = Anonymous::ReadOnly).await;
    e.py(r#"
f = login()
eq(cmd(f, "MKD /pub"), "257", "mkd bucket")
stor(f, "/pub/readme.txt", b"hello anonymous")
f.quit()
a = login("anonymous", "guest@example.com")
eq(a.nlst("/pub"), ["readme.txt"], "anonymous lists")
eq(retr(a, "/pub/readme.txt"), b"hello anonymous", "anonymous reads")
eq(code(stor, a, "/pub/evil.txt", b"x"), "550", "anonymous STOR")
eq(cmd(a, "MKD /pub/dir"), "550", "anonymous MKD")
eq(cmd(a, "MKD /evil"), "550", "anonymous MKD bucket")
eq(code(a.delete, "/pub/readme.txt"), "550", "anonymous DELE")
eq(code(a.rename, "/pub/readme.txt", "/pub/x"), "550", "anonymous RNTO")
eq(code(a.rmd, "/pub"), "550", "anonymous RMD")
eq(a.nlst("/pub"), ["readme.txt"], "nothing changed")
a.quit()
"#)
        .await;
    assert!(!e.exists("pub", "evil.txt").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_folders_mkd_rmd_cwd() {
    let e = env().await;
    e.py(r#"
f = login()
eq(f.nlst("/"), [], "no buckets yet")
eq(cmd(f, "MKD /data"), "257", "mkd bucket")
eq(cmd(f, "MKD /data"), "550", "mkd existing bucket")
eq(cmd(f, "MKD /Bad_Name"), "553", "invalid bucket name")
eq(cmd(f, "MKD /data/a"), "257", "mkd folder")
eq(cmd(f, "MKD /data/a/b"), "257", "nested mkd")
eq(cmd(f, "MKD /nobucket/x"), "550", "mkd in a missing bucket")
eq(f.nlst("/"), ["data"], "buckets")
eq(f.nlst("/data"), ["a"], "bucket listing")
eq(f.nlst("/data/a"), ["b"], "folder listing")
eq(f.nlst("/data/a/b"), [], "empty folder listing")
eq(code(f.cwd, "/data/a/b"), "250", "cwd nested")
eq(f.pwd(), "/data/a/b", "pwd")
eq(code(f.cwd, ".."), "250", "cwd ..")
eq(f.nlst(), ["b"], "relative listing")
eq(code(f.cwd, "/data/nope"), "550", "cwd missing folder")
eq(code(f.cwd, "/nobucket"), "550", "cwd missing bucket")
stor(f, "/data/a/file.bin", b"12345")
eq(code(f.cwd, "/data/a/file.bin"), "550", "cwd into a file")
eq(code(f.rmd, "/data/a"), "550", "rmd non-empty folder")
eq(code(f.rmd, "/data"), "550", "rmd non-empty bucket")
eq(code(f.rmd, "/data/a/b"), "250", "rmd empty folder")
eq(code(f.rmd, "/data/a/b"), "550", "rmd again")
eq(code(f.rmd, "/data/a/file.bin"), "550", "rmd a file")
f.delete("/data/a/file.bin")
eq(f.nlst("/data/a"), [], "folder emptied")
eq(code(f.rmd, "/data/a"), "250", "rmd folder")
eq(f.nlst("/data"), [], "bucket empty")
eq(code(f.rmd, "/data"), "250", "rmd empty bucket")
eq(f.nlst("/"), [], "bucket gone")
f.quit()
"#)
        .await;
    assert!(e.gw.head_bucket("data").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stor_retr_size_mdtm_list_mlsd() {
    let e = env().await;
    let data = random((6 << 20) + 12345, "stor-retr");
    let src = e.file("big.bin", &data);
    let before = std::time::SystemTime::now();
    let out = e
        .py(&format!(
            r#"
f = login()
f.mkd("/data"); f.mkd("/data/dir")
data = open({src:?}, "rb").read()
eq(code(stor, f, "/data/dir/big.bin", data), "226", "STOR")
eq(retr(f, "/data/dir/big.bin"), data, "RETR")
f.voidcmd("TYPE I")
eq(f.size("/data/dir/big.bin"), len(data), "SIZE")
eq(code(stor, f, "/data/dir/empty", b""), "226", "STOR empty")
eq(retr(f, "/data/dir/empty"), b"", "RETR empty")
print("MDTM", f.sendcmd("MDTM /data/dir/big.bin"))
lines = []
f.retrlines("LIST /data/dir", lines.append)
print("LIST", lines)
facts = dict(f.mlsd("/data/dir"))
print("MLSD", facts)
eq(facts["big.bin"]["type"], "file", "MLSD type")
eq(int(facts["big.bin"]["size"]), len(data), "MLSD size")
eq(facts["empty"]["size"], "0", "MLSD empty size")
root = dict(f.mlsd("/data"))
eq(root["dir"]["type"], "dir", "MLSD folder")
print("MLST", repr(f.sendcmd("MLST /data/dir/big.bin")))
eq(code(retr, f, "/data/dir/missing"), "550", "RETR missing")
eq(code(retr, f, "/data/dir"), "550", "RETR a folder")
eq(code(f.size, "/data/dir/missing"), "550", "SIZE missing")
eq(code(stor, f, "/data", b"x"), "550", "STOR onto a bucket")
f.quit()
"#
        ))
        .await;
    // Stored over FTP, read back through the core (what S3 and huggingface_hub see).
    assert!(
        e.object("data", "dir/big.bin").await == data,
        "core reads what FTP stored"
    );
    // MDTM: "213 YYYYMMDDHHMMSS", within a minute of the upload.
    let mdtm = out.lines().find(|l| l.starts_with("MDTM")).unwrap();
    let stamp = mdtm.split_whitespace().nth(2).unwrap();
    assert_eq!(mdtm.split_whitespace().nth(1), Some("213"), "{mdtm}");
    assert_eq!(stamp.len(), 14, "{mdtm}");
    let year: u64 = stamp[..4].parse().unwrap();
    let now_year = 1970
        + before
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 31_556_952;
    assert!(year.abs_diff(now_year) <= 1, "{mdtm}");
    // LIST: long format with the size and the name.
    let list = out.lines().find(|l| l.starts_with("LIST")).unwrap();
    assert!(
        list.contains(&format!(" {} ", data.len())) && list.contains("big.bin"),
        "{list}"
    );
    assert!(list.contains("-rw-r--r--"), "{list}");
    let mlst = out.lines().find(|l| l.starts_with("MLST")).unwrap();
    assert!(
        mlst.contains(&format!("size={}", data.len())) && mlst.contains("type=file"),
        "{mlst}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_resumes_downloads_and_partial_writes_are_refused() {
    let e = env().await;
    let data = random(3 << 20, "resume");
    let src = e.file("resume.bin", &data);
    e.py(&format!(
        r#"
f = login()
f.mkd("/data")
data = open({src:?}, "rb").read()
stor(f, "/data/r.bin", data)
# An interrupted download: read part of it, drop the connection.
g = login(); g.voidcmd("TYPE I")
conn = g.transfercmd("RETR /data/r.bin")
got = b""
while len(got) < 1000000:
    got += conn.recv(65536)
conn.close(); g.close()
# Resume from where it stopped.
rest = retr(f, "/data/r.bin", rest=len(got))
eq(got + rest, data, "resumed download")
for off in [1, 4096, len(data) - 1, len(data)]:
    eq(retr(f, "/data/r.bin", rest=off), data[off:], f"REST {{off}}")
# Objects are written whole: offsets and appends get 502.
f.voidcmd("TYPE I")
eq(f.sendcmd("REST 10")[:3], "350", "REST accepted")
eq(code(f.storbinary, "STOR /data/r.bin", io.BytesIO(b"tail")), "502", "REST + STOR")
# libunftp keeps the REST of a failed transfer: neither a plain RETR nor a plain STOR may
# run at offset 10 now (both are refused rather than served from a leftover offset).
eq(code(retr, f, "/data/r.bin"), "502", "RETR after a refused REST + STOR")
eq(code(stor, f, "/data/r.bin", b"x"), "502", "STOR after a refused REST + STOR")
# A new REST clears it.
eq(retr(f, "/data/r.bin", rest=20), data[20:], "REST 20 after the refusal")
eq(f.sendcmd("REST 10")[:3], "350", "REST accepted")
eq(code(f.storbinary, "STOR /data/r.bin", io.BytesIO(b"tail")), "502", "REST + STOR again")
eq(f.sendcmd("REST 0")[:3], "350", "REST 0 accepted")
eq(retr(f, "/data/r.bin"), data, "whole file after REST 0")
eq(code(f.storbinary, "APPE /data/r.bin", io.BytesIO(b"more")), "502", "APPE onto data")
eq(retr(f, "/data/r.bin"), data, "whole file after a refused APPE")
eq(code(f.storbinary, "APPE /data/new.bin", io.BytesIO(b"fresh")), "226", "APPE creates")
eq(retr(f, "/data/new.bin"), b"fresh", "APPE content")
eq(retr(f, "/data/r.bin"), data, "unchanged")
f.quit()
"#
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_files_and_folders_and_delete() {
    let e = env().await;
    e.py(r#"
f = login()
f.mkd("/data"); f.mkd("/other")
stor(f, "/data/a.txt", b"A")
eq(code(f.rename, "/data/a.txt", "/data/b.txt"), "250", "rename file")
eq(f.nlst("/data"), ["b.txt"], "after file rename")
eq(retr(f, "/data/b.txt"), b"A", "renamed content")
eq(code(f.rename, "/data/b.txt", "/other/c.txt"), "250", "rename across buckets")
eq(retr(f, "/other/c.txt"), b"A", "moved content")
eq(f.nlst("/data"), [], "source gone")
eq(code(f.rename, "/data/missing", "/data/x"), "550", "rename missing")
# A folder with nested content and an empty subfolder.
f.mkd("/data/dir"); f.mkd("/data/dir/sub"); f.mkd("/data/dir/empty")
stor(f, "/data/dir/one", b"1")
stor(f, "/data/dir/sub/two", b"22")
stor(f, "/data/dir/sub/odd name (3) & ü", b"333")
eq(code(f.rename, "/data/dir", "/data/moved"), "250", "rename folder")
eq(f.nlst("/data"), ["moved"], "folder renamed")
eq(sorted(n for n, _ in f.mlsd("/")), ["data", "other"], "MLSD of the root lists buckets")
eq(sorted(f.nlst("/data/moved")), ["empty", "one", "sub"], "moved folder")
eq(sorted(f.nlst("/data/moved/sub")), ["odd name (3) & ü", "two"], "moved subfolder")
eq(f.nlst("/data/moved/empty"), [], "moved empty folder")
eq(retr(f, "/data/moved/sub/odd name (3) & ü"), b"333", "content after folder rename")
eq(code(f.cwd, "/data/dir"), "550", "old folder gone")
eq(code(f.rename, "/data/moved", "/data/moved/inside"), "553", "folder into itself")
eq(code(f.rename, "/data", "/renamed"), "502", "bucket rename")
# Folders that exist only because keys are under them (no MKD, no marker).
stor(f, "/data/implicit/deep/f.txt", b"f")
eq(code(f.rename, "/data/implicit", "/data/explicit"), "250", "rename implicit folder")
eq(retr(f, "/data/explicit/deep/f.txt"), b"f", "implicit folder content moved")
eq(code(f.cwd, "/data/implicit"), "550", "implicit folder gone")
# DELE
eq(code(f.delete, "/data/moved/one"), "250", "DELE")
eq(code(f.delete, "/data/moved/one"), "550", "DELE again")
eq(code(f.delete, "/data/moved/sub"), "550", "DELE a folder")
eq(sorted(f.nlst("/data/moved")), ["empty", "sub"], "after DELE")
f.quit()
"#)
        .await;
    assert!(e.exists("data", "moved/sub/two").await);
    assert!(!e.exists("data", "dir/sub/two").await);
    assert_eq!(e.object("other", "c.txt").await, b"A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_traversal_stays_inside_the_root() {
    let e = env().await;
    e.py(r#"
f = login()
f.mkd("/data"); f.mkd("/data/d")
stor(f, "/data/d/x", b"x")
# `..` at the root stays at the root (like vsftpd): nothing outside the buckets is named.
eq(code(f.cwd, "../.."), "250", "CWD ../.. at the root")
eq(f.nlst(), ["data"], "the working directory is the root")
eq(code(retr, f, "../../etc/passwd"), "550", "RETR ../../etc/passwd is /etc/passwd")
eq(code(retr, f, "/data/../../etc/passwd"), "550", "RETR /data/../../etc/passwd")
eq(code(retr, f, "%2e%2e/%2e%2e/etc/passwd") in ("550", "553"), True, "RETR %2e%2e: a literal (invalid) bucket name")
eq(code(retr, f, "/etc/passwd"), "550", "RETR /etc/passwd")
eq(code(f.size, "../../../../etc/passwd"), "550", "SIZE traversal")
eq(code(f.cwd, "/data/d"), "250", "cwd")
eq(code(f.cwd, "../../.."), "250", "CWD above the root from a folder")
eq(retr(f, "data/d/x"), b"x", "relative paths resolve from the root")
eq(code(f.cwd, "/data/d"), "250", "cwd")
eq(retr(f, "../d/./x"), b"x", "dot segments inside the tree are fine")
eq(code(stor, f, "../../../escape", b"no"), "550", "STOR to /escape: no such bucket")
eq(cmd(f, "MKD ../../../data/made"), "257", "MKD clamps too")
eq(sorted(f.nlst("/data")), ["d", "made"], "made inside the root")
eq(code(stor, f, "/data/.hugbucket_keep", b"no"), "553", "reserved name")
f.quit()
"#)
        .await;
    let (ok, out) = run(Command::new("curl").args([
        "-sS",
        "--path-as-is",
        "--user",
        &format!("{USER}:{PASS}"),
        &format!("ftp://127.0.0.1:{}/%2e%2e/%2e%2e/etc/passwd", e.port()),
    ]))
    .await;
    assert!(!ok && !out.contains("root:"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_stor_leaves_the_previous_version() {
    let e = env().await;
    let v1 = random(2 << 20, "v1");
    let v2 = random(4 << 20, "v2");
    let f1 = e.file("v1.bin", &v1);
    let f2 = e.file("v2.bin", &v2);
    e.py(&format!(
        "f = login(); f.mkd('/data'); stor(f, '/data/k', open({f1:?}, 'rb').read()); f.quit()"
    ))
    .await;
    // 1. The data connection is reset mid-transfer (RST).
    e.py(&format!(
        r#"
f = login(); f.voidcmd("TYPE I")
conn = f.transfercmd("STOR /data/k")
conn.sendall(open({f2:?}, "rb").read()[:1500000])
conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
conn.close()
print("reply", code(f.getresp))
"#
    ))
    .await;
    assert!(
        e.object("data", "k").await == v1,
        "a reset STOR must not replace the object"
    );
    // 2. The client process dies mid-transfer (both connections closed by the kernel).
    e.py(&format!(
        r#"
f = login(); f.voidcmd("TYPE I")
conn = f.transfercmd("STOR /data/k")
conn.sendall(open({f2:?}, "rb").read()[:1500000])
os._exit(0)
"#
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = e.object("data", "k").await;
    assert!(
        now == v1,
        "a killed client's STOR must not replace the object ({} bytes now)",
        now.len()
    );
    // A complete STOR replaces it.
    e.py(&format!(
        "f = login(); stor(f, '/data/k', open({f2:?}, 'rb').read()); f.quit()"
    ))
    .await;
    assert!(
        e.object("data", "k").await == v2,
        "a complete STOR replaces it"
    );
}

fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    (cert, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ftps_with_a_self_signed_certificate() {
    let e = env_with(|c, dir| {
        let (cert, key) = self_signed(dir);
        c.tls = Some(TlsConfig {
            cert,
            key,
            required: true,
        });
    })
    .await;
    let data = random(1 << 20, "tls");
    let src = e.file("tls.bin", &data);
    e.py(&format!(
        r#"
plain = ftplib.FTP(); plain.connect(H, P, timeout=30)
eq(code(plain.login, U, W)[0], "5", "plaintext login refused when TLS is required")
plain.close()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
f = ftplib.FTP_TLS(context=ctx); f.connect(H, P, timeout=30)
f.auth(); f.login(U, W); f.prot_p()
f.mkd("/secure")
data = open({src:?}, "rb").read()
# libunftp drops the TLS data stream after STOR without a close_notify, which
# ftplib's FTP_TLS.storbinary treats as an error in unwrap(); send it by hand.
f.voidcmd("TYPE I")
conn = f.transfercmd("STOR /secure/t.bin")
conn.sendall(data)
try:
    conn.unwrap()  # sends our close_notify, then fails waiting for the server's
except ssl.SSLError:
    pass
conn.close()
eq(f.voidresp()[:3], "226", "STOR over TLS")
eq(retr(f, "/secure/t.bin"), data, "RETR over TLS")
eq(f.nlst("/secure"), ["t.bin"], "NLST over TLS")
# A TLS data stream cut without close_notify is a broken transfer: 426, nothing stored.
conn = f.transfercmd("STOR /secure/t.bin")
conn.sendall(b"truncated" * 1000)
conn.close()
eq(code(f.voidresp), "426", "cut TLS STOR")
eq(retr(f, "/secure/t.bin"), data, "previous version kept")
f.quit()
"#
    ))
    .await;
    let out_file = e.dir.path().join("curl-tls.bin");
    let (ok, out) = run(Command::new("curl")
        .args([
            "-sS",
            "--ssl-reqd",
            "-k",
            "--user",
            &format!("{USER}:{PASS}"),
        ])
        .arg(format!("ftp://127.0.0.1:{}/secure/t.bin", e.port()))
        .arg("-o")
        .arg(&out_file))
    .await;
    assert!(ok, "{out}");
    assert!(std::fs::read(&out_file).unwrap() == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_upload_list_download_and_errors() {
    let e = env().await;
    e.gw.create_bucket("web").await.unwrap();
    let data = random(5 << 20, "curl");
    let src = e.file("curl.bin", &data);
    let base = format!("ftp://127.0.0.1:{}", e.port());
    let auth = format!("{USER}:{PASS}");
    let (ok, out) = run(Command::new("curl")
        .args(["-sS", "--user", &auth, "--ftp-create-dirs", "-T"])
        .arg(&src)
        .arg(format!("{base}/web/deep/er/file.bin")))
    .await;
    assert!(ok, "{out}");
    assert!(e.object("web", "deep/er/file.bin").await == data);
    let (ok, out) =
        run(Command::new("curl").args(["-sS", "--user", &auth, &format!("{base}/web/deep/er/")]))
            .await;
    assert!(
        ok && out.contains("file.bin") && out.contains(&data.len().to_string()),
        "{out}"
    );
    let dst = e.dir.path().join("curl-back.bin");
    let (ok, out) = run(Command::new("curl")
        .args([
            "-sS",
            "--user",
            &auth,
            &format!("{base}/web/deep/er/file.bin"),
            "-o",
        ])
        .arg(&dst))
    .await;
    assert!(ok, "{out}");
    assert!(std::fs::read(&dst).unwrap() == data);
    // A range (REST) download.
    let (ok, out) = run(Command::new("curl")
        .args([
            "-sS",
            "-r",
            "5000000-",
            "--user",
            &auth,
            &format!("{base}/web/deep/er/file.bin"),
            "-o",
        ])
        .arg(&dst))
    .await;
    assert!(ok, "{out}");
    assert!(std::fs::read(&dst).unwrap() == data[5_000_000..]);
    // Bad password: curl exit 67 (login denied).
    let out = Command::new("curl")
        .args([
            "-sS",
            "--user",
            &format!("{USER}:nope"),
            &format!("{base}/web/"),
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(67),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // DELE through a quote command.
    let (ok, out) = run(Command::new("curl").args([
        "-sS",
        "--user",
        &auth,
        &format!("{base}/web/"),
        "-Q",
        "DELE /web/deep/er/file.bin",
    ]))
    .await;
    assert!(ok, "{out}");
    assert!(!e.exists("web", "deep/er/file.bin").await);
}

fn write_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let files: Vec<(String, Vec<u8>)> = vec![
        ("top.txt".into(), b"top level\n".to_vec()),
        ("empty.dat".into(), Vec::new()),
        ("a/one.bin".into(), random(300_000, "one")),
        ("a/b/c/deep.bin".into(), random(1 << 20, "deep")),
        ("a/b/spaced name.txt".into(), b"spaces".to_vec()),
        ("odd dir (1)/ünïcödé & more+%.txt".into(), b"odd".to_vec()),
        ("odd dir (1)/#hash;semi'quote.txt".into(), b"punct".to_vec()),
    ];
    for (name, data) in &files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    std::fs::create_dir_all(root.join("a/empty-dir")).unwrap();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lftp_mirror_up_and_back() {
    let e = env().await;
    e.gw.create_bucket("tree").await.unwrap();
    let up = e.dir.path().join("up");
    let down = e.dir.path().join("down");
    let files = write_tree(&up);
    let script = format!(
        "set ftp:ssl-allow no; set net:max-retries 1; set cmd:fail-exit yes; \
         open -u {USER},'{PASS}' -p {port} 127.0.0.1; \
         mirror -R --no-perms {up} /tree/site; \
         mirror --no-perms /tree/site {down}; bye",
        port = e.port(),
        up = up.display(),
        down = down.display(),
    );
    let (ok, out) = run(Command::new("lftp").arg("-c").arg(&script)).await;
    assert!(ok, "lftp failed:\n{out}");
    for (name, data) in &files {
        assert!(
            e.object("tree", &format!("site/{name}")).await == *data,
            "{name} over the core"
        );
        assert!(
            std::fs::read(down.join(name)).unwrap() == *data,
            "{name} mirrored back"
        );
    }
    assert!(
        down.join("a/empty-dir").is_dir(),
        "empty folders survive the round trip"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_get_421() {
    let e = env_with(|c, _| c.max_connections = 1).await;
    e.py(r#"
f = login()
g = ftplib.FTP()
try:
    g.connect(H, P, timeout=30)
    sys.exit("second connection was accepted")
except ftplib.error_temp as err:
    eq(str(err)[:3], "421", "over the limit")
eq(f.pwd(), "/", "first session still works")
f.quit()
time.sleep(0.2)
h = login()
h.quit()
"#)
        .await;
}
