"""The gateway behaves as a huggingface_hub user expects against the real Hub (issue 16):
`hugbucket serve` in front of a separate `hugbucket hub` in its strict modes (a second
user, `--strict-deletes`), reached through a real HTTP proxy (tinyproxy, started here),
with its Hub token read from the token file `hf auth login` writes (no HF_TOKEN).

* Buckets created over S3 (CreateBucket) and FTP (MKD) are private: the hub refuses an
  anonymous read (401) and another user's read (404), both `RepoNotFound`.
* CopyObject is a batch `copyFile` (the hub counts the copies it applied).
* Deleting a missing key is a success (S3 204 / DeleteObjects "Deleted") although the hub
  reports the `deleteFile` as failed.
* Every Hub and CAS request (fetch URLs included) went through the proxy, and the gateway
  says who it is in User-Agent.
* Under `serve --hub-fetch-url-ttl`, expired fetch URLs are refreshed without the S3
  client noticing.
"""

from __future__ import annotations

import ftplib
import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import free_port, stop_process, wait_for_port
from hub_util import HubServer
from s3_util import ServeS3

FTP_USER, FTP_PASSWORD = "realhub", "realhub-pass-8Kq2"
ALICE = "hf_alice_token_realhub"


class Proxy:
    """tinyproxy on a free loopback port, with its own config and log."""

    def __init__(self, root: Path):
        self.port = free_port()
        self.log = root / "tinyproxy.log"
        conf = root / "tinyproxy.conf"
        conf.write_text(f'Port {self.port}\nListen 127.0.0.1\nTimeout 600\n'
                        f'LogFile "{self.log}"\nLogLevel Info\nMaxClients 200\n'
                        f'Allow 127.0.0.1\nDisableViaHeader Yes\n')
        exe = shutil.which("tinyproxy")
        assert exe, "tinyproxy is not installed (tests/run.sh installs it)"
        self.proc = subprocess.Popen([exe, "-d", "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=30, proc=self.proc)
        self.url = f"http://127.0.0.1:{self.port}"

    def requests_to(self, hub_port: int) -> list[str]:
        """The request lines tinyproxy forwarded to the hub."""
        marker = f"http://127.0.0.1:{hub_port}/"
        return [line.split(": ", 1)[1] for line in self.log.read_text().splitlines()
                if "Request (file descriptor" in line and marker in line]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("realhub")
    hub = HubServer(root / "hub", root / "hub.log",
                    extra_args=("--user", f"alice:{ALICE}", "--strict-deletes")).start()
    proxy = Proxy(root)
    # The token only in the file `hf auth login` writes: $HF_HOME/token.
    hf_home = root / "hf_home"
    hf_home.mkdir()
    (hf_home / "token").write_text(hub.token + "\n")
    ftp_port = free_port()
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(hf_home),
           "HTTP_PROXY": proxy.url, "HTTPS_PROXY": proxy.url,
           "NO_PROXY": "", "no_proxy": "",
           "FTP_USERNAME": FTP_USER, "FTP_PASSWORD": FTP_PASSWORD}
    assert "HF_TOKEN" not in os.environ
    srv = ServeS3(root / "data", root / "serve.log", mode="both", env=env,
                  extra_args=("--ftp-listen", f"127.0.0.1:{ftp_port}",
                              "--ftp-passive-ports", "46000-46999")).start()
    wait_for_port(ftp_port, timeout=60, proc=srv.proc)
    srv.ftp_port = ftp_port
    yield srv, hub, proxy
    code = srv.stop()
    stop_process(proxy.proc)
    hub.stop()
    assert code == 0, f"serve exited with {code}: {srv.log_tail()}"


def ftp_login(srv) -> ftplib.FTP:
    f = ftplib.FTP()
    f.connect("127.0.0.1", srv.ftp_port, timeout=120)
    f.login(FTP_USER, FTP_PASSWORD)
    return f


def test_buckets_created_over_s3_and_ftp_are_private(setup):
    srv, hub, _ = setup
    srv.client().create_bucket(Bucket="via-s3")
    f = ftp_login(srv)
    assert f.sendcmd("MKD /via-ftp").startswith("257")
    f.quit()
    for name in ("via-s3", "via-ftp"):
        path = f"/api/buckets/hugbucket/{name}"
        owner = hub.http("GET", path)
        assert owner.status_code == 200 and owner.json()["private"] is True, owner.text
        anonymous = hub.http("GET", path, token=None)
        assert anonymous.status_code == 401
        assert anonymous.headers["X-Error-Code"] == "RepoNotFound"
        foreign = hub.http("GET", path, token=ALICE)
        assert foreign.status_code == 404
        assert foreign.headers["X-Error-Code"] == "RepoNotFound"
        # Its files too.
        r = hub.http("POST", f"{path}/paths-info", token=None, json={"paths": ["x"]})
        assert r.status_code == 401
        r = hub.http("GET", f"{path}/xet-read-token", token=ALICE)
        assert r.status_code == 404


def test_copy_object_sends_copy_file(setup):
    srv, hub, _ = setup
    s3 = srv.client()
    s3.create_bucket(Bucket="copies")
    data = os.urandom(200_000)
    s3.put_object(Bucket="copies", Key="src.bin", Body=data)
    before = hub.stats()
    s3.copy_object(Bucket="copies", Key="dst.bin",
                   CopySource={"Bucket": "copies", "Key": "src.bin"})
    after = hub.stats()
    assert after["copy_ops"] == before["copy_ops"] + 1
    assert after["requests"]["batch"] == before["requests"]["batch"] + 1
    assert s3.get_object(Bucket="copies", Key="dst.bin")["Body"].read() == data


def test_deleting_missing_keys_succeeds(setup):
    srv, hub, _ = setup
    s3 = srv.client()
    s3.create_bucket(Bucket="deletes")
    s3.put_object(Bucket="deletes", Key="there", Body=b"x")
    # The hub (strict) reports a deleteFile of a missing path as failed...
    r = hub.http("POST", "/api/buckets/hugbucket/deletes/batch",
                 data=b'{"type":"deleteFile","path":"never"}\n')
    assert r.status_code == 422 and "not found" in r.json()["failed"][0]["error"]
    # ...which S3 reports as the success it is.
    resp = s3.delete_object(Bucket="deletes", Key="never")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 204
    out = s3.delete_objects(Bucket="deletes", Delete={
        "Objects": [{"Key": "there"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in out.get("Deleted", [])) == ["missing", "there"]
    assert out.get("Errors", []) == []
    f = ftp_login(srv)
    with pytest.raises(ftplib.error_perm):
        f.size("/deletes/there")
    f.quit()


def test_hub_and_cas_requests_go_through_the_proxy(setup):
    srv, hub, proxy = setup
    s3 = srv.client()
    s3.create_bucket(Bucket="proxied")
    data = os.urandom(3 << 20)
    s3.put_object(Bucket="proxied", Key="p.bin", Body=data)
    assert s3.get_object(Bucket="proxied", Key="p.bin")["Body"].read() == data
    deadline = time.monotonic() + 10
    while True:
        seen = proxy.requests_to(hub.port)
        paths = " ".join(seen)
        wanted = ["/api/whoami-v2", "/api/buckets/hugbucket/proxied", "/batch",
                  "/xet-write-token", "/xorb", "/shards", "/reconstructions/",
                  "/fetch/xorbs/"]
        if all(w in paths for w in wanted) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = [w for w in wanted if w not in paths]
    assert not missing, f"not proxied: {missing}; proxy saw {seen[:20]}"
    # The gateway named itself (the hub logs each request's User-Agent).
    agents = {line.split("user_agent=", 1)[1].split()[0]
              for line in Path(hub.log_path).read_text(errors="replace").splitlines()
              if "user_agent=" in line and "path=/api/whoami-v2" in line}
    assert any(a.startswith("hugbucket/") for a in agents), agents
    assert not any("hf_xet" in a for a in agents), agents


def test_expired_fetch_urls_under_serve_are_refreshed(tmp_path):
    """`serve --hub-fetch-url-ttl 1s`: the embedded hub's fetch URLs expire after a second.
    A GET after that (the gateway still holds the reconstruction it cached with the old
    URLs; the object is larger than the chunk cache, so it is fetched again) is refused by
    the hub, re-queried by the gateway, and byte-identical."""
    srv = ServeS3(tmp_path / "data", tmp_path / "serve.log",
                  extra_args=("--hub-fetch-url-ttl", "1s", "--cache-size", "1M")).start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="ttl")
        data = os.urandom(6 << 20)
        s3.put_object(Bucket="ttl", Key="k", Body=data)
        assert s3.get_object(Bucket="ttl", Key="k")["Body"].read() == data
        time.sleep(2.2)
        assert s3.get_object(Bucket="ttl", Key="k")["Body"].read() == data
        stats = requests.get(f"{srv.hub_url}/api/_hugbucket/stats", timeout=30,
                             headers={"Authorization": f"Bearer {srv.hub_token}"}).json()
        assert stats["fetch_expired"] >= 1, stats
        assert stats["fetch_range_refused"] == 0, stats
    finally:
        code = srv.stop()
    assert code == 0, srv.log_tail()
