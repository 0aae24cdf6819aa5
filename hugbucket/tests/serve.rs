//! `hugbucket serve` as a process: configuration layers, errors, generated credentials,
//! admin endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_hugbucket");

/// A `hugbucket` command with every configuration variable of the environment removed.
fn hugbucket() -> Command {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("HUGBUCKET_")
            || k.starts_with("AWS_ACCESS")
            || k.starts_with("AWS_SECRET")
            || k.starts_with("FTP_")
            || k == "MODE"
            || k.starts_with("HF_")
        {
            c.env_remove(k);
        }
    }
    c
}

fn check_config(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = hugbucket();
    c.arg("serve").args(args).arg("--check-config");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("{key} missing in {out}"))
        .to_string()
}

#[test]
fn config_precedence_flag_env_file_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hugbucket.toml");
    std::fs::write(
        &file,
        "s3-listen = \"127.0.0.1:9101\"\nftp_listen = \"127.0.0.1:2101\"\ncache-size = \"2G\"\nmode = \"s3\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    // default only
    let (code, out, _) = check_config(&[], &[]);
    assert_eq!(code, 0);
    assert_eq!(value(&out, "s3-listen"), "0.0.0.0:9000");
    assert_eq!(value(&out, "mode"), "both");
    // file over default
    let (code, out, _) = check_config(&["--config", f], &[]);
    assert_eq!(code, 0);
    assert_eq!(value(&out, "s3-listen"), "127.0.0.1:9101");
    assert_eq!(value(&out, "ftp-listen"), "127.0.0.1:2101");
    assert_eq!(value(&out, "cache-size"), (2u64 << 30).to_string());
    assert_eq!(value(&out, "mode"), "s3");
    // env over file (the original's names and HUGBUCKET_*)
    let (_, out, _) = check_config(
        &["--config", f],
        &[("MODE", "ftp"), ("HUGBUCKET_S3_LISTEN", "127.0.0.1:9102")],
    );
    assert_eq!(value(&out, "mode"), "ftp");
    assert_eq!(value(&out, "s3-listen"), "127.0.0.1:9102");
    assert_eq!(value(&out, "ftp-listen"), "127.0.0.1:2101");
    // flag over env
    let (_, out, _) = check_config(
        &["--config", f, "--s3-listen", "127.0.0.1:9103"],
        &[("HUGBUCKET_S3_LISTEN", "127.0.0.1:9102")],
    );
    assert_eq!(value(&out, "s3-listen"), "127.0.0.1:9103");
    // config file named by the environment
    let (_, out, _) = check_config(&[], &[("HUGBUCKET_CONFIG", f)]);
    assert_eq!(value(&out, "s3-listen"), "127.0.0.1:9101");
}

#[test]
fn secrets_are_masked_and_upstream_is_reported() {
    let (code, out, _) = check_config(
        &[],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIDVISIBLE"),
            ("AWS_SECRET_ACCESS_KEY", "super-secret-value"),
            ("FTP_USERNAME", "bob"),
            ("FTP_PASSWORD", "hunter2-secret"),
            ("HF_TOKEN", "hf_secret_token_value"),
        ],
    );
    assert_eq!(code, 0);
    assert!(
        !out.contains("super-secret-value")
            && !out.contains("hunter2-secret")
            && !out.contains("hf_secret_token_value")
    );
    assert_eq!(value(&out, "access-key-id"), "AKIDVISIBLE");
    assert_eq!(value(&out, "secret-access-key"), "****");
    assert_eq!(value(&out, "upstream"), "https://huggingface.co");
    let (_, out, _) = check_config(&[], &[]);
    assert_eq!(value(&out, "upstream"), "embedded hub");
}

#[test]
fn bad_configuration_is_one_clear_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    /// (flags, environment, text the error line must contain)
    type Case<'a> = (Vec<String>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            vec!["--cache-size".into(), "12X".into()],
            vec![],
            "--cache-size",
        ),
        (vec![], vec![("MODE", "sideways")], "--mode"),
        (
            vec![],
            vec![("HUGBUCKET_S3_LISTEN", "not-an-address")],
            "--s3-listen",
        ),
        (
            vec![],
            vec![("AWS_ACCESS_KEY_ID", "only-the-key")],
            "AWS_SECRET_ACCESS_KEY",
        ),
        (
            vec!["--ftp-passive-ports".into(), "9-1".into()],
            vec![],
            "--ftp-passive-ports",
        ),
        (
            vec!["--hf-endpoint".into(), "ftp://x".into()],
            vec![],
            "HF_ENDPOINT",
        ),
        (
            {
                let f = dir.path().join("bad.toml");
                std::fs::write(&f, "no-such-option = 1\n").unwrap();
                vec!["--config".into(), f.display().to_string()]
            },
            vec![],
            "no-such-option",
        ),
        (
            {
                let f = dir.path().join("broken.toml");
                std::fs::write(&f, "s3-listen = [unterminated\n").unwrap();
                vec!["--config".into(), f.display().to_string()]
            },
            vec![],
            "broken.toml",
        ),
    ];
    for (args, env, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = check_config(&args, &env);
        assert_eq!(code, 2, "{args:?} {env:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?} {env:?}: {err:?} should name {needle}"
        );
    }
}

struct Server {
    child: Child,
    stdout: Vec<String>,
    s3_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_serve(data_dir: &std::path::Path, admin_port: u16) -> Server {
    let s3_port = free_port();
    let mut child = hugbucket()
        .args(["serve", "--mode", "s3"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--s3-listen", &format!("127.0.0.1:{s3_port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || Instant::now() > deadline {
            panic!("serve did not become ready: {lines:?}");
        }
        let ready = line.contains("hugbucket is ready");
        lines.push(line.trim_end().to_string());
        if ready {
            break;
        }
    }
    Server {
        child,
        stdout: lines,
        s3_port,
    }
}

fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn generated_credentials_persist_and_admin_endpoints_answer() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let first = start_serve(dir.path(), port);
    let key_line = first
        .stdout
        .iter()
        .find(|l| l.contains("AWS_ACCESS_KEY_ID="))
        .expect("generated key printed")
        .clone();
    let key = key_line.split('=').nth(1).unwrap().to_string();
    assert!(
        first
            .stdout
            .iter()
            .any(|l| l.contains("AWS_SECRET_ACCESS_KEY="))
    );
    assert_eq!(http_get(port, "/health"), (200, "ok\n".to_string()));
    // The container's health probe.
    let probe = |path: &str| {
        hugbucket()
            .args(["healthcheck", &format!("http://127.0.0.1:{port}{path}")])
            .status()
            .unwrap()
            .success()
    };
    assert!(probe("/health"));
    assert!(!probe("/no-such-endpoint"));
    assert_eq!(http_get(port, "/ready").0, 200);
    let (code, metrics) = http_get(port, "/metrics");
    assert_eq!(code, 200);
    let lists_before = metrics
        .lines()
        .find(|l| l.starts_with("hugbucket_hub_requests_total{route=\"bucket_list\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .expect("bucket listing counted by /ready");
    http_get(port, "/ready");
    let (_, metrics) = http_get(port, "/metrics");
    let lists_after = metrics
        .lines()
        .find(|l| l.starts_with("hugbucket_hub_requests_total{route=\"bucket_list\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap();
    assert!(lists_after > lists_before, "counters move");
    // S3 requests are counted by operation and status; upstream calls and uploads too.
    let (status, _) = http_get(first.s3_port, "/");
    assert_eq!(status, 403, "unsigned ListBuckets is refused");
    let (_, metrics) = http_get(port, "/metrics");
    let refused: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("hugbucket_s3_requests_total{") && l.contains("status=\"403\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(refused >= 1, "{metrics}");
    assert!(metrics.contains("hugbucket_upstream_requests_total "));
    assert!(metrics.contains("hugbucket_uploads_in_flight 0"));
    assert!(metrics.contains("hugbucket_key_shard_calls_total{shard=\"0\"}"));
    assert!(metrics.contains("hugbucket_cache_"));
    assert!(metrics.contains("hugbucket_ftp_transfers_total{command=\"STOR\",result=\"ok\"}"));
    drop(first);

    let second = start_serve(dir.path(), port);
    assert!(
        !second
            .stdout
            .iter()
            .any(|l| l.contains("AWS_SECRET_ACCESS_KEY=")),
        "the secret is printed only when generated"
    );
    assert!(
        second.stdout.iter().any(|l| l.contains(&key)),
        "same key after restart: {:?}",
        second.stdout
    );
}

#[test]
fn readme_configuration_table_matches_the_command() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let help = hugbucket().args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `--")).collect();
    // Every option of the command has a row naming its environment variable...
    let mut options = 0;
    let mut lines = help.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        let Some(rest) = t.strip_prefix("--") else {
            continue;
        };
        let name = rest.split([' ', '<', '=']).next().unwrap();
        if name == "help" {
            continue;
        }
        options += 1;
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| `--{name}` |")))
            .unwrap_or_else(|| panic!("README has no row for --{name}"));
        // The env var shows up in the help text before the next option.
        let mut env = None;
        while let Some(next) = lines.peek() {
            if next.trim_start().starts_with("--") {
                break;
            }
            let next = lines.next().unwrap();
            if let Some(e) = next.trim().strip_prefix("[env: ") {
                env = Some(e.split(['=', ']']).next().unwrap().to_string());
            }
        }
        match env {
            Some(e) => assert!(
                row.contains(&format!("`{e}`")),
                "README row for --{name} lacks {e}: {row}"
            ),
            None => assert!(
                row.contains("| — |"),
                "--{name} has no env var but its row names one: {row}"
            ),
        }
    }
    // ...and the table has no rows for options that do not exist.
    assert_eq!(rows.len(), options, "README rows vs options");
    assert!(options >= 25);
}
