"""The gateway under the Hub's rate limits, and what it spends of them (issue 16).

`hugbucket serve` runs with its embedded hub emulating huggingface.co's rate limits
(`--hub-rate-limit api=30/5s`: 429s with `RateLimit` / `RateLimit-Policy` /
`Retry-After`). Real clients must see no error: the gateway waits for the resets the
headers announce. The call counts come from the hub's own request counters
(`/api/_hugbucket/stats`) and the gateway's `/metrics`.

* `aws s3 sync` of 500 small files up and back down, then a full listing, under an API
  limit of 30 calls per 5 s: no client-visible error (the aws cli may not retry), the
  limit was reached and waited out as announced, and commits were coalesced into far
  fewer `/batch` calls than files.
* Listing a 20 000-key bucket (registered through the hub directly, 20 `/batch` calls of
  1 000 `addFile`s of one existing hash) with ListObjectsV2 and V1 in default pages costs
  at most pages + 2 Hub tree calls.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import requests

from conftest import xof_bytes
from s3_util import ServeS3, bucket_name, run, tree_digest

API_LIMIT = 30
WINDOW_S = 5
FILES = 500


def _aws_bin() -> str:
    venv_aws = Path(sys.executable).parent / "aws"
    aws = str(venv_aws) if venv_aws.exists() else shutil.which("aws")
    if aws is None:
        pytest.fail("aws cli not installed (it is in tests/python/requirements.txt)")
    return aws


def _serve(tmp_path_factory, name: str, extra: tuple[str, ...]) -> ServeS3:
    d = tmp_path_factory.mktemp(name)
    return ServeS3(d / "data", d / "serve.log", runtime="tokio", extra_args=extra).start()


@pytest.fixture(scope="module")
def limited(tmp_path_factory, hugbucket_bin):
    srv = _serve(tmp_path_factory, "budget-limited",
                 ("--hub-rate-limit", f"api={API_LIMIT}/{WINDOW_S}s"))
    yield srv
    assert srv.stop() == 0, srv.log_tail()


@pytest.fixture(scope="module")
def plain(tmp_path_factory, hugbucket_bin):
    srv = _serve(tmp_path_factory, "budget-plain", ())
    yield srv
    assert srv.stop() == 0, srv.log_tail()


def hub(srv: ServeS3, method: str, path: str, **kw) -> requests.Response:
    r = requests.request(method, srv.hub_url + path, timeout=120,
                         headers={"Authorization": f"Bearer {srv.hub_token}",
                                  **kw.pop("headers", {})}, **kw)
    r.raise_for_status()
    return r


def hub_stats(srv: ServeS3) -> dict:
    return hub(srv, "GET", "/api/_hugbucket/stats").json()


def served(before: dict, after: dict, route: str) -> int:
    return after["requests"].get(route, 0) - before["requests"].get(route, 0)


def metric(text: str, name: str, labels: str = "") -> float:
    """The value of one sample of the gateway's `/metrics`."""
    m = re.search(rf"^{re.escape(name + labels)} (\S+)$", text, re.M)
    assert m, f"no {name}{labels} in /metrics"
    return float(m.group(1))


def test_sync_up_down_and_list_under_the_api_rate_limit(limited, tmp_path):
    src = tmp_path / "src"
    for i in range(FILES):
        f = src / f"d{i % 5}" / f"file-{i:03}.txt"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(xof_bytes(f"budget/{i}", 64 + 7 * i))
    bucket = bucket_name("sync")
    limited.client().create_bucket(Bucket=bucket)
    env = limited.cli_env(tmp_path)
    env["AWS_MAX_ATTEMPTS"] = "1"  # a SlowDown would fail the sync: no error is hidden
    aws = [_aws_bin(), "--endpoint-url", limited.endpoint]

    s0 = hub_stats(limited)
    t0 = time.monotonic()
    run(aws + ["s3", "sync", "--only-show-errors", src, f"s3://{bucket}/tree/"], env)
    s1 = hub_stats(limited)
    down = tmp_path / "down"
    run(aws + ["s3", "sync", "--only-show-errors", f"s3://{bucket}/tree/", down], env)
    keys = []
    for page in limited.client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, PaginationConfig={"PageSize": 100}):
        keys += [o["Key"] for o in page.get("Contents", [])]
    elapsed = time.monotonic() - t0
    s2 = hub_stats(limited)
    m = limited.metrics()

    assert tree_digest(down) == tree_digest(src)
    assert sorted(keys) == sorted(f"tree/{p}" for p in tree_digest(src))

    # The limit was reached and waited out. The hub announces `r` (calls left) and `t`
    # (seconds to the reset) on every answer; the gateway closes the API class when `r`
    # hits 0 (or on a 429) until the reset, so few calls, if any, meet a 429.
    refused = s2["rate_limited"] - s0["rate_limited"]
    api_calls = sum(served(s0, s2, r) for r in
                    ("tree", "paths_info", "batch", "bucket_info", "xet_read_token",
                     "xet_write_token", "whoami", "bucket_create"))
    windows = elapsed / WINDOW_S + 1
    print(f"{api_calls} api calls ({refused} refused), {served(s0, s1, 'batch')} batches, "
          f"{elapsed:.1f}s")
    assert api_calls > API_LIMIT, f"the {API_LIMIT}/{WINDOW_S}s limit was never reached"
    assert refused <= 3 * windows, f"{refused} 429s in {elapsed:.0f}s: not waiting for resets"
    assert metric(m, "hugbucket_upstream_rate_limited_total") >= refused
    assert metric(m, "hugbucket_upstream_throttle_giveups_total") == 0
    waited = metric(m, "hugbucket_upstream_throttle_wait_seconds_total")
    assert waited >= 1.0, f"the limit was reached but only {waited}s were waited"
    # The hub served at most the quota per window: with (almost) no 429s, the gateway
    # must have spaced its calls over at least this many windows, as the headers said.
    served_calls = api_calls - refused
    assert elapsed >= (served_calls - API_LIMIT) // API_LIMIT * WINDOW_S

    # Coalescing: 500 PUTs, far fewer commits.
    batches = served(s0, s1, "batch")
    assert batches <= FILES // 5, f"{batches} /batch calls for {FILES} PUTs"
    assert s1["batch_ops"] - s0["batch_ops"] == FILES
    # Hub calls per class, in /metrics.
    assert metric(m, "hugbucket_upstream_requests_total", '{class="api"}') >= api_calls - refused
    assert metric(m, "hugbucket_upstream_requests_total", '{class="cas"}') > 0


def _register_many(srv: ServeS3, bucket: str, n: int) -> None:
    """`n` keys `many/NNNNN` holding one existing file, in `/batch` calls of 1 000."""
    s3 = srv.client()
    s3.put_object(Bucket=bucket, Key="seed", Body=b"one content for every key")
    ns = hub(srv, "GET", "/api/whoami-v2").json()["name"]
    info = hub(srv, "POST", f"/api/buckets/{ns}/{bucket}/paths-info",
               json={"paths": ["seed"]}).json()
    xet_hash = info[0]["xetHash"]
    for start in range(0, n, 1000):
        lines = "".join(json.dumps({"type": "addFile", "path": f"many/{i:05}",
                                    "xetHash": xet_hash, "mtime": 1_700_000_000_000}) + "\n"
                        for i in range(start, min(n, start + 1000)))
        r = hub(srv, "POST", f"/api/buckets/{ns}/{bucket}/batch", data=lines.encode(),
                headers={"Content-Type": "application/x-ndjson"})
        assert r.json()["failed"] == []


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_listing_20000_keys_costs_pages_plus_two_tree_calls(plain, version):
    bucket = bucket_name(f"many{version}")
    s3 = plain.client()
    s3.create_bucket(Bucket=bucket)
    _register_many(plain, bucket, 20_000)
    before = hub_stats(plain)
    op = "list_objects_v2" if version == "v2" else "list_objects"
    pages = list(s3.get_paginator(op).paginate(Bucket=bucket))
    after = hub_stats(plain)
    keys = [o["Key"] for p in pages for o in p.get("Contents", [])]
    assert keys == sorted(keys) and len(set(keys)) == 20_001
    assert keys[0] == "many/00000" and keys[-1] == "seed"
    tree_calls = served(before, after, "tree")
    assert tree_calls <= len(pages) + 2, f"{tree_calls} tree calls for {len(pages)} pages"
