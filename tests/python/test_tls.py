"""HTTPS on the S3 port (`--s3-tls-cert` / `--s3-tls-key`), on both S3 runtimes.

* aws cli (with ``--ca-bundle``) and boto3 (``verify=CA``) round-trip objects, multipart
  included, over HTTPS to a node whose certificate is signed by a test CA made here with
  openssl; plain HTTP on that port is refused.
* A certificate replaced on disk is served to new connections without a restart (the
  served certificate's fingerprint and serial, read with Python's ssl module), while a
  connection opened before keeps working; SIGHUP reloads files whose change the poll cannot
  see (same modification time and size) and does not stop the server.
"""

from __future__ import annotations

import ftplib
import os
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from conftest import free_port
from s3_util import ServeS3, bucket_name, run

pytestmark = pytest.mark.timeout(300)


def _openssl(*args: str) -> None:
    p = subprocess.run(["openssl", *args], capture_output=True, check=False)
    assert p.returncode == 0, f"openssl {' '.join(args)} failed: {p.stderr.decode()}"


class CertAuthority:
    """A throwaway CA under ``root`` that signs server certificates for 127.0.0.1."""

    def __init__(self, root: Path):
        self.root = root
        self.cert = root / "ca.crt"
        self.key = root / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "2", "-subj", "/CN=hugbucket test CA",
                 "-keyout", str(self.key), "-out", str(self.cert))

    def issue(self, name: str, serial: int) -> tuple[Path, Path]:
        """A new key and a certificate for localhost/127.0.0.1 with this serial."""
        key, csr, crt = (self.root / f"{name}.key", self.root / f"{name}.csr",
                         self.root / f"{name}.crt")
        ext = self.root / f"{name}.ext"
        ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                       "extendedKeyUsage=serverAuth\n")
        # One subject for all: replacements differ only in key, serial and signature.
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-subj", "/CN=hugbucket-node", "-keyout", str(key), "-out", str(csr))
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
                 "-set_serial", str(serial), "-days", "2", "-extfile", str(ext), "-out", str(crt))
        return crt, key


def _pem_der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


def _served(port: int, ca: Path) -> tuple[bytes, int]:
    """The DER certificate a new TLS connection to 127.0.0.1:port gets, and its serial
    (verified against ``ca``)."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
            serial = int(tls.getpeercert()["serialNumber"], 16)
            assert tls.selected_alpn_protocol() == "http/1.1"
    return der, serial


def _install(src: tuple[Path, Path], dst: tuple[Path, Path]) -> None:
    """Replaces the served files the way tools do: write aside, rename over."""
    for s, d in zip(src, dst):
        tmp = d.with_suffix(".new")
        tmp.write_bytes(s.read_bytes())
        os.replace(tmp, d)


def _start(tmp_path: Path, runtime: str, cert: Path, key: Path) -> ServeS3:
    server = ServeS3(tmp_path / f"data-{runtime}", tmp_path / f"serve-{runtime}.log",
                     runtime=runtime, extra_args=("--s3-tls-cert", str(cert),
                                                  "--s3-tls-key", str(key))).start()
    server.endpoint = f"https://127.0.0.1:{server.port}"
    return server


def _boto3(server: ServeS3, ca: Path):
    return boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        verify=str(ca),
        config=Config(s3={"addressing_style": "path"},
                      retries={"max_attempts": 1, "mode": "standard"}))


@pytest.fixture
def ca(tmp_path) -> CertAuthority:
    return CertAuthority(tmp_path)


@pytest.mark.parametrize("runtime", ["glommio", "tokio"])
def test_https_round_trip_with_aws_cli_and_boto3(tmp_path, ca, runtime):
    cert, key = ca.issue("node", serial=1001)
    server = _start(tmp_path, runtime, cert, key)
    try:
        der, serial = _served(server.port, ca.cert)
        assert der == _pem_der(cert) and serial == 1001

        # boto3: bucket, small object, a 12 MiB multipart upload (8 MiB parts), listing.
        s3 = _boto3(server, ca.cert)
        bucket = bucket_name("tls")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="small.txt", Body=b"hello over https\n")
        assert s3.get_object(Bucket=bucket, Key="small.txt")["Body"].read() == \
            b"hello over https\n"
        big = os.urandom(12 << 20)
        (tmp_path / "big.bin").write_bytes(big)
        s3.upload_file(str(tmp_path / "big.bin"), bucket, "big.bin")
        assert s3.get_object(Bucket=bucket, Key="big.bin")["Body"].read() == big
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == ["big.bin", "small.txt"]

        # aws cli with --ca-bundle: upload and download a file byte-identical.
        home = tmp_path / "home"
        home.mkdir()
        env = server.cli_env(home)
        src = tmp_path / "cli-src.bin"
        src.write_bytes(os.urandom(3 << 20) + b"tail")
        aws = ["aws", "--endpoint-url", server.endpoint, "--ca-bundle", str(ca.cert), "s3"]
        run([*aws, "cp", src, f"s3://{bucket}/cli/obj.bin"], env)
        run([*aws, "cp", f"s3://{bucket}/cli/obj.bin", tmp_path / "cli-back.bin"], env)
        assert (tmp_path / "cli-back.bin").read_bytes() == src.read_bytes()
        listed = run([*aws, "ls", f"s3://{bucket}/cli/"], env).stdout.decode()
        assert "obj.bin" in listed

        # Without the CA the certificate is refused; plain HTTP gets no S3 answer.
        p = run(["aws", "--endpoint-url", server.endpoint, "s3", "ls", f"s3://{bucket}/"], env,
                check=False)
        assert p.returncode != 0 and b"CERTIFICATE_VERIFY_FAILED" in p.stderr, p.stderr
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            raw.settimeout(10)
            try:
                answer = raw.recv(100)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/1.1"), answer
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert server.proc.returncode == 0


def test_replaced_certificate_is_served_to_new_connections(tmp_path, ca):
    first = ca.issue("first", serial=2001)
    live = (tmp_path / "live.crt", tmp_path / "live.key")
    _install(first, live)
    server = _start(tmp_path, "tokio", *live)
    try:
        assert _served(server.port, ca.cert) == (_pem_der(first[0]), 2001)
        # A connection opened now keeps its session across the change.
        ctx = ssl.create_default_context(cafile=str(ca.cert))
        old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10),
                              server_hostname="127.0.0.1")
        old_der = old.getpeercert(binary_form=True)

        # Replaced on disk: new connections get it within the poll interval, no restart.
        second = ca.issue("second", serial=2002)
        pid = server.proc.pid
        _install(second, live)
        deadline = time.monotonic() + 15
        while _served(server.port, ca.cert)[1] != 2002:
            assert time.monotonic() < deadline, "the new certificate was not served"
            time.sleep(0.2)
        assert _served(server.port, ca.cert) == (_pem_der(second[0]), 2002)
        assert server.proc.pid == pid and server.proc.poll() is None
        old.sendall(b"GET /minio/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert old.recv(100).startswith(b"HTTP/1.1 200"), "the open connection broke"
        assert old_der == _pem_der(first[0])
        old.close()

        # A half-written replacement (key of another certificate) is not served; the
        # previous certificate stays.
        third = ca.issue("third", serial=2003)
        live[1].write_bytes(third[1].read_bytes())
        time.sleep(3)
        assert _served(server.port, ca.cert)[1] == 2002

        # SIGHUP: files whose change the poll cannot see (same size, mtime put back) are
        # reloaded on the signal, and the server keeps running.
        _install(second, live)
        time.sleep(3)
        assert _served(server.port, ca.cert)[1] == 2002
        stat = (live[0].stat(), live[1].stat())
        fourth = _same_size_pair(ca, "fourth", 2004, stat[0].st_size, stat[1].st_size)
        _install(fourth, live)
        for path, st in zip(live, stat):
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        time.sleep(3)
        assert _served(server.port, ca.cert)[1] == 2002, "the poll saw an invisible change"
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while _served(server.port, ca.cert)[1] != 2004:
            assert time.monotonic() < deadline, "SIGHUP did not reload the certificate"
            time.sleep(0.2)
        assert server.proc.poll() is None
        s3 = _boto3(server, ca.cert)
        assert "Buckets" in s3.list_buckets()
        assert "SIGHUP: reloading" in server.log_tail(100_000)
    finally:
        server.stop()
    assert server.proc.returncode == 0


def _ftps_served(port: int, ca: Path) -> int:
    """The serial of the certificate a new FTPS session (AUTH TLS) gets."""
    ctx = ssl.create_default_context(cafile=str(ca))
    ftp = ftplib.FTP_TLS(context=ctx)
    ftp.connect("127.0.0.1", port, timeout=30)
    try:
        ftp.auth()
        return int(ftp.sock.getpeercert()["serialNumber"], 16)
    finally:
        ftp.close()


def test_replaced_ftps_certificate_reaches_new_sessions(tmp_path, ca):
    """FTPS serves from the same reloading store as HTTPS."""
    live = (tmp_path / "ftp.crt", tmp_path / "ftp.key")
    _install(ca.issue("ftp-first", serial=3001), live)
    ftp_port, pasv = free_port(), free_port()
    server = ServeS3(tmp_path / "data", tmp_path / "serve.log", mode="ftp",
                     extra_args=("--ftp-listen", f"127.0.0.1:{ftp_port}",
                                 "--ftp-passive-ports", f"{pasv}-{pasv}",
                                 "--ftp-tls-cert", str(live[0]),
                                 "--ftp-tls-key", str(live[1]))).start()
    try:
        assert _ftps_served(ftp_port, ca.cert) == 3001
        _install(ca.issue("ftp-second", serial=3002), live)
        deadline = time.monotonic() + 15
        while _ftps_served(ftp_port, ca.cert) != 3002:
            assert time.monotonic() < deadline, "the new FTPS certificate was not served"
            time.sleep(0.2)
        assert server.proc.poll() is None
    finally:
        server.stop()


def _same_size_pair(ca: CertAuthority, name: str, serial: int, crt_size: int,
                    key_size: int) -> tuple[Path, Path]:
    """A new pair whose files have exactly these sizes (ECDSA signatures vary by a byte or
    two, so a few tries find one)."""
    for attempt in range(40):
        crt, key = ca.issue(f"{name}{attempt}", serial)
        if crt.stat().st_size == crt_size and key.stat().st_size == key_size:
            return crt, key
    raise AssertionError("no same-size certificate in 40 tries")


def test_tls_options_must_come_together(tmp_path):
    from conftest import run_hugbucket
    p = run_hugbucket("serve", "--s3-tls-cert", tmp_path / "x.crt", "--check-config")
    assert p.returncode == 2
    assert b"--s3-tls-cert and --s3-tls-key" in p.stderr
    # A missing file fails at start with its name, not on the first client.
    p = run_hugbucket("serve", "--mode", "s3", "--data-dir", tmp_path / "d",
                      "--s3-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
                      "--s3-tls-cert", tmp_path / "missing.crt",
                      "--s3-tls-key", tmp_path / "missing.key", timeout=60)
    assert p.returncode != 0
    assert b"missing.crt" in p.stderr, p.stderr
