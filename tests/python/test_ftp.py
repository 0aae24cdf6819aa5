"""FTP front-end end to end: ``hugbucket serve`` driven by lftp, curl and Python ftplib.

The server is started once per module with FTP on a free loopback port and the user from
``FTP_USERNAME`` / ``FTP_PASSWORD``; a server that does not open its FTP port fails the
module.

Knobs (environment):

* ``HUGBUCKET_FTP_BIG_MIB``: size of the large STOR/RETR (default 1024: the issue's
  1 GiB, generated on the fly and checked with a running SHA-256, so no client-side file).
* ``HUGBUCKET_SERVE_EXTRA_ARGS``: extra arguments for ``hugbucket serve`` (shell-split).
* ``HUGBUCKET_FTP_ADDR=host:port`` (and ``HUGBUCKET_FTPS_ADDR`` for FTPS): use an FTP
  server that is already running instead of starting ``hugbucket serve``, e.g.
  ``cargo run -p hugbucket-ftp --example embedded`` with the same ``FTP_USERNAME`` /
  ``FTP_PASSWORD`` as this module (``ftpuser`` / ``pa ss:wörd`` unless set).
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import shlex
import shutil
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import XofPieces, free_port, hugbucket_bin_path, stop_process, wait_for_port, xof_bytes

USER = os.environ.get("FTP_USERNAME", "ftpuser")
PASSWORD = os.environ.get("FTP_PASSWORD", "pa ss:wörd")
EXTERNAL = os.environ.get("HUGBUCKET_FTP_ADDR")
EXTERNAL_TLS = os.environ.get("HUGBUCKET_FTPS_ADDR")
BIG_MIB = int(os.environ.get("HUGBUCKET_FTP_BIG_MIB", "1024"))


# --------------------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------------------


def _serve_help() -> str | None:
    binary = hugbucket_bin_path()
    if not binary.exists():
        return None
    try:
        out = subprocess.run([str(binary), "serve", "--help"], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


_HELP = _serve_help()


def _has_flag(flag: str) -> bool:
    return _HELP is not None and flag in _HELP


class Server:
    def __init__(self, proc: subprocess.Popen | None, port: int, log: Path, tls_port: int | None):
        self.proc = proc
        self.port = port
        self.log = log
        self.tls_port = tls_port

    def url(self, path: str = "/") -> str:
        return f"ftp://127.0.0.1:{self.port}{path}"


def _start(tmp: Path, extra: list[str], env_extra: dict[str, str]) -> tuple[subprocess.Popen, Path]:
    log = tmp / "serve.log"
    env = dict(os.environ)
    env.update({"FTP_USERNAME": USER, "FTP_PASSWORD": PASSWORD, "RUST_LOG": "info"})
    env.update(env_extra)
    args = [str(hugbucket_bin_path()), "serve", *extra]
    args += shlex.split(os.environ.get("HUGBUCKET_SERVE_EXTRA_ARGS", ""))
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
    return proc, log


def _common_args(tmp: Path, ftp_port: int) -> list[str]:
    # FTP only: no S3 listener. Every port is chosen up front (none bound to port 0 by the
    # server), so that no ephemeral bind can take a port the test picked for another one.
    args = ["--mode", "ftp", "--ftp-listen", f"127.0.0.1:{ftp_port}"]
    if _has_flag("--data-dir"):
        args += ["--data-dir", str(tmp / "data")]
    if _has_flag("--hub-listen"):
        args += ["--hub-listen", f"127.0.0.1:{free_port()}"]
    if _has_flag("--admin-listen"):
        args += ["--admin-listen", f"127.0.0.1:{free_port()}"]
    if _has_flag("--ftp-passive-ports"):
        args += ["--ftp-passive-ports", "45000-45999"]
    return args


def _wait(proc: subprocess.Popen, port: int, log: Path) -> None:
    try:
        wait_for_port(port, timeout=60)
    except Exception:
        stop_process(proc)
        text = log.read_text(errors="replace")
        pytest.fail(f"hugbucket serve did not open FTP port {port}:\n{text}")


def _external(addr: str) -> Server:
    host, _, port = addr.rpartition(":")
    assert host in ("127.0.0.1", "localhost"), "the tests expect a loopback server"
    return Server(None, int(port), Path("/dev/null"), int(port))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if EXTERNAL:
        yield _external(EXTERNAL)
        return
    tmp = tmp_path_factory.mktemp("ftp-serve")
    port = free_port()
    proc, log = _start(tmp, _common_args(tmp, port), {})
    _wait(proc, port, log)
    yield Server(proc, port, log, None)
    stop_process(proc)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    """A second instance with explicit FTPS (self-signed certificate)."""
    if EXTERNAL_TLS:
        yield _external(EXTERNAL_TLS)
        return
    if EXTERNAL:
        pytest.skip("HUGBUCKET_FTP_ADDR is set but HUGBUCKET_FTPS_ADDR is not")
    if not (_has_flag("--ftp-tls-cert") and _has_flag("--ftp-tls-key")):
        pytest.skip("hugbucket serve has no --ftp-tls-cert/--ftp-tls-key")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    tmp = tmp_path_factory.mktemp("ftps-serve")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    port = free_port()
    args = _common_args(tmp, port) + ["--ftp-tls-cert", str(cert), "--ftp-tls-key", str(key)]
    proc, log = _start(tmp, args, {})
    _wait(proc, port, log)
    yield Server(proc, port, log, port)
    stop_process(proc)


# --------------------------------------------------------------------------------------
# Client helpers
# --------------------------------------------------------------------------------------


def login(server: Server, user: str = USER, password: str = PASSWORD) -> ftplib.FTP:
    f = ftplib.FTP()
    f.connect("127.0.0.1", server.port, timeout=120)
    f.login(user, password)
    return f


def reply_code(fn, *args, **kwargs) -> str:
    """The reply code of an ftplib call ("ok" for calls that return data)."""
    try:
        r = fn(*args, **kwargs)
    except ftplib.all_errors as e:
        return str(e)[:3]
    return r[:3] if isinstance(r, str) and r[:3].isdigit() else "ok"


def cmd(f: ftplib.FTP, line: str) -> str:
    return reply_code(f.sendcmd, line)


def retr(f: ftplib.FTP, path: str, rest: int | None = None) -> bytes:
    buf = io.BytesIO()
    f.retrbinary("RETR " + path, buf.write, blocksize=1 << 20, rest=rest)
    return buf.getvalue()


def stor(f: ftplib.FTP, path: str, data: bytes) -> str:
    return f.storbinary("STOR " + path, io.BytesIO(data), blocksize=1 << 20)


def lftp(server: Server, script: str, timeout: int = 600) -> subprocess.CompletedProcess:
    assert shutil.which("lftp"), "lftp is missing (tests/run.sh installs it: APT_PACKAGES)"
    full = (
        "set ftp:ssl-allow no; set net:max-retries 1; set cmd:fail-exit yes; "
        f"open -u {USER},'{PASSWORD}' -p {server.port} 127.0.0.1; {script}; bye"
    )
    return subprocess.run(["lftp", "-c", full], capture_output=True, timeout=timeout)


def curl(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    assert shutil.which("curl"), "curl is missing (tests/run.sh installs it: APT_PACKAGES)"
    return subprocess.run(["curl", "-sS", *args], capture_output=True, timeout=timeout)


def bucket(f: ftplib.FTP, name: str) -> str:
    code = cmd(f, f"MKD /{name}")
    assert code in ("257", "550"), code
    return f"/{name}"


# --------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------


def test_login_good_bad_and_anonymous_refused(server):
    f = login(server)
    assert f.pwd() == "/"
    f.quit()
    for user, password in [(USER, "wrong"), (USER, ""), ("nobody", PASSWORD),
                           ("anonymous", "guest@example.com"), ("ftp", "x")]:
        f = ftplib.FTP()
        f.connect("127.0.0.1", server.port, timeout=30)
        assert reply_code(f.login, user, password) == "530", (user, password)
        f.close()
    r = curl("--user", f"{USER}:nope", server.url("/"))
    assert r.returncode == 67, r.stderr


def test_mkdir_bucket_and_folders(server):
    f = login(server)
    assert cmd(f, "MKD /mk-bucket") == "257"
    assert cmd(f, "MKD /mk-bucket") == "550"
    assert cmd(f, "MKD /Not_Valid") == "553"
    # The one bucket-name validator (S3 CreateBucket uses it too, see test_security.py).
    for bad in ("ab", "192.168.1.1", "xn--abc", "abc-s3alias", "-lead", "a..b", "x" * 64):
        assert cmd(f, f"MKD /{bad}") == "553", bad
    assert "mk-bucket" in f.nlst("/")
    assert cmd(f, "MKD /mk-bucket/a") == "257"
    assert cmd(f, "MKD /mk-bucket/a/b") == "257"
    assert f.nlst("/mk-bucket/a") == ["b"]
    f.quit()


def test_lftp_mirror_round_trip_with_odd_names(server, tmp_path):
    up, down = tmp_path / "up", tmp_path / "down"
    names = [
        "top.txt",
        "empty.dat",
        "a/one.bin",
        "a/b/c/deep.bin",
        "a/b/spaced name.txt",
        "odd dir (1)/ünïcödé & more+%.txt",
        "odd dir (1)/#hash;semi'quote.txt",
        "dots/..leading and trailing..",
    ]
    for i, name in enumerate(names):
        p = up / name
        p.parent.mkdir(parents=True, exist_ok=True)
        size = 0 if name == "empty.dat" else 1000 + i * 150_000
        p.write_bytes(xof_bytes(f"mirror-{name}", size))
    (up / "a" / "empty-dir").mkdir()
    f = login(server)
    bucket(f, "mirror")
    f.quit()
    r = lftp(server, f"mirror -R --no-perms '{up}' /mirror/site; mirror --no-perms /mirror/site '{down}'")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    for name in names:
        assert (down / name).read_bytes() == (up / name).read_bytes(), name
    assert (down / "a" / "empty-dir").is_dir()


class _HashingPieces(XofPieces):
    """``XofPieces`` that hashes what is read from it (the STOR body's SHA-256)."""

    def __init__(self, label: str, count: int, piece: int):
        super().__init__(label, count, piece)
        self.digest = hashlib.sha256()

    def readinto(self, buf) -> int:
        n = super().readinto(buf)
        self.digest.update(memoryview(buf)[:n])
        return n


def test_big_stor_and_retr(server):
    """The issue's 1 GiB STOR and RETR (``HUGBUCKET_FTP_BIG_MIB``): a body generated on the
    fly (1 MiB BLAKE3-XOF pieces), read back with ftplib and with curl, each checked with a
    running SHA-256; nothing of it is held in memory or written to disk on this side."""
    size = BIG_MIB << 20
    body = _HashingPieces("ftp-big", BIG_MIB, 1 << 20)
    f = login(server)
    bucket(f, "big")
    assert f.storbinary("STOR /big/big.bin", body, blocksize=1 << 20)[:3] == "226"
    assert body.tell() == size
    want = body.digest.hexdigest()
    f.voidcmd("TYPE I")
    assert f.size("/big/big.bin") == size
    h = hashlib.sha256()
    got = 0

    def take(block: bytes) -> None:
        nonlocal got
        got += len(block)
        h.update(block)

    f.retrbinary("RETR /big/big.bin", take, blocksize=1 << 20)
    assert got == size
    assert h.hexdigest() == want
    f.quit()
    # And with curl (a second, warm read), streamed through its stdout.
    if shutil.which("curl") is None:
        return
    proc = subprocess.Popen(["curl", "-sS", "--user", f"{USER}:{PASSWORD}", server.url("/big/big.bin")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    h = hashlib.sha256()
    got = 0
    assert proc.stdout is not None
    for block in iter(lambda: proc.stdout.read(1 << 20), b""):
        take(block)
    err = proc.stderr.read() if proc.stderr else b""
    assert proc.wait(timeout=600) == 0, err
    assert got == size
    assert h.hexdigest() == want


def test_interrupted_retr_resumes_with_rest(server, tmp_path):
    data = xof_bytes("ftp-resume", 6 << 20)
    f = login(server)
    bucket(f, "resume")
    stor(f, "/resume/r.bin", data)
    g = login(server)
    g.voidcmd("TYPE I")
    conn = g.transfercmd("RETR /resume/r.bin")
    got = b""
    while len(got) < 2_000_000:
        got += conn.recv(1 << 16)
    conn.close()
    g.close()
    assert got + retr(f, "/resume/r.bin", rest=len(got)) == data
    f.quit()
    # curl's resume (-C -) of a partial file.
    part = tmp_path / "part.bin"
    part.write_bytes(data[:3_333_333])
    r = curl("--user", f"{USER}:{PASSWORD}", "-C", "-", server.url("/resume/r.bin"), "-o", str(part))
    assert r.returncode == 0, r.stderr
    assert part.read_bytes() == data


def test_appe_and_rest_stor_are_refused_and_leave_the_object(server, tmp_path):
    """Objects are written whole: ``REST n`` + ``STOR`` and ``APPE`` onto a non-empty file get
    502 and leave the object as it was; ``APPE`` of a new file creates it; the refused
    transfer's ``REST`` does not leak into the next transfer; ``REST`` + ``RETR`` works."""
    data = xof_bytes("ftp-appe", 3 << 20)
    f = login(server)
    bucket(f, "appe")
    stor(f, "/appe/a.bin", data)
    f.voidcmd("TYPE I")
    assert cmd(f, "REST 1000") == "350"
    assert reply_code(f.storbinary, "STOR /appe/a.bin", io.BytesIO(b"tail")) == "502"
    # libunftp keeps the REST of a failed transfer until a transfer succeeds: a plain RETR
    # or STOR now must be refused, never served from offset 1000.
    assert reply_code(retr, f, "/appe/a.bin") == "502"
    assert reply_code(stor, f, "/appe/other.bin", b"x") == "502"
    assert cmd(f, "REST 0") == "350"
    assert retr(f, "/appe/a.bin") == data
    assert reply_code(f.storbinary, "APPE /appe/a.bin", io.BytesIO(b"more")) == "502"
    assert f.size("/appe/a.bin") == len(data)
    assert retr(f, "/appe/a.bin") == data
    assert f.storbinary("APPE /appe/new.bin", io.BytesIO(b"fresh"))[:3] == "226"
    assert retr(f, "/appe/new.bin") == b"fresh"
    assert retr(f, "/appe/a.bin", rest=12345) == data[12345:]
    assert reply_code(f.size, "/appe/other.bin") == "550"
    f.quit()
    # curl's upload resume (-C -: SIZE, then APPE of the rest) is refused the same way.
    longer = tmp_path / "longer.bin"
    longer.write_bytes(data + b"appended tail")
    r = curl("--user", f"{USER}:{PASSWORD}", "-C", "-", "-T", str(longer), server.url("/appe/a.bin"))
    assert r.returncode != 0
    assert b"502" in r.stderr, r.stderr
    f = login(server)
    assert retr(f, "/appe/a.bin") == data
    f.quit()


def test_rename_delete_and_rmdir(server):
    f = login(server)
    bucket(f, "ren")
    stor(f, "/ren/a.txt", b"A")
    assert reply_code(f.rename, "/ren/a.txt", "/ren/b.txt") == "250"
    assert retr(f, "/ren/b.txt") == b"A"
    assert reply_code(retr, f, "/ren/a.txt") == "550"
    cmd(f, "MKD /ren/dir")
    cmd(f, "MKD /ren/dir/sub")
    stor(f, "/ren/dir/sub/x.bin", b"xx")
    assert reply_code(f.rename, "/ren/dir", "/ren/moved") == "250"
    assert retr(f, "/ren/moved/sub/x.bin") == b"xx"
    assert reply_code(f.cwd, "/ren/dir") == "550"
    assert reply_code(f.rmd, "/ren/moved") == "550"  # not empty
    assert reply_code(f.delete, "/ren/moved/sub/x.bin") == "250"
    assert reply_code(f.delete, "/ren/moved/sub/x.bin") == "550"
    assert reply_code(f.rmd, "/ren/moved/sub") == "250"
    assert reply_code(f.rmd, "/ren/moved") == "250"
    f.quit()


def test_path_traversal_stays_inside_the_root(server):
    """`..` at the root stays at the root (as in vsftpd, proftpd, pure-ftpd): `cd ../..`
    works, and no path names anything outside the buckets."""
    f = login(server)
    bucket(f, "trav")
    stor(f, "/trav/k", b"inside")
    assert reply_code(f.cwd, "../..") == "250"
    assert "trav" in f.nlst()  # the working directory is the root
    assert retr(f, "trav/k") == b"inside"
    # /../../etc/passwd is /etc/passwd: the key `passwd` of a bucket `etc` (absent).
    for path in ("../../etc/passwd", "/trav/../../etc/passwd", "/../../etc/passwd",
                 "..//..//etc/passwd", "./../.././etc/passwd"):
        assert reply_code(retr, f, path) == "550", path
    assert reply_code(stor, f, "../../../tmp/escape", b"no") == "550"
    # From inside a bucket: climbing more levels than there are lands on the root.
    f.cwd("/trav")
    assert reply_code(f.cwd, "../../..") == "250"
    assert retr(f, "trav/k") == b"inside"
    f.cwd("/trav")
    assert retr(f, "../trav/./k") == b"inside"
    # Encoded dots are not decoded: they are a literal (missing) key, never a parent.
    assert reply_code(f.cwd, "%2e%2e/%2e%2e") == "550"
    assert f.pwd() == "/trav"
    assert f.nlst("/trav") == ["k"]
    f.quit()
    r = curl("--path-as-is", "--user", f"{USER}:{PASSWORD}", server.url("/%2e%2e/%2e%2e/etc/passwd"))
    assert r.returncode != 0 and b"root:" not in r.stdout
    # lftp: a script that climbs above the root and then works relative to it.
    r = lftp(server, "cd ../../..; cls -1; cd trav; cat k")
    assert r.returncode == 0, r.stderr
    assert b"trav/" in r.stdout and r.stdout.endswith(b"inside"), r.stdout


def test_killed_stor_leaves_previous_version(server):
    v1 = xof_bytes("ftp-v1", 1 << 20)
    v2 = xof_bytes("ftp-v2", 4 << 20)
    f = login(server)
    bucket(f, "broken")
    stor(f, "/broken/k", v1)
    # A client that dies mid-transfer: a child process sends part of v2 and is killed.
    child = subprocess.Popen(
        ["python3", "-c",
         "import ftplib, sys, time\n"
         f"f = ftplib.FTP(); f.connect('127.0.0.1', {server.port}); f.login({USER!r}, {PASSWORD!r})\n"
         "f.voidcmd('TYPE I')\n"
         "c = f.transfercmd('STOR /broken/k')\n"
         f"c.sendall(bytes(1500000)); print('sent', flush=True); time.sleep(60)\n"],
        stdout=subprocess.PIPE,
    )
    assert child.stdout.readline().strip() == b"sent"
    child.send_signal(signal.SIGKILL)
    child.wait()
    time.sleep(1)
    assert retr(f, "/broken/k") == v1
    stor(f, "/broken/k", v2)
    assert retr(f, "/broken/k") == v2
    f.quit()


def test_ftps_self_signed(tls_server):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    f = ftplib.FTP_TLS(context=ctx)
    f.connect("127.0.0.1", tls_server.port, timeout=60)
    f.auth()
    f.login(USER, PASSWORD)
    f.prot_p()
    cmd(f, "MKD /secure")
    data = xof_bytes("ftps", 2 << 20)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR /secure/t.bin")
    conn.sendall(data)
    try:
        conn.unwrap()  # our close_notify; the server closes without one (libunftp)
    except ssl.SSLError:
        pass
    conn.close()
    assert f.voidresp()[:3] == "226"
    assert retr(f, "/secure/t.bin") == data
    f.quit()
    r = curl("--ssl-reqd", "-k", "--user", f"{USER}:{PASSWORD}",
             f"ftp://127.0.0.1:{tls_server.port}/secure/t.bin")
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
