"""Helpers to run `hugbucket serve --mode s3` on the embedded hub and drive it with real
S3 clients (boto3, aws cli, s3cmd, rclone) and huggingface_hub.

* ``ServeS3``: one `hugbucket serve` process on free loopback ports and a fresh data dir.
  ``start()`` reads the generated S3 credentials it prints on stdout, the embedded hub's
  URL from its log (``url=...``) and the hub token from ``DATA_DIR/hub/hub_token``; with
  ``env={"HF_ENDPOINT": ..., "HF_TOKEN": ...}`` it serves an external `hugbucket hub`
  instead (several gateways on one hub; without ``HF_TOKEN`` the gateway reads the token
  file as huggingface_hub does).
* ``ServeS3.client()``: a boto3 S3 client (latest boto3, default checksum settings).
* ``ServeS3.cli_env()``: environment for the aws cli / rclone / s3cmd subprocesses.
* ``run_hf(server, hf_home, code)``: runs ``code`` with huggingface_hub pointed at the
  embedded hub in a fresh interpreter (it reads HF_ENDPOINT at import time).
* ``tree_digest(root)``: ``{relative path: sha256}`` of every file below ``root``.
* ``bucket_name(prefix)``, ``error_code(exc)``, ``status_of(exc)``: small boto3 helpers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import free_port, hugbucket_bin_path, stop_process

#: Environment that must not leak into the server or the clients.
_CLEAR = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
          "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "HF_TOKEN", "HF_ENDPOINT", "HUGBUCKET_CONFIG",
          "MODE", "HUGBUCKET_RUNTIME", "HUGBUCKET_CORES")


class ServeS3:
    """A `hugbucket serve --mode s3` process with the embedded hub (``mode="both"`` also
    runs the FTP front-end; pass its ``--ftp-listen`` etc. in ``extra_args``)."""

    def __init__(self, data_dir: Path, log_path: Path, runtime: str = "glommio",
                 extra_args: tuple[str, ...] = (), env: dict | None = None,
                 mode: str = "s3"):
        self.mode = mode
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.runtime = runtime
        self.extra_args = extra_args
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.admin_port = 0
        self.endpoint = ""
        self.access_key = ""
        self.secret_key = ""
        self.hub_url = ""
        self.hub_token = ""
        self.stdout_lines: list[str] = []

    def start(self, timeout: float = 60.0) -> "ServeS3":
        self.port = free_port()
        admin = self.admin_port = free_port()
        argv = [str(hugbucket_bin_path()), "serve", "--mode", self.mode,
                "--data-dir", str(self.data_dir),
                "--s3-listen", f"127.0.0.1:{self.port}",
                "--admin-listen", f"127.0.0.1:{admin}",
                "--runtime", self.runtime, *self.extra_args]
        env = {k: v for k, v in os.environ.items() if k not in _CLEAR}
        env["RUST_LOG"] = os.environ.get("RUST_LOG", "info,sled=warn")
        env.update(self.extra_env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=log, env=env)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"hugbucket serve exited ({self.proc.poll()}) before ready; "
                                   f"log: {self.log_tail()}")
            self.stdout_lines.append(line)
            m = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", line)
            if m:
                self.access_key = m.group(1)
            m = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", line)
            if m:
                self.secret_key = m.group(1)
            if "hugbucket is ready" in line:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("hugbucket serve did not become ready")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=self._drain, daemon=True).start()
        if not self.access_key:
            self.access_key = self.extra_env.get("AWS_ACCESS_KEY_ID", "")
            self.secret_key = self.extra_env.get("AWS_SECRET_ACCESS_KEY", "")
        if not self.access_key:
            creds = json.loads((self.data_dir / "credentials.json").read_text())
            self.access_key = creds["access_key_id"]
            self.secret_key = creds["secret_access_key"]
        if "HF_ENDPOINT" in self.extra_env:
            # An external `hugbucket hub` (several gateways on one hub). Without HF_TOKEN
            # the gateway found its token as huggingface_hub does (the token file), and the
            # caller knows it.
            self.hub_url = self.extra_env["HF_ENDPOINT"]
            self.hub_token = self.extra_env.get("HF_TOKEN", "")
        else:
            m = re.search(r"url=(http://\S+)", self.log_path.read_text(errors="replace"))
            assert m, f"no hub url in the log: {self.log_tail()}"
            self.hub_url = m.group(1)
            self.hub_token = (self.data_dir / "hub" / "hub_token").read_text().strip()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        return self

    def metrics(self) -> str:
        """The admin listener's Prometheus text."""
        url = f"http://127.0.0.1:{self.admin_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.read().decode()

    def _drain(self) -> None:
        assert self.proc is not None
        for raw in self.proc.stdout:
            self.stdout_lines.append(raw.decode(errors="replace"))

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is not None:
            stop_process(self.proc, timeout=timeout)
            return self.proc.returncode
        return None

    def client(self, access_key: str | None = None, secret_key: str | None = None,
               **config) -> "boto3.client":
        """A boto3 client (path-style, no retries so errors surface as they are)."""
        config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
        config.setdefault("s3", {"addressing_style": "path"})
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=self.access_key if access_key is None else access_key,
            aws_secret_access_key=self.secret_key if secret_key is None else secret_key,
            config=Config(**config))

    def cli_env(self, home: Path) -> dict:
        """Environment for CLI clients: credentials, no CA bundle override, own HOME."""
        env = {k: v for k, v in os.environ.items() if k not in _CLEAR}
        env.update({
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(home / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
            "HOME": str(home),
        })
        return env


def run_hf(server: ServeS3, hf_home: Path, code: str, timeout: float = 600.0):
    """Runs ``code`` with ``api = HfApi(endpoint=hub, token=hub token)`` in a fresh
    interpreter; ``emit(obj)`` returns ``obj`` (JSON) to the caller."""
    prog = textwrap.dedent("""
        import json, os, sys
        from huggingface_hub import HfApi
        api = HfApi(endpoint=os.environ["HF_ENDPOINT"], token=os.environ["HF_TOKEN"])
        _out = []
        def emit(obj):
            _out.append(obj)
    """) + textwrap.dedent(code) + textwrap.dedent("""
        print("\\n__RESULT__" + json.dumps(_out[-1] if _out else None))
    """)
    env = {k: v for k, v in os.environ.items() if k not in _CLEAR}
    env.update({"HF_ENDPOINT": server.hub_url, "HF_TOKEN": server.hub_token,
                "HF_HOME": str(hf_home), "HF_HUB_DISABLE_TELEMETRY": "1"})
    p = subprocess.run([sys.executable, "-c", prog], capture_output=True, env=env,
                       timeout=timeout, check=False)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, f"huggingface_hub client failed:\n{out}\n{p.stderr.decode()[-4000:]}"
    return json.loads(out.rsplit("__RESULT__", 1)[1])


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def tree_digest(root: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every regular file under ``root``."""
    root = Path(root)
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(root.rglob("*")) if p.is_file()}


def run(argv: list[str], env: dict, timeout: float = 900.0, cwd: Path | None = None,
        check: bool = True) -> subprocess.CompletedProcess:
    """Runs a CLI client; on failure the assertion shows its output."""
    p = subprocess.run([str(a) for a in argv], capture_output=True, env=env, timeout=timeout,
                       cwd=cwd, check=False)
    if check:
        assert p.returncode == 0, (f"{argv[0]} failed ({p.returncode}): {' '.join(map(str, argv))}\n"
                                   f"stdout: {p.stdout.decode(errors='replace')[-3000:]}\n"
                                   f"stderr: {p.stderr.decode(errors='replace')[-3000:]}")
    return p


def bucket_name(prefix: str) -> str:
    """A fresh bucket name: ``prefix-`` and 10 random hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_code(exc: ClientError) -> str:
    """The S3 error code of a boto3 ClientError."""
    return exc.response["Error"]["Code"]


def status_of(exc: ClientError) -> int:
    """The HTTP status of a boto3 ClientError."""
    return exc.response["ResponseMetadata"]["HTTPStatusCode"]
