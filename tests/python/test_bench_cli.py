"""The ``hugbucket-bench`` load generator against a real ``hugbucket serve`` (S3 and FTP).

Short runs (a couple of seconds, small objects) that check what the tool reports against
what the server really holds: the objects a ``put``/``stor`` run reports exist (listed with
boto3) with the bytes the data format defines, ``--verify`` reads them back without errors,
and a read with the wrong ``--seed`` is reported as errors with a non-zero exit.

The binary is ``HUGBUCKET_BENCH_BIN`` (relative to the repository root if not absolute),
by default ``hugbucket-bench`` next to the ``hugbucket`` binary under test
(``HUGBUCKET_BIN``), so a debug run uses ``target/debug`` and a release run
``target/release``; build it with ``cargo build -p hugbucket-bench --bins``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import REPO_ROOT, free_port, hugbucket_bin_path, wait_for_port
from bench_data import expected_bytes, expected_size, list_keys
from s3_util import ServeS3, bucket_name

FTP_USER = "benchuser"
FTP_PASSWORD = "bench pass"


def bench_bin_path() -> Path:
    raw = os.environ.get("HUGBUCKET_BENCH_BIN")
    if raw:
        path = Path(raw)
        return path if path.is_absolute() else REPO_ROOT / path
    return hugbucket_bin_path().with_name("hugbucket-bench")


@pytest.fixture(scope="session")
def bench_bin() -> Path:
    """Path of the load generator; fails (not skips) when it has not been built."""
    path = bench_bin_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"hugbucket-bench not found at {path}: run `cargo build -p hugbucket-bench "
                    f"--bins` (same profile as hugbucket) or set HUGBUCKET_BENCH_BIN",
                    pytrace=False)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, hugbucket_bin):
    """`hugbucket serve --mode both` on the embedded hub: S3 and FTP on free ports."""
    d = tmp_path_factory.mktemp("bench-serve")
    ftp_port = free_port()
    srv = ServeS3(d / "data", d / "serve.log", mode="both",
                  extra_args=("--ftp-listen", f"127.0.0.1:{ftp_port}",
                              "--ftp-passive-ports", "47000-47999"),
                  env={"FTP_USERNAME": FTP_USER, "FTP_PASSWORD": FTP_PASSWORD}).start()
    wait_for_port(ftp_port, timeout=60, proc=srv.proc)
    srv.ftp_port = ftp_port
    yield srv
    code = srv.stop()
    assert code == 0, f"serve exited with {code}: {srv.log_tail()}"


def run_bench(bench_bin: Path, tmp: Path, name: str, *args: str,
              expect_rc: int | None = 0) -> tuple[dict, subprocess.CompletedProcess]:
    """Runs the tool with ``--json``; returns the parsed report and the process."""
    out = tmp / f"{name}.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "FTP_USERNAME",
                        "FTP_PASSWORD")}
    p = subprocess.run([str(bench_bin), *args, "--json", str(out), "--quiet"],
                       capture_output=True, timeout=300, env=env, check=False)
    detail = (f"{' '.join(args)}\nexit {p.returncode}\nstdout:\n{p.stdout.decode()[-3000:]}\n"
              f"stderr:\n{p.stderr.decode()[-3000:]}")
    if expect_rc is not None:
        assert p.returncode == expect_rc, detail
    assert out.is_file(), detail
    report = json.loads(out.read_text())
    # The text report is printed too.
    assert f"{report['protocol']} {report['mode']}" in p.stdout.decode(), detail
    return report, p


def s3_args(server: ServeS3, bucket: str, *rest: str) -> list[str]:
    return ["s3", "--endpoint", server.endpoint, "--access-key", server.access_key,
            "--secret-key", server.secret_key, "--bucket", bucket, *rest]


def ftp_args(server: ServeS3, *rest: str) -> list[str]:
    return ["ftp", "--host", "127.0.0.1", "--port", str(server.ftp_port), "--user", FTP_USER,
            "--password", FTP_PASSWORD, *rest]


def assert_clean(report: dict, mode: str, op: str) -> None:
    assert report["tool"] == "hugbucket-bench"
    assert report["mode"] == mode
    assert report["errors"] == 0, report["error_samples"]
    assert report["error_samples"] == []
    assert report["ops"] > 0
    assert report["by_op"][op]["ops"] == report["ops"]
    assert report["ops_per_s"] > 0 and report["duration_s"] > 0
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]


def test_s3_put_get_verify_and_wrong_seed(server, bench_bin, tmp_path):
    bucket = bucket_name("bench")
    lo, hi, seed = 1024, 8192, 7
    put, _ = run_bench(bench_bin, tmp_path, "put", *s3_args(
        server, bucket, "--create-bucket", "--mode", "put", "--size", "1KiB-8KiB",
        "--concurrency", "8", "--duration", "2s", "--prefix", "p/", "--seed", str(seed)))
    assert_clean(put, "put", "put")
    n = put["ops"]
    assert put["concurrency"] == 8 and put["size_min"] == lo and put["size_max"] == hi

    # Exactly the objects 0..n-1 exist, with the sizes and bytes of the data format.
    s3 = server.client()
    keys = list_keys(s3, bucket, "p/")
    want = {f"p/obj-{i:08d}": expected_size(seed, f"p/obj-{i:08d}", lo, hi) for i in range(n)}
    assert keys == want
    assert put["bytes"] == sum(want.values())
    for key in (f"p/obj-{0:08d}", f"p/obj-{n - 1:08d}"):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == expected_bytes(seed, key, want[key])

    # Reading them back with --verify: no errors, every byte counted.
    get, _ = run_bench(bench_bin, tmp_path, "get", *s3_args(
        server, bucket, "--mode", "get", "--no-prepare", "--objects", str(n), "--verify",
        "--size", "1KiB-8KiB", "--concurrency", "8", "--duration", "2s", "--prefix", "p/",
        "--seed", str(seed)))
    assert_clean(get, "get", "get")
    assert get["verify"] is True
    assert lo * get["ops"] <= get["bytes"] <= hi * get["ops"]

    # The wrong seed: same keys, other bytes (and sizes) -> errors and exit status 1.
    bad, p = run_bench(bench_bin, tmp_path, "bad", *s3_args(
        server, bucket, "--mode", "get", "--no-prepare", "--objects", str(n), "--verify",
        "--size", "1KiB-8KiB", "--concurrency", "8", "--ops", "20", "--prefix", "p/",
        "--seed", str(seed + 1)), expect_rc=1)
    assert bad["errors"] > 0
    assert bad["errors"] + bad["ops"] == 20
    assert any("verify" in e for e in bad["error_samples"]), bad["error_samples"]
    assert "errors:" in p.stdout.decode()

    # A missing object is an error too (HTTP 404), not a silent success.
    missing, _ = run_bench(bench_bin, tmp_path, "missing", *s3_args(
        server, bucket, "--mode", "get", "--no-prepare", "--objects", "3", "--ops", "3",
        "--prefix", "nothing-here/"), expect_rc=1)
    assert missing["errors"] == 3 and missing["ops"] == 0
    assert all("404" in e for e in missing["error_samples"]), missing["error_samples"]


def test_s3_list_mixed_and_multipart(server, bench_bin, tmp_path):
    bucket = bucket_name("bench")
    # list: prepares 30 objects; each op lists all of them in pages of 7 (an op that
    # sees fewer than the 30 prepared keys is an error).
    lst, _ = run_bench(bench_bin, tmp_path, "list", *s3_args(
        server, bucket, "--create-bucket", "--mode", "list", "--objects", "30", "--ops", "5",
        "--max-keys", "7", "--concurrency", "2", "--prefix", "l/"))
    assert_clean(lst, "list", "list")
    assert lst["ops"] == 5
    s3 = server.client()
    assert len(list_keys(s3, bucket, "l/")) == 30
    # Claiming 40 objects (only 30 exist) makes every listing fail.
    short, _ = run_bench(bench_bin, tmp_path, "listshort", *s3_args(
        server, bucket, "--mode", "list", "--no-prepare", "--objects", "40", "--ops", "2",
        "--max-keys", "7", "--prefix", "l/"), expect_rc=1)
    assert short["errors"] == 2 and short["ops"] == 0
    assert all("listed 30 keys" in e for e in short["error_samples"]), short["error_samples"]

    # mixed: verified GETs of the prepared objects next to PUT/DELETE/LIST.
    mixed, _ = run_bench(bench_bin, tmp_path, "mixed", *s3_args(
        server, bucket, "--mode", "mixed", "--objects", "20", "--ops", "200", "--verify",
        "--concurrency", "8", "--prefix", "m/", "--mix", "put=30,get=50,list=5,delete=15"))
    assert mixed["errors"] == 0, mixed["error_samples"]
    assert mixed["ops"] == 200
    assert set(mixed["by_op"]) == {"put", "get", "list", "delete"}
    assert sum(v["ops"] for v in mixed["by_op"].values()) == 200
    # Objects left: the 20 prepared ones plus the PUTs that no DELETE removed.
    left = list_keys(s3, bucket, "m/")
    assert len(left) == 20 + mixed["by_op"]["put"]["ops"] - mixed["by_op"]["delete"]["ops"]

    # multipart: 2 objects of 6 MiB in 5 MiB parts, then read back with --verify.
    mp, _ = run_bench(bench_bin, tmp_path, "mp", *s3_args(
        server, bucket, "--mode", "multipart", "--size", "6MiB", "--part-size", "5MiB",
        "--ops", "2", "--concurrency", "4", "--prefix", "mp/", "--seed", "5"))
    assert_clean(mp, "multipart", "multipart")
    assert mp["ops"] == 2 and mp["bytes"] == 12 << 20
    assert mp["by_op"]["part"]["ops"] == 4
    assert list_keys(s3, bucket, "mp/") == {"mp/obj-00000000": 6 << 20,
                                             "mp/obj-00000001": 6 << 20}
    back, _ = run_bench(bench_bin, tmp_path, "mpget", *s3_args(
        server, bucket, "--mode", "get", "--no-prepare", "--objects", "2", "--ops", "4",
        "--verify", "--size", "6MiB", "--prefix", "mp/", "--seed", "5"))
    assert_clean(back, "get", "get")
    assert back["bytes"] == 4 * (6 << 20)


def test_ftp_stor_retr_verify_and_wrong_seed(server, bench_bin, tmp_path):
    bucket = bucket_name("benchftp")
    s3 = server.client()
    s3.create_bucket(Bucket=bucket)
    lo, hi, seed = 2048, 65536, 3
    stor, _ = run_bench(bench_bin, tmp_path, "stor", *ftp_args(
        server, "--mode", "stor", "--dir", f"/{bucket}/f", "--create-dir", "--sessions", "8",
        "--duration", "2s", "--size", "2KiB-64KiB", "--seed", str(seed)))
    assert_clean(stor, "stor", "stor")
    n = stor["ops"]

    keys = list_keys(s3, bucket, "f/")
    want = {f"f/obj-{i:08d}": expected_size(seed, f"f/obj-{i:08d}", lo, hi) for i in range(n)}
    assert keys == want
    assert stor["bytes"] == sum(want.values())
    key = f"f/obj-{n - 1:08d}"
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == expected_bytes(seed, key, want[key])

    retr, _ = run_bench(bench_bin, tmp_path, "retr", *ftp_args(
        server, "--mode", "retr", "--dir", f"/{bucket}/f", "--no-prepare", "--objects", str(n),
        "--verify", "--sessions", "8", "--duration", "2s", "--size", "2KiB-64KiB",
        "--seed", str(seed)))
    assert_clean(retr, "retr", "retr")
    assert lo * retr["ops"] <= retr["bytes"] <= hi * retr["ops"]

    # The same files through S3: the FTP dir /bucket/f is the S3 prefix f/.
    cross, _ = run_bench(bench_bin, tmp_path, "cross", *s3_args(
        server, bucket, "--mode", "get", "--no-prepare", "--objects", str(n), "--verify",
        "--size", "2KiB-64KiB", "--ops", str(n), "--concurrency", "4", "--prefix", "f/",
        "--seed", str(seed)))
    assert_clean(cross, "get", "get")

    bad, _ = run_bench(bench_bin, tmp_path, "ftpbad", *ftp_args(
        server, "--mode", "retr", "--dir", f"/{bucket}/f", "--no-prepare", "--objects", str(n),
        "--verify", "--sessions", "4", "--ops", "12", "--size", "2KiB-64KiB",
        "--seed", str(seed + 1)), expect_rc=1)
    assert bad["errors"] > 0
    assert bad["errors"] + bad["ops"] == 12
    assert any("verify" in e for e in bad["error_samples"]), bad["error_samples"]


def test_remote_endpoint_refused_without_allow_remote(bench_bin):
    for args in (["s3", "--endpoint", "http://192.0.2.1:9000", "--access-key", "k",
                  "--secret-key", "s", "--bucket", "b", "--ops", "1"],
                 ["ftp", "--host", "192.0.2.1", "--user", "u", "--password", "p",
                  "--dir", "/b", "--ops", "1"]):
        p = subprocess.run([str(bench_bin), *args], capture_output=True, timeout=60,
                           check=False)
        assert p.returncode == 2, p.stderr.decode()
        assert "--allow-remote" in p.stderr.decode()
