"""Shared pytest fixtures and helpers for the HugBucket Python suites.

Generic building blocks only; suite-specific servers live next to their tests
(e.g. the embedded-hub fixture in ``hub_util.py``).

Helpers that are plain functions (importable as ``from conftest import ...``, the
test directory is on ``sys.path`` under pytest's default import mode):

* ``REPO_ROOT``, ``vectors_dir()``: where the workspace and the Xet reference vectors are.
* ``free_port()``, ``wait_for_port()``: loopback TCP ports.
* ``xof_bytes()``, ``write_xof_file()``: deterministic pseudo-random data, the same
  generator as the spec vectors (first N bytes of the BLAKE3 XOF of a label).
* ``recipe_bytes()``: regenerate a spec-vector input from its recipe.
* ``run_hugbucket()``: run the binary and capture its output.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterable, Sequence

import blake3
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Hosts that never go through a proxy in the tests (`NO_PROXY` syntax).
LOOPBACK_NO_PROXY = "127.0.0.1,localhost,::1"

#: Variables that would point a client at a real Hub or a user's cache/token.
_HF_ENV_TO_CLEAR = (
    "HF_ENDPOINT",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_HUB_CACHE",
    "HF_XET_CACHE",
    "HF_HUB_OFFLINE",
)


# --------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------


def hugbucket_bin_path() -> Path:
    """The binary under test: env ``HUGBUCKET_BIN`` (relative to the repo root if not
    absolute), default ``target/debug/hugbucket``."""
    raw = os.environ.get("HUGBUCKET_BIN", "target/debug/hugbucket")
    path = Path(raw)
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def vectors_dir() -> Path:
    """The Xet reference vectors: ``tests/vectors`` in the repository, or
    ``$HUGBUCKET_SHARED/spec/vectors`` when that override is set."""
    raw = os.environ.get("HUGBUCKET_SHARED")
    if raw:
        return (Path(raw) / "spec" / "vectors").resolve()
    return REPO_ROOT / "tests" / "vectors"


# --------------------------------------------------------------------------------------
# Ports and processes
# --------------------------------------------------------------------------------------


# Ports handed out by free_port in this test run.
_HANDED_OUT: set[int] = set()
# free_port's ports come from below the kernel's ephemeral range.
_FIXED_PORTS_FROM = 10_000


def _ephemeral_ports_from() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago and is not handed out twice in one
    run. It lies below the kernel's ephemeral range: a port the OS picked for ``bind(0)``
    could be taken again by any socket bound to port 0 (such as the embedded hub of the
    very server that is about to listen on it) before the server binds it."""
    high = _ephemeral_ports_from()
    for _ in range(10_000):
        port = random.randrange(_FIXED_PORTS_FROM, max(high, _FIXED_PORTS_FROM + 1_000))
        if port in _HANDED_OUT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError(f"no free TCP port in {_FIXED_PORTS_FROM}..{high}")


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0,
                  proc: subprocess.Popen | None = None) -> None:
    """Blocks until something accepts TCP connections on ``host:port``.

    Fails early if ``proc`` (the server being waited for) exits first."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before "
                               f"listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def private_kib(pid: int) -> int:
    """RssAnon + RssShmem of process ``pid`` in KiB: its own memory, without the file pages
    it maps (the chunk cache's segments, RssFile), which VmRSS and VmHWM include."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssShmem"):
            fields[key] = int(value.split()[0])
    assert len(fields) == 2, f"no RssAnon/RssShmem for pid {pid}"
    return fields["RssAnon"] + fields["RssShmem"]


class PrivateMemorySampler:
    """``with PrivateMemorySampler(pid) as m: ...`` samples :func:`private_kib` every 20 ms
    while the block runs; ``m.growth_kib`` is the highest sample minus the one taken at the
    start. Unlike a VmHWM difference, a process's earlier peak cannot hide growth here."""

    def __init__(self, pid: int, interval: float = 0.02):
        self.pid, self.interval = pid, interval
        self.baseline = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, private_kib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PrivateMemorySampler":
        self.baseline = self.peak = private_kib(self.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, private_kib(self.pid))

    @property
    def growth_kib(self) -> int:
        return self.peak - self.baseline


def run_hugbucket(*args: str | os.PathLike, input: bytes | None = None,
                  timeout: float = 600.0, env: dict | None = None,
                  cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Runs the hugbucket binary with ``args``; returns the completed process with
    ``stdout``/``stderr`` as bytes. Never raises on a non-zero exit."""
    return subprocess.run(
        [str(hugbucket_bin_path()), *map(str, args)],
        input=input if input is not None else b"",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=timeout,
        env=env,
        cwd=cwd,
        check=False,
    )


# --------------------------------------------------------------------------------------
# Deterministic data (same generator as tests/vectors)
# --------------------------------------------------------------------------------------

_XOF_BLOCK = 8 << 20


def xof_bytes(label: str, length: int, offset: int = 0) -> bytes:
    """Bytes ``offset .. offset+length`` of the BLAKE3 XOF of ``label`` (UTF-8, unkeyed).

    Streams with the same label are prefixes of one another."""
    return blake3.blake3(label.encode()).digest(length=length, seek=offset)


class XofPieces(io.RawIOBase):
    """A seekable read-only stream of ``count`` pieces of ``piece`` bytes, piece ``i`` being
    ``xof_bytes(f"{label}/{i}", piece)``: a large distinct body generated on demand, so a
    test uploads hundreds of MiB without a source file on disk."""

    def __init__(self, label: str, count: int, piece: int):
        self.label, self.count, self.piece = label, count, piece
        self.size = count * piece
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buf) -> int:
        want = min(len(buf), self.size - self.pos)
        if want <= 0:
            return 0
        i, within = divmod(self.pos, self.piece)
        n = min(want, self.piece - within)
        buf[:n] = xof_bytes(f"{self.label}/{i}", n, within)
        self.pos += n
        return n

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for i in range(self.count):
            digest.update(xof_bytes(f"{self.label}/{i}", self.piece))
        return digest.hexdigest()


def write_xof_file(path: str | os.PathLike, label: str, length: int) -> Path:
    """Writes ``xof_bytes(label, length)`` to ``path`` in blocks (no huge buffer)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    hasher = blake3.blake3(label.encode())
    with open(path, "wb") as f:
        done = 0
        while done < length:
            n = min(_XOF_BLOCK, length - done)
            f.write(hasher.digest(length=n, seek=done))
            done += n
    return path


def recipe_bytes(recipe: Iterable[dict]) -> bytes:
    """Regenerates a spec-vector input from its ``recipe`` (see tests/vectors/README.md)."""
    out = []
    for seg in recipe:
        kind = seg["kind"]
        if kind == "blake3_xof":
            out.append(xof_bytes(seg["label"], seg["length"]))
        elif kind == "zeros":
            out.append(bytes(seg["length"]))
        elif kind == "f32_ramp":
            out.append(struct.pack(f"<{seg['count']}f", *(i * 0.25 for i in range(seg["count"]))))
        else:
            raise ValueError(f"unknown recipe segment kind {kind!r}")
    return b"".join(out)


def parse_sum_lines(text: str) -> list[tuple[str, str]]:
    """Parses b3sum-style ``<hash>  <name>`` lines into ``(hash, name)`` pairs."""
    pairs = []
    for line in text.splitlines():
        if not line:
            continue
        digest, sep, name = line.partition("  ")
        if not sep:
            raise ValueError(f"not a '<hash>  <name>' line: {line!r}")
        pairs.append((digest, name))
    return pairs


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _isolated_hf_env(tmp_path_factory):
    """No test talks to a real Hub or writes to the user's ~/.cache/huggingface:
    the whole session gets its own HF_HOME and no inherited endpoint/token."""
    mp = pytest.MonkeyPatch()
    for name in _HF_ENV_TO_CLEAR:
        mp.delenv(name, raising=False)
    mp.setenv("HF_HOME", str(tmp_path_factory.mktemp("hf_home_session")))
    mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    mp.setenv("DO_NOT_TRACK", "1")
    # Every server of the suites is on loopback: a proxy set in the environment (which the
    # gateway, huggingface_hub and requests all honour) must not be asked to reach it.
    for name in ("NO_PROXY", "no_proxy"):
        mp.setenv(name, ",".join(filter(None, [LOOPBACK_NO_PROXY, os.environ.get(name)])))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def hugbucket_bin() -> Path:
    """Path of the hugbucket binary; fails (not skips) when it has not been built."""
    path = hugbucket_bin_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"hugbucket binary not found at {path}: run `cargo build -p hugbucket` "
                    f"or set HUGBUCKET_BIN", pytrace=False)
    return path


@pytest.fixture(scope="session")
def xet_vectors() -> dict:
    """Parsed ``xet_vectors.json`` of :func:`vectors_dir`; fails when it is missing."""
    path = vectors_dir() / "xet_vectors.json"
    if not path.is_file():
        pytest.fail(f"reference vectors not found at {path}", pytrace=False)
    with open(path) as f:
        return json.load(f)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A fresh, empty data directory for one server instance."""
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def hf_home(tmp_path, monkeypatch) -> Path:
    """A fresh HF_HOME for this test (hf_xet keeps a shard cache there that must not
    survive across server instances, see shared/notes/hf-client-emulation.md)."""
    path = tmp_path / "hf_home"
    path.mkdir()
    monkeypatch.setenv("HF_HOME", str(path))
    return path


@pytest.fixture
def port() -> int:
    """A free loopback TCP port."""
    return free_port()


@pytest.fixture
def spawn():
    """Starts background processes that are stopped (SIGTERM, then SIGKILL) at teardown.

    ``spawn(argv, log_path=None, **popen_kwargs) -> Popen``; output goes to ``log_path``
    when given (handy to print on failure), else is discarded."""
    procs: list[tuple[subprocess.Popen, object]] = []

    def _spawn(argv: Sequence[str | os.PathLike], log_path: str | os.PathLike | None = None,
               **kwargs) -> subprocess.Popen:
        log = open(log_path, "wb") if log_path is not None else subprocess.DEVNULL
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen([str(a) for a in argv], stdout=log,
                                stderr=subprocess.STDOUT, **kwargs)
        procs.append((proc, log))
        return proc

    yield _spawn
    for proc, log in reversed(procs):
        stop_process(proc)
        if log is not subprocess.DEVNULL:
            log.close()


@pytest.fixture
def make_file(tmp_path):
    """``make_file(name, size, label=None) -> Path``: a file of ``size`` deterministic
    pseudo-random bytes (BLAKE3 XOF of ``label``, default ``"hugbucket-tests/<name>"``)."""

    def _make(name: str, size: int, label: str | None = None) -> Path:
        return write_xof_file(tmp_path / name, label or f"hugbucket-tests/{name}", size)

    return _make


def have_tool(name: str) -> bool:
    """True when an external program is on PATH."""
    return shutil.which(name) is not None
