"""S3 semantics real clients rely on (issue 17): stored object metadata, conditional
writes, part reads and S3's edge cases, driven by boto3, the aws cli and rclone.

Two gateways (`hugbucket serve`, one per runtime) share one external `hugbucket hub`, so
metadata is checked as a second node sees it; the first one is restarted once. Metadata
lives in hidden sidecars in the bucket (`.hugbucket/meta/{h}`, docs/core-api.md): they are
checked directly on the hub, and checked absent from S3 and FTP listings.
"""

from __future__ import annotations

import datetime as dt
import ftplib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import blake3
import pytest
from botocore.exceptions import ClientError

from conftest import free_port, have_tool, xof_bytes
from hub_util import HubServer
from s3_util import ServeS3, bucket_name, error_code, run, run_hf, status_of

MiB = 1 << 20
FTP_USER, FTP_PASS = "semantics", "semantics-pass-Q7"

#: Everything S3 stores with an object besides its bytes, as boto3 sends it.
META_ARGS = dict(
    Metadata={"color": "blue", "mtime": "1700000000.123456789", "empty": ""},
    CacheControl="max-age=60",
    ContentDisposition='attachment; filename="x.bin"',
    ContentEncoding="identity",
    ContentLanguage="fr",
    ContentType="text/x-test",
)


def assert_meta(head: dict, args: dict = META_ARGS) -> None:
    """``head`` (a HeadObject/GetObject answer) carries exactly ``args``' metadata."""
    assert head["Metadata"] == args.get("Metadata", {})
    for field in ("CacheControl", "ContentDisposition", "ContentEncoding", "ContentLanguage"):
        assert head.get(field) == args.get(field), field
    assert head["ContentType"] == args.get("ContentType", "binary/octet-stream")


def sidecar_path(key: str) -> str:
    return ".hugbucket/meta/" + blake3.blake3(key.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------------------
# Fixtures: one hub, two gateways on it
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    d = tmp_path_factory.mktemp("sem-hub")
    h = HubServer(d / "hub", d / "hub.log", port=free_port()).start()
    yield h
    h.stop()


def _node(hub: HubServer, d: Path, runtime: str, ftp_port: int | None = None) -> ServeS3:
    extra: tuple[str, ...] = ()
    mode = "s3"
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}
    if ftp_port is not None:
        mode = "both"
        extra = ("--ftp-listen", f"127.0.0.1:{ftp_port}", "--ftp-passive-ports", "48000-48999")
        env.update(FTP_USERNAME=FTP_USER, FTP_PASSWORD=FTP_PASS)
    return ServeS3(d / "data", d / "serve.log", runtime=runtime, mode=mode,
                   extra_args=extra, env=env)


@pytest.fixture(scope="module")
def ftp_port():
    return free_port()


@pytest.fixture(scope="module")
def node_a(hub, tmp_path_factory, ftp_port, hugbucket_bin):
    """Gateway A (glommio, S3 + FTP). Restartable: tests use ``node_a[0]``."""
    d = tmp_path_factory.mktemp("sem-a")
    holder = [_node(hub, d, "glommio", ftp_port).start()]
    yield holder
    code = holder[0].stop()
    assert code == 0, f"serve A exited with {code}: {holder[0].log_tail()}"


@pytest.fixture(scope="module")
def node_b(hub, tmp_path_factory, hugbucket_bin):
    """Gateway B (tokio, S3 only) on the same hub."""
    d = tmp_path_factory.mktemp("sem-b")
    srv = _node(hub, d, "tokio").start()
    yield srv
    code = srv.stop()
    assert code == 0, f"serve B exited with {code}: {srv.log_tail()}"


@pytest.fixture
def s3a(node_a):
    """A client of gateway A as it runs now (it is restarted once)."""
    return node_a[0].client()


@pytest.fixture(scope="module")
def s3b(node_b):
    return node_b.client()


@pytest.fixture(scope="module")
def bucket(node_a):
    name = bucket_name("sem")
    node_a[0].client().create_bucket(Bucket=name)
    return name


def hub_paths(hub: HubServer, bucket: str, paths: list[str]) -> set[str]:
    """Which of ``paths`` exist in the Hub bucket (paths-info, straight to the hub)."""
    r = hub.http("POST", f"/api/buckets/hugbucket/{bucket}/paths-info", json={"paths": paths})
    r.raise_for_status()
    return {e["path"] for e in r.json()}


def hub_requests(hub: HubServer) -> dict[str, int]:
    """The hub's request counters by route (the stats call itself left out)."""
    routes = dict(hub.stats()["requests"])
    routes.pop("stats", None)
    return routes


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0)
            for k in set(before) | set(after) if after.get(k, 0) != before.get(k, 0)}


# --------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------


def test_metadata_put_head_get_copy(s3a, hub, bucket):
    body = xof_bytes("sem/meta", 40_000)
    s3a.put_object(Bucket=bucket, Key="m/obj.bin", Body=body, **META_ARGS)
    assert_meta(s3a.head_object(Bucket=bucket, Key="m/obj.bin"))
    got = s3a.get_object(Bucket=bucket, Key="m/obj.bin")
    assert got["Body"].read() == body
    assert_meta(got)
    # rclone's mtime became the object's modification time.
    # (the listing has milliseconds; Last-Modified whole seconds).
    assert got["LastModified"].timestamp() == 1700000000
    listed = s3a.list_objects_v2(Bucket=bucket, Prefix="m/obj.bin")["Contents"][0]
    assert listed["LastModified"].timestamp() == pytest.approx(1700000000.123, abs=0.0005)
    assert sidecar_path("m/obj.bin") in hub_paths(hub, bucket, [sidecar_path("m/obj.bin")])

    # COPY (the default directive): the source's metadata.
    s3a.copy_object(Bucket=bucket, Key="m/copy.bin", CopySource={"Bucket": bucket, "Key": "m/obj.bin"})
    assert_meta(s3a.head_object(Bucket=bucket, Key="m/copy.bin"))
    # REPLACE: only the new metadata.
    new = dict(Metadata={"shape": "round"}, ContentType="application/x-new")
    s3a.copy_object(Bucket=bucket, Key="m/replaced.bin", MetadataDirective="REPLACE",
                    CopySource={"Bucket": bucket, "Key": "m/obj.bin"}, **new)
    head = s3a.head_object(Bucket=bucket, Key="m/replaced.bin")
    assert_meta(head, new)
    assert s3a.get_object(Bucket=bucket, Key="m/replaced.bin")["Body"].read() == body
    # To another bucket.
    other = bucket_name("sem-other")
    s3a.create_bucket(Bucket=other)
    s3a.copy_object(Bucket=other, Key="x", CopySource={"Bucket": bucket, "Key": "m/obj.bin"})
    assert_meta(s3a.head_object(Bucket=other, Key="x"))
    # In place with REPLACE: metadata changes, bytes stay.
    s3a.copy_object(Bucket=bucket, Key="m/obj.bin", MetadataDirective="REPLACE",
                    CopySource={"Bucket": bucket, "Key": "m/obj.bin"}, Metadata={"v": "2"})
    head = s3a.head_object(Bucket=bucket, Key="m/obj.bin")
    assert head["Metadata"] == {"v": "2"} and head.get("CacheControl") is None
    assert s3a.get_object(Bucket=bucket, Key="m/obj.bin")["Body"].read() == body

    # S3's 2 KiB limit on user metadata.
    with pytest.raises(ClientError) as e:
        s3a.put_object(Bucket=bucket, Key="m/too-big", Body=b"x", Metadata={"big": "v" * 2100})
    assert (error_code(e.value), status_of(e.value)) == ("MetadataTooLarge", 400)
    with pytest.raises(ClientError):
        s3a.head_object(Bucket=bucket, Key="m/too-big")


def test_plain_put_costs_no_extra_hub_call(s3a, hub, bucket):
    """Objects without metadata write no sidecar: a PUT is one xorb, one shard and one
    batch with one operation; a HEAD is one paths-info call either way."""
    s3a.put_object(Bucket=bucket, Key="calls/warm", Body=b"warm-up")
    before, stats0 = hub_requests(hub), hub.stats()
    s3a.put_object(Bucket=bucket, Key="calls/plain", Body=b"no metadata here")
    after, stats1 = hub_requests(hub), hub.stats()
    assert delta(before, after) == {"xorb_upload": 1, "shard_v2": 1, "batch": 1}, delta(before, after)
    assert stats1["batch_ops"] - stats0["batch_ops"] == 1
    assert sidecar_path("calls/plain") not in hub_paths(hub, bucket, [sidecar_path("calls/plain")])

    before, stats0 = hub_requests(hub), hub.stats()
    s3a.put_object(Bucket=bucket, Key="calls/meta", Body=b"with metadata", Metadata={"a": "b"})
    after, stats1 = hub_requests(hub), hub.stats()
    assert delta(before, after)["batch"] == 1, "object and sidecar in one batch call"
    assert stats1["batch_ops"] - stats0["batch_ops"] == 2

    for key in ("calls/plain", "calls/meta"):
        time.sleep(2.2)  # past the metadata TTL: the HEAD goes to the hub
        s3a.head_object(Bucket=bucket, Key=key)
        before = hub_requests(hub)
        s3a.head_object(Bucket=bucket, Key=key)
        time.sleep(2.2)
        s3a.head_object(Bucket=bucket, Key=key)
        assert delta(before, hub_requests(hub)) == {"paths_info": 1}, key


def test_multipart_metadata_part_reads_and_part_order(s3a, s3b, bucket):
    key = "mp/obj.bin"
    p1, p2, p2_first = (xof_bytes("sem/p1", 5 * MiB), xof_bytes("sem/p2", MiB + 7),
                        xof_bytes("sem/p2-old", 1000))
    up = s3a.create_multipart_upload(Bucket=bucket, Key=key, **META_ARGS)["UploadId"]
    # Out of order, and part 2 sent twice: the last upload of a number wins.
    s3a.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=2, Body=p2_first)
    e2 = s3a.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=2, Body=p2)["ETag"]
    e1 = s3a.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=p1)["ETag"]
    with pytest.raises(ClientError) as e:
        s3a.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]})
    assert (error_code(e.value), status_of(e.value)) == ("InvalidPartOrder", 400)
    done = s3a.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    assert done["ETag"].endswith('-2"')

    for s3 in (s3a, s3b):
        head = s3.head_object(Bucket=bucket, Key=key)
        assert_meta(head)
        assert head["ContentLength"] == len(p1) + len(p2) and head["ETag"] == done["ETag"]
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == p1 + p2
        for n, data in ((1, p1), (2, p2)):
            got = s3.get_object(Bucket=bucket, Key=key, PartNumber=n)
            assert got["Body"].read() == data, n
            assert got["PartsCount"] == 2 and got["ContentLength"] == len(data)
            assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
            start = 0 if n == 1 else len(p1)
            assert got["ContentRange"] == f"bytes {start}-{start + len(data) - 1}/{len(p1) + len(p2)}"
            h = s3.head_object(Bucket=bucket, Key=key, PartNumber=n)
            assert h["PartsCount"] == 2 and h["ContentLength"] == len(data)
        for call in (s3.get_object, s3.head_object):
            with pytest.raises(ClientError) as e:
                call(Bucket=bucket, Key=key, PartNumber=3)
            assert status_of(e.value) == 416
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key=key, PartNumber=3)
        assert error_code(e.value) == "InvalidPartNumber"

    # A single-part object: part 1 is all of it, there is no part 2.
    s3a.put_object(Bucket=bucket, Key="mp/single", Body=b"single part body")
    got = s3a.get_object(Bucket=bucket, Key="mp/single", PartNumber=1)
    assert got["Body"].read() == b"single part body" and "PartsCount" not in got
    assert s3a.head_object(Bucket=bucket, Key="mp/single", PartNumber=1)["ContentLength"] == 16
    with pytest.raises(ClientError) as e:
        s3a.get_object(Bucket=bucket, Key="mp/single", PartNumber=2)
    assert (error_code(e.value), status_of(e.value)) == ("InvalidPartNumber", 416)
    with pytest.raises(ClientError) as e:
        s3a.get_object(Bucket=bucket, Key="mp/single", PartNumber=1, Range="bytes=0-1")
    assert status_of(e.value) == 400


def test_metadata_seen_by_a_second_node_and_after_a_restart(node_a, s3b, bucket):
    s3 = node_a[0].client()
    s3.put_object(Bucket=bucket, Key="nodes/obj", Body=b"shared", **META_ARGS)
    assert_meta(s3b.head_object(Bucket=bucket, Key="nodes/obj"))
    got = s3b.get_object(Bucket=bucket, Key="nodes/obj")
    assert got["Body"].read() == b"shared"
    assert_meta(got)
    # B overwrites without metadata: A no longer shows the old metadata.
    s3b.put_object(Bucket=bucket, Key="nodes/obj", Body=b"plain now")
    time.sleep(2.2)  # A's cached entry expires
    head = s3.head_object(Bucket=bucket, Key="nodes/obj")
    assert head["Metadata"] == {} and head.get("CacheControl") is None

    # Restart A on the same data dir: the metadata is still there.
    old = node_a[0]
    assert old.stop() == 0
    node_a[0] = ServeS3(old.data_dir, old.log_path, runtime=old.runtime, mode=old.mode,
                        extra_args=old.extra_args, env=old.extra_env).start()
    s3 = node_a[0].client()
    assert_meta(s3.head_object(Bucket=bucket, Key="m/copy.bin"))
    assert s3.head_object(Bucket=bucket, Key="mp/obj.bin", PartNumber=2)["PartsCount"] == 2


def test_overwrite_through_huggingface_hub_drops_the_metadata(node_a, hub, bucket, tmp_path):
    s3 = node_a[0].client()
    s3.put_object(Bucket=bucket, Key="hf/obj.txt", Body=b"from s3", **META_ARGS)
    assert_meta(s3.head_object(Bucket=bucket, Key="hf/obj.txt"))
    src = tmp_path / "new.txt"
    src.write_bytes(b"rewritten by huggingface_hub")
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    run_hf(node_a[0], hf_home, f"""
        api.batch_bucket_files("hugbucket/{bucket}", add=[({str(src)!r}, "hf/obj.txt")])
        emit(True)
    """)
    time.sleep(2.2)  # the gateway's cached entry expires
    got = s3.get_object(Bucket=bucket, Key="hf/obj.txt")
    assert got["Body"].read() == b"rewritten by huggingface_hub"
    assert got["Metadata"] == {} and got.get("CacheControl") is None
    # The stale sidecar is still in the bucket, and ignored.
    assert sidecar_path("hf/obj.txt") in hub_paths(hub, bucket, [sidecar_path("hf/obj.txt")])

    # Deleted through huggingface_hub: the bucket looks empty over S3 (the leftover
    # sidecar is hidden) and can be deleted.
    name = bucket_name("sem-hfdel")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="only", Body=b"x", Metadata={"a": "b"})
    run_hf(node_a[0], hf_home, f"""
        api.batch_bucket_files("hugbucket/{name}", delete=["only"])
        emit(True)
    """)
    assert hub_paths(hub, name, [sidecar_path("only")]) == {sidecar_path("only")}
    assert s3.list_objects_v2(Bucket=name)["KeyCount"] == 0
    s3.delete_bucket(Bucket=name)


def test_listings_hide_sidecars_and_delete_removes_them(node_a, hub, ftp_port, tmp_path):
    s3 = node_a[0].client()
    name = bucket_name("sem-list")
    s3.create_bucket(Bucket=name)
    keys = ["a.txt", "dir/b.txt", "dir/sub/c.txt"]
    for k in keys:
        s3.put_object(Bucket=name, Key=k, Body=k.encode(), Metadata={"k": k})
    sidecars = [sidecar_path(k) for k in keys]
    assert hub_paths(hub, name, sidecars) == set(sidecars)

    listed = s3.list_objects_v2(Bucket=name)
    assert [o["Key"] for o in listed["Contents"]] == keys
    top = s3.list_objects_v2(Bucket=name, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["dir/"]
    assert s3.list_objects_v2(Bucket=name, Prefix=".hugbucket/")["KeyCount"] == 0
    assert [o["Key"] for o in s3.list_objects(Bucket=name)["Contents"]] == keys
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=name, Key=".hugbucket/meta/x", Body=b"x")
    assert status_of(e.value) == 400

    f = ftplib.FTP()
    f.connect("127.0.0.1", ftp_port, timeout=30)
    f.login(FTP_USER, FTP_PASS)
    lines: list[str] = []
    f.retrlines(f"LIST /{name}", lines.append)
    assert sorted(line.split()[-1] for line in lines) == ["a.txt", "dir"], lines
    assert sorted(f.nlst(f"/{name}/dir")) in (["b.txt", "sub"], [f"/{name}/dir/b.txt", f"/{name}/dir/sub"])
    f.quit()

    s3.delete_object(Bucket=name, Key="a.txt")
    s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": "dir/b.txt"}]})
    assert hub_paths(hub, name, sidecars) == {sidecar_path("dir/sub/c.txt")}
    s3.delete_object(Bucket=name, Key="dir/sub/c.txt")
    assert hub_paths(hub, name, sidecars) == set()
    s3.delete_bucket(Bucket=name)


# --------------------------------------------------------------------------------------
# Conditional writes
# --------------------------------------------------------------------------------------


def test_conditional_put(s3a, bucket):
    key = "cond/put"
    first = s3a.put_object(Bucket=bucket, Key=key, Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3a.put_object(Bucket=bucket, Key=key, Body=b"two", IfNoneMatch="*")
    assert (error_code(e.value), status_of(e.value)) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3a.put_object(Bucket=bucket, Key=key, Body=b"two", IfMatch='"0000-1"')
    assert status_of(e.value) == 412
    assert s3a.get_object(Bucket=bucket, Key=key)["Body"].read() == b"one"
    second = s3a.put_object(Bucket=bucket, Key=key, Body=b"two", IfMatch=first["ETag"])
    assert s3a.get_object(Bucket=bucket, Key=key)["Body"].read() == b"two"
    with pytest.raises(ClientError) as e:
        s3a.put_object(Bucket=bucket, Key=key, Body=b"three", IfMatch=first["ETag"])
    assert status_of(e.value) == 412
    s3a.put_object(Bucket=bucket, Key=key, Body=b"three", IfMatch=second["ETag"])
    with pytest.raises(ClientError) as e:
        s3a.put_object(Bucket=bucket, Key="cond/missing", Body=b"x", IfMatch=first["ETag"])
    assert (error_code(e.value), status_of(e.value)) == ("NoSuchKey", 404)


def test_concurrent_create_only_writers_exactly_one_wins(node_a, s3b, bucket):
    for round_ in range(4):
        key = f"cond/race-{round_}"
        clients = [node_a[0].client(), node_a[0].client()]
        results: list[object] = [None, None]

        def write(i: int) -> None:
            try:
                clients[i].put_object(Bucket=bucket, Key=key, Body=f"writer {i}".encode(),
                                      IfNoneMatch="*")
                results[i] = "ok"
            except ClientError as exc:
                results[i] = status_of(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(map(str, results)) == ["412", "ok"], results
        winner = results.index("ok")
        body = s3b.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == f"writer {winner}".encode()


def test_conditional_complete(s3a, bucket):
    def upload(key: str) -> tuple[str, list[dict]]:
        up = s3a.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        etag = s3a.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1,
                               Body=b"part")["ETag"]
        return up, [{"PartNumber": 1, "ETag": etag}]

    key = "cond/mp"
    up, parts = upload(key)
    s3a.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, IfNoneMatch="*",
                                  MultipartUpload={"Parts": parts})
    current = s3a.head_object(Bucket=bucket, Key=key)["ETag"]
    up, parts = upload(key)
    with pytest.raises(ClientError) as e:
        s3a.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, IfNoneMatch="*",
                                      MultipartUpload={"Parts": parts})
    assert (error_code(e.value), status_of(e.value)) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3a.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, IfMatch='"nope-1"',
                                      MultipartUpload={"Parts": parts})
    assert status_of(e.value) == 412
    done = s3a.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up, IfMatch=current,
                                         MultipartUpload={"Parts": parts})
    assert s3a.head_object(Bucket=bucket, Key=key)["ETag"] == done["ETag"]


# --------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------


def test_edge_cases(s3a, bucket):
    # CreateBucket of a bucket you own: 200 in us-east-1.
    assert s3a.create_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200

    # An empty continuation-token is no token.
    s3a.put_object(Bucket=bucket, Key="edge/one", Body=b"1")
    sent: list[str] = []
    s3a.meta.events.register("before-send.s3.ListObjectsV2",
                             lambda request, **_: sent.append(request.url))
    page = s3a.list_objects_v2(Bucket=bucket, Prefix="edge/", ContinuationToken="")
    s3a.meta.events.unregister("before-send.s3.ListObjectsV2")
    assert "continuation-token=&" in sent[0] + "&", sent
    assert [o["Key"] for o in page["Contents"]] == ["edge/one"]

    # A non-empty object whose key ends in '/' is an object; an empty one a folder.
    s3a.put_object(Bucket=bucket, Key="edge/dir/", Body=b"not empty", Metadata={"a": "1"})
    got = s3a.get_object(Bucket=bucket, Key="edge/dir/")
    assert got["Body"].read() == b"not empty" and got["Metadata"] == {"a": "1"}
    s3a.put_object(Bucket=bucket, Key="edge/dir/inside", Body=b"x")
    s3a.put_object(Bucket=bucket, Key="edge/folder/", Body=b"")
    keys = [(o["Key"], o["Size"]) for o in
            s3a.list_objects_v2(Bucket=bucket, Prefix="edge/")["Contents"]]
    assert keys == [("edge/dir/", 9), ("edge/dir/inside", 1), ("edge/one", 1)], keys
    inner = s3a.list_objects_v2(Bucket=bucket, Prefix="edge/dir/", Delimiter="/")
    assert [o["Key"] for o in inner["Contents"]] == ["edge/dir/", "edge/dir/inside"]
    top = s3a.list_objects_v2(Bucket=bucket, Prefix="edge/", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["edge/dir/", "edge/folder/"]
    assert s3a.head_object(Bucket=bucket, Key="edge/folder/")["ContentLength"] == 0
    s3a.delete_object(Bucket=bucket, Key="edge/dir/")
    with pytest.raises(ClientError) as e:
        s3a.head_object(Bucket=bucket, Key="edge/dir/")
    assert status_of(e.value) == 404
    assert s3a.get_object(Bucket=bucket, Key="edge/dir/inside")["Body"].read() == b"x"


def test_list_buckets_paging(node_a, s3a):
    prefix = bucket_name("pg")
    names = [f"{prefix}-{i}" for i in range(3)]
    for n in names:
        s3a.create_bucket(Bucket=n)
    page = s3a.list_buckets(Prefix=prefix, MaxBuckets=2)
    assert [b["Name"] for b in page["Buckets"]] == names[:2]
    assert page["Prefix"] == prefix and page["ContinuationToken"]
    rest = s3a.list_buckets(Prefix=prefix, MaxBuckets=2, ContinuationToken=page["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == names[2:]
    assert "ContinuationToken" not in rest
    assert [b["Name"] for b in s3a.list_buckets(Prefix=prefix)["Buckets"]] == names
    unchecked = node_a[0].client(parameter_validation=False)
    with pytest.raises(ClientError) as e:
        unchecked.list_buckets(MaxBuckets=0)
    assert (error_code(e.value), status_of(e.value)) == ("InvalidArgument", 400)
    for n in names:
        s3a.delete_bucket(Bucket=n)


def test_special_character_delimiters(s3a):
    name = bucket_name("sem-delim")
    s3a.create_bucket(Bucket=name)
    keys = ["a%b%c", "a%d", "b c d", "b e", "x\ny\nz", "x\nw", "plain"]
    for k in keys:
        s3a.put_object(Bucket=name, Key=k, Body=b".")

    def listing(delimiter: str, v1: bool = False, **kw) -> tuple[list[str], list[str]]:
        # boto3 asks for encoding-type=url on its own and decodes the answer.
        call = s3a.list_objects if v1 else s3a.list_objects_v2
        r = call(Bucket=name, Delimiter=delimiter, **kw)
        assert r["Delimiter"] == delimiter
        return ([o["Key"] for o in r.get("Contents", [])],
                [p["Prefix"] for p in r.get("CommonPrefixes", [])])

    assert listing("%") == (["b c d", "b e", "plain", "x\nw", "x\ny\nz"], ["a%"])
    assert listing(" ") == (["a%b%c", "a%d", "plain", "x\nw", "x\ny\nz"], ["b "])
    assert listing("\n") == (["a%b%c", "a%d", "b c d", "b e", "plain"], ["x\n"])
    assert listing("%", Prefix="a%") == (["a%d"], ["a%b%"])
    assert listing(" ", v1=True) == (["a%b%c", "a%d", "plain", "x\nw", "x\ny\nz"], ["b "])
    # Asked for explicitly, the answer stays encoded (boto3 leaves it as it is).
    raw = s3a.list_objects_v2(Bucket=name, Delimiter="\n", EncodingType="url")
    assert raw["Delimiter"] == "%0A" and raw["EncodingType"] == "url"
    assert [p["Prefix"] for p in raw["CommonPrefixes"]] == ["x%0A"]
    assert [o["Key"] for o in raw["Contents"]][:3] == ["a%25b%25c", "a%25d", "b%20c%20d"]


# --------------------------------------------------------------------------------------
# CLI clients: aws cli, rclone
# --------------------------------------------------------------------------------------


def _aws_bin() -> str:
    venv_aws = Path(sys.executable).parent / "aws"
    aws = str(venv_aws) if venv_aws.exists() else shutil.which("aws")
    assert aws, "aws cli not installed (it is in tests/python/requirements.txt)"
    return aws


def _aws(server: ServeS3, tmp_path: Path, *args: str) -> str:
    return run([_aws_bin(), "--endpoint-url", server.endpoint, *args],
               server.cli_env(tmp_path)).stdout.decode()


def test_aws_cli_metadata_conditions_and_parts(node_a, bucket, tmp_path):
    srv = node_a[0]
    src = tmp_path / "f.txt"
    src.write_bytes(b"aws cli body")
    _aws(srv, tmp_path, "s3", "cp", src, f"s3://{bucket}/cli/f.txt", "--metadata",
         "owner=cli,mtime=1600000000", "--cache-control", "no-cache",
         "--content-disposition", "inline")
    head = json.loads(_aws(srv, tmp_path, "s3api", "head-object", "--bucket", bucket,
                           "--key", "cli/f.txt"))
    assert head["Metadata"] == {"owner": "cli", "mtime": "1600000000"}
    assert head["CacheControl"] == "no-cache" and head["ContentDisposition"] == "inline"
    part = json.loads(_aws(srv, tmp_path, "s3api", "head-object", "--bucket", bucket,
                           "--key", "mp/obj.bin", "--part-number", "2"))
    assert part["PartsCount"] == 2 and part["ContentLength"] == MiB + 7
    out = tmp_path / "part1.bin"
    _aws(srv, tmp_path, "s3api", "get-object", "--bucket", bucket, "--key", "mp/obj.bin",
         "--part-number", "1", out)
    assert out.read_bytes() == xof_bytes("sem/p1", 5 * MiB)
    _aws(srv, tmp_path, "s3api", "copy-object", "--bucket", bucket, "--key", "cli/g.txt",
         "--copy-source", f"{bucket}/cli/f.txt", "--metadata-directive", "REPLACE",
         "--metadata", "owner=replaced")
    head = json.loads(_aws(srv, tmp_path, "s3api", "head-object", "--bucket", bucket,
                           "--key", "cli/g.txt"))
    assert head["Metadata"] == {"owner": "replaced"} and "CacheControl" not in head

    # Conditional PUT.
    _aws(srv, tmp_path, "s3api", "put-object", "--bucket", bucket, "--key", "cli/once",
         "--body", src, "--if-none-match", "*")
    env = srv.cli_env(tmp_path)
    again = run([_aws_bin(), "--endpoint-url", srv.endpoint, "s3api", "put-object",
                 "--bucket", bucket, "--key", "cli/once", "--body", src, "--if-none-match", "*"],
                env, check=False)
    assert again.returncode != 0 and b"PreconditionFailed" in again.stderr, again.stderr
    # Edge cases: a non-empty `dir/` object, CreateBucket of an owned bucket, paging.
    _aws(srv, tmp_path, "s3api", "put-object", "--bucket", bucket, "--key", "cli/dir/",
         "--body", src)
    out = tmp_path / "dir-object"
    _aws(srv, tmp_path, "s3api", "get-object", "--bucket", bucket, "--key", "cli/dir/", out)
    assert out.read_bytes() == b"aws cli body"
    _aws(srv, tmp_path, "s3api", "create-bucket", "--bucket", bucket)
    listed = json.loads(_aws(srv, tmp_path, "s3api", "list-buckets", "--prefix", bucket,
                             "--max-buckets", "1"))
    assert [b["Name"] for b in listed["Buckets"]] == [bucket]


def test_rclone_sync_twice_keeps_mtimes(node_a, tmp_path):
    assert have_tool("rclone"), "rclone not installed (APT_PACKAGES in tests/run.sh)"
    srv = node_a[0]
    src = tmp_path / "src"
    mtimes = {}
    for i, rel in enumerate(["a.txt", "d/b.bin", "d/e/c.txt"]):
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(xof_bytes(f"sem/rclone/{rel}", 1000 + 999 * i))
        t = 1_600_000_000.123456789 + 86_400 * i
        os.utime(p, ns=(int(t * 1e9), int(t * 1e9)))
        mtimes[rel] = os.stat(p).st_mtime_ns
    conf = tmp_path / "rclone.conf"
    conf.write_text(f"""[hb]
type = s3
provider = Other
access_key_id = {srv.access_key}
secret_access_key = {srv.secret_key}
endpoint = {srv.endpoint}
region = us-east-1
force_path_style = true
""")
    env = srv.cli_env(tmp_path)
    rc = ["rclone", "--config", conf, "--retries", "1", "--low-level-retries", "1"]
    name = bucket_name("sem-rclone")
    run(rc + ["mkdir", f"hb:{name}"], env)
    first = run(rc + ["sync", "-v", src, f"hb:{name}"], env).stderr.decode()
    assert first.count("Copied (new)") == 3, first
    second = run(rc + ["sync", "-v", src, f"hb:{name}"], env).stderr.decode()
    assert "Copied" not in second and "Updated" not in second, second
    lsl = run(rc + ["lsl", f"hb:{name}"], env).stdout.decode().splitlines()
    seen = {}
    for line in lsl:
        size, day, clock, rel = line.split(None, 3)
        seen[rel] = f"{day} {clock}"
    for rel, ns in mtimes.items():
        secs = dt.datetime.fromtimestamp(ns // 10**9).strftime("%Y-%m-%d %H:%M:%S")
        assert seen[rel] == f"{secs}.{ns % 10**9:09d}", (rel, seen[rel])
