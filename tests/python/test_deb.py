"""The Debian package (``cargo deb``) and its systemd unit, on this machine (needs root:
it installs the package and removes it again).

The package is built from the binary under test with ``cargo deb --no-build --profile
dev`` (a release build would cost minutes on CI's cores; the packaging is the same). Then:
``dpkg -i`` creates the ``hugbucket`` user and /var/lib/hugbucket, installs the binary, the
unit and /etc/hugbucket/hugbucket.toml as a conffile; ``systemd-analyze verify`` accepts
the unit; the installed binary starts with the installed config exactly as the unit's
``ExecStart`` line says, as the unit's user, in its working directory (systemd itself does
not run here), answers /ready, and drains on SIGTERM within ``TimeoutStopSec``. ``dpkg
-r`` keeps the edited conffile, ``--purge`` removes it and the data.
"""

from __future__ import annotations

import configparser
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import free_port, hugbucket_bin_path

ROOT = Path(__file__).resolve().parents[2]
PKG = "hugbucket"

pytestmark = pytest.mark.timeout(600)


def _run(*argv, env=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    p = subprocess.run([str(a) for a in argv], capture_output=True, env=env, timeout=timeout,
                       check=False)
    if check:
        assert p.returncode == 0, (f"{' '.join(map(str, argv))} failed ({p.returncode}):\n"
                                   f"{p.stdout.decode()[-3000:]}\n{p.stderr.decode()[-3000:]}")
    return p


def _installed() -> bool:
    p = _run("dpkg-query", "-W", "-f=${Status}", PKG, check=False)
    return p.returncode == 0 and b"installed" in p.stdout and b"not-installed" not in p.stdout


def _purge() -> None:
    if _run("dpkg-query", "-W", PKG, check=False).returncode == 0:
        _run("dpkg", "--purge", PKG)


def _build_deb(out_dir: Path) -> Path:
    """``cargo deb`` around the binary under test (``HUGBUCKET_BIN``, a dev build)."""
    binary = hugbucket_bin_path()
    target = binary.parent.parent  # .../target/debug/hugbucket -> .../target
    assert binary.parent.name == "debug", f"expected a dev build, got {binary}"
    assert shutil.which("cargo"), "cargo is not on PATH"
    env = dict(os.environ, CARGO_TARGET_DIR=str(target))
    p = _run("cargo", "deb", "--version", env=env, check=False)
    assert p.returncode == 0, "cargo-deb is not installed (tests/run.sh installs it)"
    _run("cargo", "deb", "-p", "hugbucket", "--no-build", "--profile", "dev", "--strip",
         "--fast", "-o", out_dir, env=env, timeout=600)
    debs = sorted(out_dir.glob("hugbucket_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


def _unit(path: Path) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None,
                                     comment_prefixes=("#", ";"))
    unit.optionxform = str  # keys are case-sensitive
    unit.read_string(path.read_text())
    return unit


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_deb_installs_and_the_unit_starts_the_gateway(tmp_path):
    assert os.geteuid() == 0, "this test installs a Debian package: run it as root (CI does)"
    _purge()
    deb = _build_deb(tmp_path)
    contents = _run("dpkg-deb", "-c", deb).stdout.decode()
    for path in ("./usr/bin/hugbucket", "./etc/hugbucket/hugbucket.toml"):
        assert path in contents, contents
    unit_paths = [line.split()[-1] for line in contents.splitlines()
                  if line.split()[-1].endswith("/systemd/system/hugbucket.service")]
    assert len(unit_paths) == 1, contents
    try:
        _run("dpkg", "-i", deb)
        assert _installed()
        conffiles = _run("dpkg-query", "-W", "-f=${Conffiles}", PKG).stdout.decode()
        assert "/etc/hugbucket/hugbucket.toml" in conffiles

        user = pwd.getpwnam("hugbucket")
        assert user.pw_uid != 0 and user.pw_shell.endswith("nologin")
        data = Path("/var/lib/hugbucket")
        assert data.is_dir() and data.stat().st_uid == user.pw_uid
        config = Path("/etc/hugbucket/hugbucket.toml")
        assert config.stat().st_gid == user.pw_gid and config.stat().st_mode & 0o777 == 0o640

        unit_file = Path(unit_paths[0].lstrip("."))
        assert unit_file.is_file()
        # verify exits 0 on many unit errors and only prints them: accept no output
        # about our unit at all.
        p = _run("systemd-analyze", "verify", unit_file, check=False)
        said = (p.stdout + p.stderr).decode()
        assert p.returncode == 0 and "hugbucket" not in said, said
        svc = _unit(unit_file)["Service"]
        assert svc["User"] == "hugbucket" and svc["Restart"] == "on-failure"
        assert int(svc["LimitNOFILE"]) >= 65536
        assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
        assert svc["StateDirectory"] == "hugbucket"
        stop_timeout = int(svc["TimeoutStopSec"])
        shutdown_timeout = int(next(line.split("=")[1] for line in config.read_text().splitlines()
                                    if line.startswith("shutdown-timeout")))
        assert shutdown_timeout < stop_timeout

        _start_as_the_unit_says(svc, stop_timeout)

        # dpkg -r keeps an edited conffile; --purge removes it and the data.
        config.write_text(config.read_text() + "\n# edited by the operator\n")
        _run("dpkg", "-r", PKG)
        assert not Path("/usr/bin/hugbucket").exists()
        assert "edited by the operator" in config.read_text()
        _run("dpkg", "--purge", PKG)
        assert not config.exists() and not data.exists()
    finally:
        _purge()


def _start_as_the_unit_says(svc, stop_timeout: int) -> None:
    argv = shlex.split(svc["ExecStart"])
    assert argv[:2] == ["/usr/bin/hugbucket", "serve"] and "--config" in argv
    s3, admin, ftp, pasv = free_port(), free_port(), free_port(), free_port()
    # What /etc/default/hugbucket (EnvironmentFile) would add: free loopback ports, so the
    # test does not collide with anything on this machine.
    env = {"PATH": "/usr/bin:/bin", "HOME": "/var/lib/hugbucket",
           "HUGBUCKET_S3_LISTEN": f"127.0.0.1:{s3}",
           "HUGBUCKET_ADMIN_LISTEN": f"127.0.0.1:{admin}",
           "HUGBUCKET_FTP_LISTEN": f"127.0.0.1:{ftp}",
           "HUGBUCKET_FTP_PASSIVE_PORTS": f"{pasv}-{pasv}"}
    check = _run(*argv, "--check-config", env=env).stdout.decode()
    assert "data-dir = /var/lib/hugbucket" in check
    setpriv = ["setpriv", f"--reuid={svc['User']}", f"--regid={svc['Group']}",
               "--init-groups", "--"]
    proc = subprocess.Popen([*setpriv, *argv], cwd=svc["WorkingDirectory"], env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        status = None
        while status != 200:
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the installed gateway never got ready"
            try:
                status, _ = _get(f"http://127.0.0.1:{admin}/ready")
            except OSError:
                pass
            time.sleep(0.2)
        status, _ = _get(f"http://127.0.0.1:{s3}/minio/health/live")
        assert status == 200
        owner = pwd.getpwuid(Path(f"/proc/{proc.pid}").stat().st_uid).pw_name
        assert owner == "hugbucket"
        # Its state went to the data dir the unit's StateDirectory names.
        assert (Path("/var/lib/hugbucket") / "credentials.json").is_file()
        proc.send_signal(signal.SIGHUP)  # ExecReload: no TLS configured, keeps running
        time.sleep(0.5)
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=stop_timeout) == 0
        assert time.monotonic() - started < stop_timeout
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
