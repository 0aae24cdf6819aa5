"""Helpers to run `hugbucket hub` and drive it with the real huggingface_hub + hf_xet.

* ``HubServer``: one `hugbucket hub` process on a data dir; ``start()`` parses the
  machine-readable startup lines (``HF_ENDPOINT=``, ``HF_TOKEN=``, ``LISTENING=``), keeps
  the bound port so that a restart (``kill(signal.SIGKILL)`` then ``start()``) reuses it,
  and reads the generated Hub token from ``<data dir>/hub_token`` on later starts.
* ``run_client(server, hf_home, code)``: runs ``code`` in a fresh Python process of this
  interpreter with ``HF_ENDPOINT``/``HF_TOKEN``/``HF_HOME`` pointing at the server
  (huggingface_hub reads them at import time, so a subprocess is the only reliable way to
  target a given server). ``code`` sees ``api = HfApi()`` and ``emit(obj)``; the last
  emitted object is returned (JSON).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import requests

from conftest import hugbucket_bin_path, stop_process


class HubServer:
    """A `hugbucket hub` process."""

    def __init__(self, data_dir: Path, log_path: Path, port: int = 0,
                 extra_args: tuple[str, ...] = ()):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.port = port
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.token = ""
        self._log = None

    def start(self, timeout: float = 30.0) -> "HubServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = open(self.log_path, "ab")
        argv = [str(hugbucket_bin_path()), "hub", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir), *self.extra_args]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info,sled=warn"))
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log, env=env)
        lines: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while "LISTENING" not in lines:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"hub exited ({self.proc.poll()}) before listening; "
                                   f"log: {self.log_path.read_text()[-3000:]}")
            if "=" in line:
                k, v = line.strip().split("=", 1)
                lines[k] = v
            if time.monotonic() > deadline:
                raise TimeoutError("hub did not report LISTENING")
        self.url = lines["HF_ENDPOINT"]
        self.port = int(lines["LISTENING"].rsplit(":", 1)[1])
        if "HF_TOKEN" in lines:
            self.token = lines["HF_TOKEN"]
        elif not self.token:
            self.token = (self.data_dir / "hub_token").read_text().strip()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Sends ``sig`` to the server and waits for it to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        if self._log:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
        if self._log:
            self._log.close()
            self._log = None

    # ---- raw HTTP ----

    def http(self, method: str, path: str, token: str | None = "hub", **kw) -> requests.Response:
        """``token``: ``"hub"`` = the Hub token, ``None`` = no Authorization, else that token."""
        headers = dict(kw.pop("headers", {}) or {})
        if token == "hub":
            token = self.token
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(method, self.url + path, headers=headers, timeout=120, **kw)

    def stats(self) -> dict:
        r = self.http("GET", "/api/_hugbucket/stats")
        r.raise_for_status()
        return r.json()

    def xorb_count(self) -> int:
        return sum(1 for p in (self.data_dir / "xorbs").glob("*.xorb"))


_PRELUDE = """
import json, os, sys
from pathlib import Path
from huggingface_hub import HfApi, HfFileSystem
api = HfApi()
def emit(obj):
    print("@@RESULT@@" + json.dumps(obj), flush=True)
"""


def client_env(server: HubServer, hf_home: Path) -> dict:
    env = dict(os.environ)
    for k in ("HF_HUB_CACHE", "HF_XET_CACHE", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        env.pop(k, None)
    env.update(HF_ENDPOINT=server.url, HF_TOKEN=server.token, HF_HOME=str(hf_home),
               HF_HUB_DISABLE_TELEMETRY="1", DO_NOT_TRACK="1",
               HF_HUB_DISABLE_PROGRESS_BARS="1")
    return env


def spawn_client(server: HubServer, hf_home: Path, code: str, log_path: Path) -> subprocess.Popen:
    """Starts client ``code`` in the background (output to ``log_path``)."""
    script = _PRELUDE + textwrap.dedent(code)
    log = open(log_path, "wb")
    try:
        return subprocess.Popen([sys.executable, "-c", script], env=client_env(server, hf_home),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    finally:
        log.close()


def run_client(server: HubServer, hf_home: Path, code: str, timeout: float = 600.0,
               extra_env: dict | None = None):
    """Runs client ``code`` against ``server``; returns the last ``emit``-ted value.
    Raises AssertionError with the client's output when it fails."""
    script = _PRELUDE + textwrap.dedent(code)
    env = client_env(server, hf_home)
    env.update(extra_env or {})
    p = subprocess.run([sys.executable, "-c", script], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        raise AssertionError(f"client failed ({p.returncode}):\n{err[-6000:]}\n{out[-2000:]}")
    result = None
    for line in out.splitlines():
        if line.startswith("@@RESULT@@"):
            result = json.loads(line[len("@@RESULT@@"):])
    return result
