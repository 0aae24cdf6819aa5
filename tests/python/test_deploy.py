"""The deployment files under deploy/ (docs/deploy.md) are valid for the tools that read
them, and the Grafana dashboard queries only metrics a running node exports.

* deploy/haproxy.cfg: ``haproxy -c`` with its defaults (the compose service names) and
  with every address set through its environment variables, as a one-host test sets them.
* deploy/nginx.conf: ``nginx -t``.
* deploy/compose.yaml: ``docker compose config`` (or Debian's ``docker-compose config``
  where the Docker CLI has no compose plugin; neither needs a Docker engine) accepts it,
  and refuses it without the secrets; its structure is checked too (services, build
  context and Dockerfile, the HAProxy config mount, per-node passive ranges matching the
  HAProxy defaults, ports).
* deploy/kubernetes/hugbucket.yaml: a Deployment with readiness on /ready and a Service
  selecting its pods (structure only; there is no cluster here).
* deploy/grafana/hugbucket.json: every metric name its panels query, and every label they
  group by, is exported on /metrics by a `serve` after some S3 and FTP traffic.
"""

from __future__ import annotations

import ftplib
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from conftest import free_port
from s3_util import ServeS3, bucket_name

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

pytestmark = pytest.mark.timeout(300)


def _tool(name: str) -> str:
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None)
    assert path, f"{name} is not installed (tests/run.sh installs it from Debian)"
    return path


def _haproxy_env(overrides: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HB_")}
    env.update(overrides)
    return env


def _haproxy_check(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([_tool("haproxy"), "-c", "-f", str(DEPLOY / "haproxy.cfg")],
                          capture_output=True, env=env, timeout=60, check=False)


def test_haproxy_config_is_valid():
    # Defaults: the compose services gw1..gw3 (unresolvable here, which HAProxy accepts
    # thanks to init-addr none and resolves at run time).
    p = _haproxy_check(_haproxy_env({}))
    assert p.returncode == 0, p.stderr.decode()
    assert b"Configuration file is valid" in p.stdout + p.stderr
    # One host: three nodes on distinct ports, the passive ranges shifted, no warnings.
    env = {"HB_S3_BIND": "127.0.0.1:19000", "HB_FTP_BIND": "127.0.0.1:12121",
           "HB_PASV_ADDR": "127.0.0.1"}
    for n in (1, 2, 3):
        env.update({f"HB_NODE{n}_HOST": "127.0.0.1", f"HB_NODE{n}_S3": str(19000 + 10 * n),
                    f"HB_NODE{n}_ADMIN": str(19001 + 10 * n),
                    f"HB_NODE{n}_FTP": str(12121 + 10 * n),
                    f"HB_NODE{n}_PASV": f"{31000 + 10 * n}-{31009 + 10 * n}",
                    f"HB_NODE{n}_PASV_SHIFT": "+1000"})
    p = _haproxy_check(_haproxy_env(env))
    out = (p.stdout + p.stderr).decode()
    assert p.returncode == 0, out
    assert "WARNING" not in out and "ALERT" not in out, out
    # A broken file is refused (the check is not a no-op).
    broken = DEPLOY.parent / "target" / "haproxy-broken.cfg"
    broken.parent.mkdir(exist_ok=True)
    broken.write_text((DEPLOY / "haproxy.cfg").read_text().replace("balance roundrobin",
                                                                  "balance nonsense"))
    p = subprocess.run([_tool("haproxy"), "-c", "-f", str(broken)], capture_output=True,
                       env=_haproxy_env(env), timeout=60, check=False)
    assert p.returncode != 0


def test_haproxy_config_balances_s3_round_robin_with_ready_checks():
    cfg = "\n".join(line.split("#", 1)[0].rstrip()
                    for line in (DEPLOY / "haproxy.cfg").read_text().splitlines())
    s3 = cfg.split("backend s3_nodes", 1)[1].split("\nfrontend", 1)[0]
    assert "balance roundrobin" in s3
    assert "option httpchk GET /ready" in s3
    assert "cookie" not in s3 and "stick" not in s3 and "prefer-last-server" not in s3
    assert len(re.findall(r"^\s+server node\d .* check port ", s3, re.M)) == 3


def test_nginx_config_is_valid(tmp_path):
    p = subprocess.run([_tool("nginx"), "-t", "-c", str(DEPLOY / "nginx.conf")],
                       capture_output=True, timeout=60, check=False)
    assert p.returncode == 0, p.stderr.decode()
    assert b"test is successful" in p.stderr
    broken = tmp_path / "nginx.conf"
    broken.write_text((DEPLOY / "nginx.conf").read_text().replace("keepalive 64;",
                                                                  "keepalive;"))
    p = subprocess.run([_tool("nginx"), "-t", "-c", str(broken)], capture_output=True,
                       timeout=60, check=False)
    assert p.returncode != 0


def _compose_command() -> list[str]:
    """`docker compose` where the Docker CLI has the plugin, else Debian's `docker-compose`
    (installed by tests/run.sh); both validate a compose file without a Docker engine."""
    if shutil.which("docker") is not None:
        p = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30,
                           check=False)
        if p.returncode == 0:
            return ["docker", "compose"]
    return [_tool("docker-compose")]


def test_compose_file_structure():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    assert set(services) == {"hub", "gw1", "gw2", "gw3", "balancer"}
    hub = services["hub"]
    assert hub["command"][0] == "hub"
    assert "0.0.0.0:7860" in hub["command"]
    for name in ("hub", "gw1", "gw2", "gw3"):
        build = services[name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == ROOT, context
        assert (context / build["dockerfile"]).is_file()
    cfg = (DEPLOY / "haproxy.cfg").read_text()
    for n in (1, 2, 3):
        gw = services[f"gw{n}"]
        env = gw["environment"]
        # All nodes on the one hub, with the same S3 keys.
        assert env["HF_ENDPOINT"] == "http://hub:7860"
        assert env["HF_TOKEN"] == hub["environment"]["HUGBUCKET_HUB_TOKENS"]
        assert env["AWS_ACCESS_KEY_ID"].startswith("${AWS_ACCESS_KEY_ID")
        assert env["HUGBUCKET_FTP_PUBLIC_HOST"]
        assert gw["command"] == ["serve"]
        # The node's passive range is what the balancer forwards to it.
        pasv = env["HUGBUCKET_FTP_PASSIVE_PORTS"]
        assert f'bind "${{HB_PASV_ADDR-}}:${{HB_NODE{n}_PASV-{pasv}}}"' in cfg, pasv
        assert f'"${{HB_NODE{n}_HOST-gw{n}}}' in cfg
        assert int(env["HUGBUCKET_SHUTDOWN_TIMEOUT"]) < int(gw["stop_grace_period"].rstrip("s"))
    ranges = [services[f"gw{n}"]["environment"]["HUGBUCKET_FTP_PASSIVE_PORTS"] for n in (1, 2, 3)]
    spans = sorted(tuple(map(int, r.split("-"))) for r in ranges)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), "passive ranges overlap"
    balancer = services["balancer"]
    assert balancer["image"].startswith("haproxy:")
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    assert {"9000:9000", "2121:2121", f"{spans[0][0]}-{spans[-1][1]}:{spans[0][0]}-{spans[-1][1]}"} \
        <= set(balancer["ports"])
    assert set(doc["volumes"]) == {"hub-data", "gw1-data", "gw2-data", "gw3-data"}
    # The compose tool itself validates the file (schema, interpolation) as written.
    env = dict(os.environ, HUB_TOKEN="t", AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s")
    compose = _compose_command() + ["-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"]
    p = subprocess.run(compose, capture_output=True, env=env, timeout=60, check=False)
    assert p.returncode == 0, p.stderr.decode()
    # Without the secrets it must refuse to start rather than run with empty keys.
    bare = {k: v for k, v in env.items()
            if k not in ("HUB_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    p = subprocess.run(compose, capture_output=True, env=bare, timeout=60, check=False)
    assert p.returncode != 0, "compose accepted the file without HUB_TOKEN and S3 keys"


def test_kubernetes_example_structure():
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "hugbucket.yaml").read_text()))
    kinds = {d["kind"]: d for d in docs}
    assert set(kinds) == {"Deployment", "Service"}
    dep, svc = kinds["Deployment"], kinds["Service"]
    pod = dep["spec"]["template"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (c,) = pod["spec"]["containers"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["port"] == "admin" and ports["admin"] == 9001
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["HUGBUCKET_S3_LISTEN"].endswith(f":{ports['s3']}")
    assert env["HUGBUCKET_ADMIN_LISTEN"].endswith(":9001")
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert int(env["HUGBUCKET_SHUTDOWN_TIMEOUT"]) < grace
    assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["s3"]


# ------------------------------------------------------------------- Grafana dashboard

def _dashboard_queries() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "hugbucket.json").read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []))
            walk(p.get("panels", []))

    walk(dash["panels"])
    for var in dash["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            exprs.append(q["query"])
    assert len(exprs) > 20
    return exprs


def _exported(metrics_text: str) -> dict[str, set[str]]:
    """``{series name: label names seen}`` of a Prometheus text exposition."""
    out: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        assert m, f"unparsable exposition line: {line!r}"
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"", m.group(3) or ""))
        out.setdefault(m.group(1), set()).update(labels)
    return out


def _traffic(server: ServeS3, ftp_port: int) -> None:
    s3 = server.client()
    bucket = bucket_name("dash")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(3 << 20)
    s3.put_object(Bucket=bucket, Key="a.bin", Body=body)
    for _ in range(2):  # the second read is served by the chunk cache
        assert s3.get_object(Bucket=bucket, Key="a.bin")["Body"].read() == body
    s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="missing")
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin")
    part = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"], PartNumber=1,
                          Body=body)
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1,
                                                             "ETag": part["ETag"]}]})
    with ftplib.FTP() as ftp:
        ftp.connect("127.0.0.1", ftp_port, timeout=30)
        ftp.login(server.access_key, server.secret_key)
        ftp.storbinary(f"STOR /{bucket}/f.txt", io.BytesIO(b"over ftp\n"))
        got = io.BytesIO()
        ftp.retrbinary(f"RETR /{bucket}/f.txt", got.write)
        assert got.getvalue() == b"over ftp\n"


def test_dashboard_queries_only_exported_metrics(tmp_path):
    ftp_port = free_port()
    pasv = free_port()
    server = ServeS3(tmp_path / "data", tmp_path / "serve.log", mode="both",
                     extra_args=("--ftp-listen", f"127.0.0.1:{ftp_port}",
                                 "--ftp-passive-ports", f"{pasv}-{pasv}")).start()
    try:
        _traffic(server, ftp_port)
        exported = _exported(server.metrics())
    finally:
        server.stop()
    used: set[str] = set()
    for expr in _dashboard_queries():
        names = set(re.findall(r"\bhugbucket_[a-z0-9_]+", expr))
        assert names, f"query without a hugbucket metric: {expr}"
        used |= names
        missing = names - exported.keys()
        assert not missing, f"not exported: {sorted(missing)} (query: {expr})"
        # Labels grouped by (Prometheus adds `instance` when scraping).
        for group in re.findall(r"\bby \(([^)]*)\)", expr):
            for label in (g.strip() for g in group.split(",")):
                if label == "instance":
                    continue
                assert any(label in exported[n] for n in names), \
                    f"no series of {sorted(names)} has label {label!r} (query: {expr})"
    # The list: requests, errors and latency by operation, bytes in/out, Hub calls
    # and 429s, cache hit ratio and size, uploads in flight.
    for needed in ("hugbucket_s3_requests_total", "hugbucket_s3_request_duration_seconds_bucket",
                   "hugbucket_s3_received_bytes_total", "hugbucket_s3_sent_bytes_total",
                   "hugbucket_upstream_requests_total", "hugbucket_upstream_rate_limited_total",
                   "hugbucket_cache_hits_total", "hugbucket_cache_disk_bytes",
                   "hugbucket_uploads_in_flight"):
        assert needed in used, needed
    assert exported["hugbucket_upstream_requests_total"] == {"class"}
    assert {"operation", "le"} <= exported["hugbucket_s3_request_duration_seconds_bucket"]
