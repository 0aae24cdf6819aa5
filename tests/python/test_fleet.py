"""A fleet: one `hugbucket hub`, three `hugbucket serve --fleet` nodes pointed at it
(HF_ENDPOINT + HF_TOKEN) and a real HAProxy in front (round robin per request, no
stickiness; an FTP frontend in TCP mode, sticky by connection, passive data connections
going straight to the node that announced them).

What it shows (issue 18): multipart uploads whose parts land on different nodes, driven by
the aws cli, boto3 and node by node; read-after-write across nodes for PUT and DELETE; no
lost acknowledged write and no partial object when a node is SIGKILLed under load; lftp
mirroring through the balancer's FTP port.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, ResponseStreamingError

from conftest import (free_port, hugbucket_bin_path, stop_process, wait_for_port,
                      write_xof_file, xof_bytes)
from hub_util import HubServer
from s3_util import error_code, run, sha256_file

ACCESS_KEY = "FLEETKEYFLEETKEY0001"
SECRET_KEY = "fleet-secret-fleet-secret-fleet-secret-00"
FTP_USER, FTP_PASSWORD = "fleet", "fleet-ftp-password"
MiB = 1 << 20

#: Environment that must not leak into the nodes or the clients.
_CLEAR = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
          "AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "HF_TOKEN", "HF_ENDPOINT", "HUGBUCKET_CONFIG",
          "MODE", "HUGBUCKET_RUNTIME", "HUGBUCKET_CORES", "HUGBUCKET_FLEET")


def clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in _CLEAR}


class Node:
    """One `hugbucket serve --mode both --fleet` on fixed ports (kept across restarts) and
    its own passive FTP port range."""

    def __init__(self, name: str, root: Path, hub: HubServer, passive: tuple[int, int]):
        self.name = name
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.hub = hub
        self.s3_port, self.ftp_port, self.admin_port = free_port(), free_port(), free_port()
        self.passive = passive
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Node":
        argv = [str(hugbucket_bin_path()), "serve", "--mode", "both", "--fleet",
                "--runtime", "tokio", "--cores", "1",
                "--data-dir", str(self.data_dir),
                "--s3-listen", f"127.0.0.1:{self.s3_port}",
                "--ftp-listen", f"127.0.0.1:{self.ftp_port}",
                "--ftp-passive-ports", f"{self.passive[0]}-{self.passive[1]}",
                "--ftp-public-host", "127.0.0.1",
                "--admin-listen", f"127.0.0.1:{self.admin_port}"]
        env = clean_env()
        env.update({
            "HF_ENDPOINT": self.hub.url, "HF_TOKEN": self.hub.token,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "FTP_USERNAME": FTP_USER, "FTP_PASSWORD": FTP_PASSWORD,
            "RUST_LOG": os.environ.get("RUST_LOG", "info,sled=warn"),
        })
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, env=env)
        for port in (self.s3_port, self.ftp_port, self.admin_port):
            wait_for_port(port, timeout=60, proc=self.proc)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"


def s3_client(endpoint: str, attempts: int = 1, pool: int = 10):
    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, max_pool_connections=pool,
                      retries={"max_attempts": attempts, "mode": "standard"}))


HAPROXY_CFG = """
global
    maxconn 512
defaults
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    retries 3
    option redispatch 1
frontend s3
    mode http
    bind 127.0.0.1:{s3_port}
    default_backend s3_nodes
backend s3_nodes
    mode http
    balance roundrobin
    option httpchk GET /ready
{s3_servers}
frontend ftp
    mode tcp
    bind 127.0.0.1:{ftp_port}
    default_backend ftp_nodes
backend ftp_nodes
    mode tcp
    balance roundrobin
{ftp_servers}
"""


class Balancer:
    """HAProxy from Debian, configured by the test."""

    def __init__(self, root: Path, nodes: list[Node]):
        self.s3_port, self.ftp_port = free_port(), free_port()
        self.cfg = root / "haproxy.cfg"
        self.log_path = root / "haproxy.log"
        s3 = "\n".join(f"    server {n.name} 127.0.0.1:{n.s3_port} check port {n.admin_port}"
                       " inter 1s fall 1 rise 1" for n in nodes)
        ftp = "\n".join(f"    server {n.name} 127.0.0.1:{n.ftp_port} check inter 1s fall 1 rise 1"
                        for n in nodes)
        self.cfg.write_text(HAPROXY_CFG.format(s3_port=self.s3_port, ftp_port=self.ftp_port,
                                               s3_servers=s3, ftp_servers=ftp))
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Balancer":
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        assert Path(haproxy).exists(), "haproxy is not installed (APT_PACKAGES in tests/run.sh)"
        check = subprocess.run([haproxy, "-c", "-f", str(self.cfg)], capture_output=True)
        assert check.returncode == 0, check.stderr.decode() + check.stdout.decode()
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([haproxy, "-db", "-f", str(self.cfg)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        wait_for_port(self.s3_port, proc=self.proc)
        wait_for_port(self.ftp_port, proc=self.proc)
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"


class Fleet:
    def __init__(self, root: Path):
        self.hub = HubServer(root / "hub", root / "hub.log").start()
        passive = [(46000 + 100 * i, 46000 + 100 * i + 19) for i in range(3)]
        self.nodes = [Node(f"node{i}", root, self.hub, passive[i]) for i in range(3)]
        for n in self.nodes:
            n.start()
        self.lb = Balancer(root, self.nodes).start()
        self.root = root
        # Round robin only helps once HAProxy saw every node pass its check.
        self.wait_all_up()

    def wait_all_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        seen: set[int] = set()
        while len(seen) < len(self.nodes):
            assert time.monotonic() < deadline, f"balancer reached only {seen}"
            before = [self.s3_requests(n) for n in self.nodes]
            s3_client(self.lb.endpoint).list_buckets()
            after = [self.s3_requests(n) for n in self.nodes]
            seen |= {i for i, (a, b) in enumerate(zip(before, after)) if b > a}

    @staticmethod
    def s3_requests(node: Node, operation: str | None = None) -> int:
        """Requests the node served (of ``operation``), from its /metrics."""
        import urllib.request
        with urllib.request.urlopen(f"http://127.0.0.1:{node.admin_port}/metrics",
                                    timeout=10) as r:
            text = r.read().decode()
        total = 0
        for line in text.splitlines():
            if line.startswith("hugbucket_s3_requests_total{") and (
                    operation is None or f'operation="{operation}"' in line):
                total += int(float(line.rsplit(" ", 1)[1]))
        return total

    def hub_calls(self, route: str) -> int:
        return int(self.hub.stats()["requests"].get(route, 0))

    def stop(self) -> None:
        if self.lb.proc is not None:
            stop_process(self.lb.proc)
        for n in self.nodes:
            n.stop()
        self.hub.stop()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    f = Fleet(tmp_path_factory.mktemp("fleet"))
    yield f
    f.stop()


def aws_env(home: Path) -> dict:
    env = clean_env()
    env.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1", "HOME": str(home),
                "AWS_CONFIG_FILE": str(home / "aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials")})
    return env


# --------------------------------------------------------------------------------------


def test_aws_cli_and_boto3_multipart_through_the_balancer(fleet, tmp_path):
    lb = s3_client(fleet.lb.endpoint)
    lb.create_bucket(Bucket="fleet-big")
    parts_before = [fleet.s3_requests(n, "UploadPart") for n in fleet.nodes]

    src = write_xof_file(tmp_path / "big.bin", "fleet/aws", 200 * MiB)
    env = aws_env(tmp_path)
    run(["aws", "--endpoint-url", fleet.lb.endpoint, "s3", "cp", src, "s3://fleet-big/aws.bin"],
        env)
    back = tmp_path / "back.bin"
    run(["aws", "--endpoint-url", fleet.lb.endpoint, "s3", "cp", "s3://fleet-big/aws.bin", back],
        env)
    assert sha256_file(back) == sha256_file(src)
    back.unlink()
    src.unlink()

    data = xof_bytes("fleet/boto3", 64 * MiB)
    (tmp_path / "boto.bin").write_bytes(data)
    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB,
                         max_concurrency=8, use_threads=True)
    s3_client(fleet.lb.endpoint, pool=16).upload_file(
        str(tmp_path / "boto.bin"), "fleet-big", "boto.bin", Config=cfg)
    (tmp_path / "boto.bin").unlink()
    body = lb.get_object(Bucket="fleet-big", Key="boto.bin")["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()

    # The balancer really spread the parts: every node took some.
    parts = [fleet.s3_requests(n, "UploadPart") - b for n, b in zip(fleet.nodes, parts_before)]
    assert all(p > 0 for p in parts), parts
    assert sum(parts) >= 25 + 8, parts
    # No upload is left open, and the records are not listed as objects.
    assert lb.list_multipart_uploads(Bucket="fleet-big").get("Uploads", []) == []
    keys = [o["Key"] for o in lb.list_objects_v2(Bucket="fleet-big")["Contents"]]
    assert keys == ["aws.bin", "boto.bin"]


def test_multipart_driven_node_by_node(fleet):
    a, b, c = (s3_client(n.endpoint) for n in fleet.nodes)
    a.create_bucket(Bucket="fleet-mpu")
    p1, p2 = xof_bytes("fleet/p1", 5 * MiB), xof_bytes("fleet/p2", 1234)
    up = a.create_multipart_upload(Bucket="fleet-mpu", Key="doc.bin",
                                   ContentType="application/x-fleet")["UploadId"]
    e1 = b.upload_part(Bucket="fleet-mpu", Key="doc.bin", UploadId=up, PartNumber=1,
                       Body=p1)["ETag"]
    e2 = c.upload_part(Bucket="fleet-mpu", Key="doc.bin", UploadId=up, PartNumber=2,
                       Body=p2)["ETag"]
    listed = a.list_parts(Bucket="fleet-mpu", Key="doc.bin", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in listed] == \
        [(1, e1, len(p1)), (2, e2, len(p2))]
    uploads = c.list_multipart_uploads(Bucket="fleet-mpu")["Uploads"]
    assert [(u["UploadId"], u["Key"]) for u in uploads] == [(up, "doc.bin")]
    b.complete_multipart_upload(
        Bucket="fleet-mpu", Key="doc.bin", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1},
                                   {"PartNumber": 2, "ETag": e2}]})
    for client in (a, b, c):
        got = client.get_object(Bucket="fleet-mpu", Key="doc.bin")
        assert got["Body"].read() == p1 + p2
        assert got["ContentType"] == "application/x-fleet"
        with pytest.raises(ClientError) as err:
            client.list_parts(Bucket="fleet-mpu", Key="doc.bin", UploadId=up)
        assert error_code(err.value) == "NoSuchUpload"

    # Abort through C of an upload created through A (with a part taken by B).
    up2 = a.create_multipart_upload(Bucket="fleet-mpu", Key="gone.bin")["UploadId"]
    b.upload_part(Bucket="fleet-mpu", Key="gone.bin", UploadId=up2, PartNumber=1, Body=b"x")
    c.abort_multipart_upload(Bucket="fleet-mpu", Key="gone.bin", UploadId=up2)
    for client in (a, b):
        with pytest.raises(ClientError) as err:
            client.list_parts(Bucket="fleet-mpu", Key="gone.bin", UploadId=up2)
        assert error_code(err.value) == "NoSuchUpload"
    assert a.list_multipart_uploads(Bucket="fleet-mpu").get("Uploads", []) == []
    assert [o["Key"] for o in b.list_objects_v2(Bucket="fleet-mpu")["Contents"]] == ["doc.bin"]


def test_read_after_write_across_nodes(fleet):
    """1000 rounds: PUT through one node, then HEAD/GET/LIST through another see the new
    version; DELETE through a third, then the second (which just read it) sees it gone."""
    clients = [s3_client(n.endpoint) for n in fleet.nodes]
    clients[0].create_bucket(Bucket="fleet-raw")
    key = "raw/obj"
    rounds = 1000
    calls_before = {r: fleet.hub_calls(r) for r in ("paths_info", "tree")}
    for i in range(rounds):
        w, r, d = clients[i % 3], clients[(i + 1) % 3], clients[(i + 2) % 3]
        body = f"round {i} {'x' * (i % 50)}".encode()
        etag = w.put_object(Bucket="fleet-raw", Key=key, Body=body)["ETag"]
        assert r.head_object(Bucket="fleet-raw", Key=key)["ETag"] == etag, i
        got = r.get_object(Bucket="fleet-raw", Key=key)
        assert (got["ETag"], got["Body"].read()) == (etag, body), i
        listed = r.list_objects_v2(Bucket="fleet-raw", Prefix="raw/")["Contents"]
        assert [(o["Key"], o["ETag"], o["Size"]) for o in listed] == [(key, etag, len(body))], i
        d.delete_object(Bucket="fleet-raw", Key=key)
        with pytest.raises(ClientError) as err:
            r.head_object(Bucket="fleet-raw", Key=key)
        assert err.value.response["Error"]["Code"] in ("404", "NoSuchKey"), i
        with pytest.raises(ClientError) as err:
            r.get_object(Bucket="fleet-raw", Key=key)
        assert error_code(err.value) == "NoSuchKey", i
        assert r.list_objects_v2(Bucket="fleet-raw", Prefix="raw/").get("Contents", []) == [], i
    # The cost in Hub calls: one paths-info per HEAD/GET (two reads of the object and two
    # of its absence per round), one tree page per LIST.
    paths_info = fleet.hub_calls("paths_info") - calls_before["paths_info"]
    tree = fleet.hub_calls("tree") - calls_before["tree"]
    assert paths_info <= 4 * rounds + 10, paths_info
    assert tree <= 2 * rounds + 10, tree


def test_lftp_mirror_through_the_balancer(fleet, tmp_path):
    assert shutil.which("lftp"), "lftp is not installed (APT_PACKAGES in tests/run.sh)"
    s3 = s3_client(fleet.lb.endpoint)
    s3.create_bucket(Bucket="fleet-ftp")
    tree = tmp_path / "site"
    want = {}
    for i in range(50):
        rel = f"d{i % 5}/sub{i % 2}/file-{i:02d}.bin"
        data = xof_bytes(f"fleet/ftp/{i}", 1000 + 997 * i)
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
        want[f"site/{rel}"] = hashlib.sha256(data).hexdigest()
    script = (f"set ftp:ssl-allow no; set ftp:passive-mode yes; set net:max-retries 2; "
              f"set cmd:fail-exit yes; open -u {FTP_USER},{FTP_PASSWORD} -p {fleet.lb.ftp_port} "
              f"127.0.0.1; mirror -R --parallel=4 --no-perms '{tree}' /fleet-ftp/site; bye")
    p = subprocess.run(["lftp", "-c", script], capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    got = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket="fleet-ftp"):
        for o in page.get("Contents", []):
            body = s3.get_object(Bucket="fleet-ftp", Key=o["Key"])["Body"].read()
            got[o["Key"]] = hashlib.sha256(body).hexdigest()
    assert got == want


def test_node_killed_under_load_loses_no_acknowledged_write(fleet):
    lb_bucket = "fleet-crash"
    s3_client(fleet.lb.endpoint).create_bucket(Bucket=lb_bucket)
    stop = threading.Event()
    acked: dict[str, bytes] = {}
    attempted: dict[str, bytes] = {}
    failures: list[str] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        # Retries as the SDK does them (standard mode), through the balancer.
        client = s3_client(fleet.lb.endpoint, attempts=6, pool=2)
        rng = random.Random(t)
        n = 0
        while not stop.is_set():
            key = f"crash/{t}/{n:04d}"
            body = xof_bytes(f"fleet/crash/{t}/{n}", rng.choice([1, 3000, 200_000, 2 * MiB]))
            with lock:
                attempted[key] = body
            try:
                client.put_object(Bucket=lb_bucket, Key=key, Body=body)
                with lock:
                    acked[key] = body
                got = read_retrying(client, lb_bucket, key)
                if got != body:
                    failures.append(f"{key}: read back {len(got)} bytes, wrote {len(body)}")
            except Exception as e:  # noqa: BLE001 - every failure is reported below
                failures.append(f"{key}: {e!r}")
            n += 1

    def read_retrying(client, bucket: str, key: str) -> bytes:
        # A body cut by the kill after its headers is not retried by the SDK; the client
        # retries it, through the balancer, as an application does.
        for attempt in range(5):
            try:
                return client.get_object(Bucket=bucket, Key=key)["Body"].read()
            except (ResponseStreamingError, ConnectionError):
                with lock:
                    cut_reads.append(key)
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    cut_reads: list[str] = []
    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    victim = fleet.nodes[1]
    try:
        time.sleep(3)
        served = fleet.s3_requests(victim)
        victim.kill()
        killed_at = len(acked)
        time.sleep(4)
        victim.start()
        time.sleep(3)
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=120)
    assert not failures, failures[:10]
    # The victim was serving the load when killed, and writes went on after.
    assert served > 0 and killed_at > 0 and len(acked) > killed_at, \
        (served, killed_at, len(acked))
    print(f"{len(acked)} writes acknowledged, {killed_at} before the kill; "
          f"{len(cut_reads)} reads cut by the kill and retried")

    # Every acknowledged write reads back whole through every node; nothing else (and
    # nothing partial) is listed.
    for node in fleet.nodes:
        client = s3_client(node.endpoint, pool=8)
        listed = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=lb_bucket):
            for o in page.get("Contents", []):
                listed[o["Key"]] = o["Size"]
        assert set(acked) <= set(listed), sorted(set(acked) - set(listed))[:5]
        for key, size in listed.items():
            assert key in attempted, key
            assert size == len(attempted[key]), (key, size)
        for key, body in acked.items():
            got = client.get_object(Bucket=lb_bucket, Key=key)["Body"].read()
            assert got == body, (node.name, key)
