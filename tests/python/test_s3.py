"""The S3 front-end against real clients: `hugbucket serve --mode s3` on the embedded hub,
driven by boto3 (latest, default checksum settings: aws-chunked bodies with CRC trailers),
the aws cli, rclone and s3cmd, and cross-checked with huggingface_hub.

Every download is byte-compared with what was uploaded. Everything runs on both runtimes
(glommio, the default, and `--runtime tokio`), the graceful-shutdown check included.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import re
import shutil
import signal
import sys
import time
from pathlib import Path

import botocore
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from conftest import XofPieces, have_tool, write_xof_file, xof_bytes
from s3_util import ServeS3, bucket_name, error_code, run, run_hf, status_of, tree_digest

MiB = 1 << 20
#: Multipart-sized: every CLI switches to multipart uploads well below this.
BIG = 65 * MiB

#: Base domain for virtual-hosted-style requests (`bucket.{VHOST_DOMAIN}`).
VHOST_DOMAIN = "s3.hugbucket.test"

#: Object keys that trip naive encoders: spaces, unicode, `+`, `%`, `=` and `&`.
ODD_KEYS = [
    "plain.txt",
    "with space/file name.txt",
    "unicodé/☃ snow.bin",
    "plus+sign/a+b=c&d.txt",
    "percent%/100%25 done.txt",
]


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["glommio", "tokio"])
def server(request, tmp_path_factory, hugbucket_bin):
    """One `hugbucket serve --mode s3` per runtime; every test below runs on both."""
    d = tmp_path_factory.mktemp(f"s3serve-{request.param}")
    srv = ServeS3(d / "data", d / "serve.log", runtime=request.param,
                  extra_args=("--s3-domain", VHOST_DOMAIN)).start()
    yield srv
    code = srv.stop()
    assert code == 0, f"serve exited with {code}: {srv.log_tail()}"


@pytest.fixture(scope="module")
def s3(server):
    return server.client()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A local tree with odd names, an empty file and a multipart-sized file."""
    root = tmp_path_factory.mktemp("tree") / "src"
    for i, key in enumerate(ODD_KEYS):
        write_xof_file(root / key, f"s3-tree/{key}", 1000 + 37_000 * i)
    (root / "empty.bin").write_bytes(b"")
    write_xof_file(root / "big" / "multipart.bin", "s3-tree/big", BIG)
    return root


# --------------------------------------------------------------------------------------
# boto3: buckets
# --------------------------------------------------------------------------------------


def test_buckets(s3):
    name = bucket_name("bkt")
    s3.create_bucket(Bucket=name)
    # Creating a bucket you own again: 200, as us-east-1 S3.
    assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    head = s3.head_bucket(Bucket=name)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert s3.get_bucket_location(Bucket=name).get("LocationConstraint") in (None, "")
    versioning = s3.get_bucket_versioning(Bucket=name)
    assert "Status" not in versioning

    missing = bucket_name("missing")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=missing)
    assert status_of(e.value) == 404
    for call in (lambda: s3.get_object(Bucket=missing, Key="k"),
                 lambda: s3.list_objects_v2(Bucket=missing),
                 lambda: s3.put_object(Bucket=missing, Key="k", Body=b"x"),
                 lambda: s3.delete_bucket(Bucket=missing)):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "NoSuchBucket", e.value.response

    s3.put_object(Bucket=name, Key="keep", Body=b"x")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert error_code(e.value) == "BucketNotEmpty"
    assert status_of(e.value) == 409
    s3.delete_object(Bucket=name, Key="keep")
    s3.delete_bucket(Bucket=name)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# --------------------------------------------------------------------------------------
# boto3: objects
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bucket(s3):
    name = bucket_name("objs")
    s3.create_bucket(Bucket=name)
    return name


def test_put_get_head_odd_keys(s3, bucket):
    for i, key in enumerate(ODD_KEYS + ["k" * 1000, "deep/" * 20 + "leaf"]):
        data = xof_bytes(f"odd/{key}", 10_000 + i * 1234)
        put = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="text/x-test")
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data, key
        assert got["ETag"] == put["ETag"]
        assert got["ContentType"] == "text/x-test"
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentLength"] == len(data)
        assert head["ETag"] == put["ETag"]
        assert head["AcceptRanges"] == "bytes"
        assert isinstance(head["LastModified"], dt.datetime)
        assert abs((dt.datetime.now(dt.timezone.utc) - head["LastModified"]).total_seconds()) < 300
        assert head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")

    # Default content type, empty object, streamed (non-seekable) upload.
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0
    data = xof_bytes("streamed", 3 * MiB + 5)
    s3.upload_fileobj(io.BufferedReader(io.BytesIO(data)), bucket, "streamed",
                      Config=TransferConfig(multipart_threshold=64 * MiB))
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == data

    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="no/such key")
    assert error_code(e.value) == "NoSuchKey"
    assert e.value.response["ResponseMetadata"]["HTTPHeaders"].get("x-amz-request-id")
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="no/such key")
    assert status_of(e.value) == 404


def _shard_calls(server) -> dict[str, int]:
    out = {}
    for line in server.metrics().splitlines():
        m = re.match(r'hugbucket_key_shard_calls_total\{shard="(\d+)"\} (\d+)', line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def test_key_shards_serve_each_key_on_its_owner(server, s3, bucket):
    """Calls about one key always run on the same key shard (its owner); different keys
    spread over the shards (one per core)."""
    before = _shard_calls(server)
    assert before, "no key shard metrics"
    s3.put_object(Bucket=bucket, Key="shard/one", Body=b"x" * 100)
    for _ in range(5):
        s3.head_object(Bucket=bucket, Key="shard/one")
    after = _shard_calls(server)
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert list(moved.values()) == [6], f"one key's calls landed on {moved}"

    before = after
    for i in range(24):
        key = f"shard/many-{i}"
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    after = _shard_calls(server)
    moved = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert sum(moved.values()) == 48, moved
    if len(after) >= 2:
        assert len(moved) >= 2, f"24 keys all on one shard: {moved}"


def test_checksum_algorithms(s3, bucket):
    data = xof_bytes("checksums", 700_000)
    for algo in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
        try:
            s3.put_object(Bucket=bucket, Key=f"algo/{algo}", Body=data, ChecksumAlgorithm=algo)
        except botocore.exceptions.MissingDependencyException:
            continue  # awscrt not installed: boto3 cannot compute this one
        assert s3.get_object(Bucket=bucket, Key=f"algo/{algo}")["Body"].read() == data


def test_bad_digest_is_not_committed(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="bad-md5", Body=b"abc",
                      ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    assert error_code(e.value) == "BadDigest"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="bad-md5")
    assert status_of(e.value) == 404


def test_ranges(s3, bucket):
    data = xof_bytes("ranges", 1_000_000)
    s3.put_object(Bucket=bucket, Key="ranged", Body=data)
    size = len(data)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=999990-": (999_990, size - 1),
        "bytes=-5": (size - 5, size - 1),
        "bytes=500000-500000": (500_000, 500_000),
        "bytes=10-99999999": (10, size - 1),
        "bytes=-5000000": (0, size - 1),
    }
    for header, (a, b) in cases.items():
        got = s3.get_object(Bucket=bucket, Key="ranged", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["ContentRange"] == f"bytes {a}-{b}/{size}", header
        assert got["ContentLength"] == b - a + 1
        assert got["Body"].read() == data[a:b + 1], header
    head = s3.head_object(Bucket=bucket, Key="ranged", Range="bytes=0-99")
    assert head["ContentLength"] == 100 and head["ContentRange"] == f"bytes 0-99/{size}"

    for header in [f"bytes={size}-", f"bytes={size + 10}-{size + 20}"]:
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="ranged", Range=header)
        assert status_of(e.value) == 416, header
        assert error_code(e.value) == "InvalidRange"
        assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["content-range"] == f"bytes */{size}"


def test_conditionals_and_overrides(s3, bucket):
    data = b"conditional body"
    etag = s3.put_object(Bucket=bucket, Key="cond", Body=data)["ETag"]
    lm = s3.head_object(Bucket=bucket, Key="cond")["LastModified"]
    past = lm - dt.timedelta(days=1)
    future = lm + dt.timedelta(days=1)

    assert s3.get_object(Bucket=bucket, Key="cond", IfMatch=etag)["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="cond", IfNoneMatch='"other"')["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="cond", IfModifiedSince=past)["Body"].read() == data
    assert s3.get_object(Bucket=bucket, Key="cond", IfUnmodifiedSince=future)["Body"].read() == data
    # A passing If-Match wins over a failing If-Unmodified-Since (S3 rule).
    assert s3.get_object(Bucket=bucket, Key="cond", IfMatch=etag,
                         IfUnmodifiedSince=past)["Body"].read() == data

    for kwargs, status in [({"IfNoneMatch": etag}, 304), ({"IfNoneMatch": "*"}, 304),
                           ({"IfModifiedSince": future}, 304),
                           ({"IfMatch": '"nope"'}, 412), ({"IfUnmodifiedSince": past}, 412)]:
        for call in (s3.get_object, s3.head_object):
            with pytest.raises(ClientError) as e:
                call(Bucket=bucket, Key="cond", **kwargs)
            assert status_of(e.value) == status, (call, kwargs)
            if status == 412 and call is s3.get_object:
                assert error_code(e.value) == "PreconditionFailed"
            if status == 304:
                assert e.value.response["ResponseMetadata"]["HTTPHeaders"]["etag"] == etag

    got = s3.get_object(Bucket=bucket, Key="cond", ResponseContentType="x/override",
                        ResponseContentDisposition='attachment; filename="a b.txt"',
                        ResponseCacheControl="no-cache", ResponseContentLanguage="fr",
                        ResponseContentEncoding="identity",
                        ResponseExpires=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    assert got["ContentType"] == "x/override"
    assert got["ContentDisposition"] == 'attachment; filename="a b.txt"'
    assert got["CacheControl"] == "no-cache"
    assert got["ContentLanguage"] == "fr"
    assert got["ContentEncoding"] == "identity"
    assert got["Body"].read() == data


def test_list_objects(s3):
    name = bucket_name("list")
    s3.create_bucket(Bucket=name)
    keys = sorted(["a/1.txt", "a/2 two.txt", "a/b/3+.txt", "a/b/c/4é.txt", "b/5%.txt",
                   "top.txt", "z+z", "a/b/zz"])
    for k in keys:
        s3.put_object(Bucket=name, Key=k, Body=k.encode())

    everything = s3.list_objects_v2(Bucket=name)
    assert [o["Key"] for o in everything["Contents"]] == keys
    assert everything["KeyCount"] == len(keys) and not everything["IsTruncated"]
    assert all(o["Size"] == len(o["Key"].encode()) for o in everything["Contents"])
    assert "Owner" not in everything["Contents"][0]
    assert "Owner" in s3.list_objects_v2(Bucket=name, FetchOwner=True)["Contents"][0]

    top = s3.list_objects_v2(Bucket=name, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["top.txt", "z+z"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b/"]
    sub = s3.list_objects_v2(Bucket=name, Prefix="a/b/", Delimiter="/")
    assert [o["Key"] for o in sub["Contents"]] == ["a/b/3+.txt", "a/b/zz"]
    assert [p["Prefix"] for p in sub["CommonPrefixes"]] == ["a/b/c/"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name, Prefix="a/b")["Contents"]] == \
        [k for k in keys if k.startswith("a/b")]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name, StartAfter="a/b/zz")["Contents"]] == \
        [k for k in keys if k > "a/b/zz"]

    # Pagination with continuation tokens, two keys a page.
    seen, token, pages = [], None, 0
    while True:
        kw = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=name, MaxKeys=2, **kw)
        pages += 1
        seen += [o["Key"] for o in page.get("Contents", [])]
        assert page["MaxKeys"] == 2
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert seen == keys and pages == 4
    # The paginator (boto3 sets encoding-type=url and decodes the keys).
    pag = s3.get_paginator("list_objects_v2")
    assert [o["Key"] for p in pag.paginate(Bucket=name, PaginationConfig={"PageSize": 3})
            for o in p.get("Contents", [])] == keys
    # Raw encoding-type=url, without boto3 decoding it.
    raw = requests.get(s3.generate_presigned_url(
        "list_objects_v2", Params={"Bucket": name, "Prefix": "a/b/c/", "EncodingType": "url"}))
    assert raw.status_code == 200 and "<Key>a/b/c/4%C3%A9.txt</Key>" in raw.text, raw.text

    # V1 with markers.
    v1 = s3.list_objects(Bucket=name, MaxKeys=3)
    assert [o["Key"] for o in v1["Contents"]] == keys[:3] and v1["IsTruncated"]
    rest = s3.list_objects(Bucket=name, Marker=keys[2])
    assert [o["Key"] for o in rest["Contents"]] == keys[3:]
    pag = s3.get_paginator("list_objects")
    assert [o["Key"] for p in pag.paginate(Bucket=name, Delimiter="/", PaginationConfig={"PageSize": 1})
            for o in p.get("Contents", [])] == ["top.txt", "z+z"]
    assert s3.list_objects_v2(Bucket=name, MaxKeys=0)["KeyCount"] == 0


def test_delete(s3):
    name = bucket_name("del")
    s3.create_bucket(Bucket=name)
    keys = [f"d/{i} x+y.txt" for i in range(5)]
    for k in keys:
        s3.put_object(Bucket=name, Key=k, Body=b"x")
    assert s3.delete_object(Bucket=name, Key=keys[0])["ResponseMetadata"]["HTTPStatusCode"] == 204
    # Deleting a missing key succeeds, as S3.
    s3.delete_object(Bucket=name, Key="never/there")
    r = s3.delete_objects(Bucket=name, Delete={"Objects": [{"Key": k} for k in keys[1:3]]})
    assert sorted(d["Key"] for d in r["Deleted"]) == sorted(keys[1:3])
    assert not r.get("Errors")
    # Quiet mode lists only errors; an unstorable key is a per-key error.
    r = s3.delete_objects(Bucket=name, Delete={"Quiet": True, "Objects": [
        {"Key": keys[3]}, {"Key": "bad//key"}]})
    assert not r.get("Deleted")
    assert [e["Key"] for e in r["Errors"]] == ["bad//key"]
    assert r["Errors"][0]["Code"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=name)["Contents"]] == [keys[4]]


def test_copy(s3, bucket):
    data = xof_bytes("copy-src", 200_000)
    src = "copy/src é +%.bin"
    etag = s3.put_object(Bucket=bucket, Key=src, Body=data, ContentType="a/b")["ETag"]
    r = s3.copy_object(Bucket=bucket, Key="copy/dst 1", CopySource={"Bucket": bucket, "Key": src})
    assert r["CopyObjectResult"]["ETag"] == etag
    got = s3.get_object(Bucket=bucket, Key="copy/dst 1")
    assert got["Body"].read() == data and got["ContentType"] == "a/b"
    # Metadata directive REPLACE sets the new content type; to itself needs REPLACE.
    s3.copy_object(Bucket=bucket, Key="copy/dst 1", CopySource=f"{bucket}/copy/dst 1",
                   MetadataDirective="REPLACE", ContentType="c/d")
    assert s3.head_object(Bucket=bucket, Key="copy/dst 1")["ContentType"] == "c/d"
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="copy/dst 1", CopySource=f"{bucket}/copy/dst 1")
    assert error_code(e.value) == "InvalidRequest"
    # Across buckets.
    other = bucket_name("copy-dst")
    s3.create_bucket(Bucket=other)
    s3.copy_object(Bucket=other, Key="x", CopySource={"Bucket": bucket, "Key": src})
    assert s3.get_object(Bucket=other, Key="x")["Body"].read() == data
    # Copy-source conditionals.
    s3.copy_object(Bucket=bucket, Key="copy/dst 2", CopySource={"Bucket": bucket, "Key": src},
                   CopySourceIfMatch=etag)
    for kwargs in [{"CopySourceIfMatch": '"nope"'}, {"CopySourceIfNoneMatch": etag},
                   {"CopySourceIfModifiedSince": dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)},
                   {"CopySourceIfUnmodifiedSince": dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)}]:
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=bucket, Key="copy/dst 3",
                           CopySource={"Bucket": bucket, "Key": src}, **kwargs)
        assert error_code(e.value) == "PreconditionFailed", kwargs
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="copy/dst 3",
                       CopySource={"Bucket": bucket, "Key": "copy/missing"})
    assert error_code(e.value) == "NoSuchKey"


# --------------------------------------------------------------------------------------
# boto3: multipart
# --------------------------------------------------------------------------------------


def test_multipart(s3, bucket):
    key = "mp/obj é+.bin"
    p1 = xof_bytes("mp/1", 5 * MiB)
    p2 = xof_bytes("mp/2", 5 * MiB + 3)
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="m/p")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=1, Body=p1)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=2, Body=p2)["ETag"]
    # UploadPartCopy with a range of an existing object.
    src = xof_bytes("mp/src", 10_000)
    s3.put_object(Bucket=bucket, Key="mp/src", Body=src)
    e3 = s3.upload_part_copy(Bucket=bucket, Key=key, UploadId=up, PartNumber=3,
                             CopySource={"Bucket": bucket, "Key": "mp/src"},
                             CopySourceRange="bytes=100-1099")["CopyPartResult"]["ETag"]
    p3 = src[100:1100]

    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix="mp/")["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [(key, up)]
    parts = s3.list_parts(Bucket=bucket, Key=key, UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["ETag"], p["Size"]) for p in parts] == \
        [(1, e1, len(p1)), (2, e2, len(p2)), (3, e3, len(p3))]

    def complete(parts_list):
        return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                            MultipartUpload={"Parts": parts_list})

    with pytest.raises(ClientError) as e:
        complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": '"' + "0" * 64 + '"'}])
    assert error_code(e.value) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 4, "ETag": e2}])
    assert error_code(e.value) == "InvalidPart"
    with pytest.raises(ClientError) as e:
        complete([{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}])
    assert error_code(e.value) == "InvalidPartOrder"
    r = complete([{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2},
                  {"PartNumber": 3, "ETag": e3}])
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == p1 + p2 + p3
    assert got["ETag"] == r["ETag"] and got["ContentType"] == "m/p"

    small = s3.create_multipart_upload(Bucket=bucket, Key="mp/small")["UploadId"]
    s1 = s3.upload_part(Bucket=bucket, Key="mp/small", UploadId=small, PartNumber=1, Body=b"a" * 100)["ETag"]
    s2 = s3.upload_part(Bucket=bucket, Key="mp/small", UploadId=small, PartNumber=2, Body=b"b" * 100)["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp/small", UploadId=small,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": s1},
                                                                {"PartNumber": 2, "ETag": s2}]})
    assert error_code(e.value) == "EntityTooSmall"
    s3.abort_multipart_upload(Bucket=bucket, Key="mp/small", UploadId=small)
    with pytest.raises(ClientError) as e:
        s3.list_parts(Bucket=bucket, Key="mp/small", UploadId=small)
    assert error_code(e.value) == "NoSuchUpload"
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="mp/small")
    assert status_of(e.value) == 404


def test_multipart_complete(s3, bucket):
    key = "mp2/whole.bin"
    parts = [xof_bytes(f"mp2/{i}", 5 * MiB + i) for i in range(2)] + [b"tail"]
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType="m/p")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=i + 1, Body=p)["ETag"]
             for i, p in enumerate(parts)]
    # Re-uploading a part replaces it.
    etags[2] = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=3, Body=b"tail!")["ETag"]
    parts[2] = b"tail!"
    r = s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": e} for i, e in enumerate(etags)]})
    assert r["ETag"].endswith('-3"')
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == b"".join(parts)
    assert got["ETag"] == r["ETag"] and got["ContentType"] == "m/p"
    assert not s3.list_multipart_uploads(Bucket=bucket, Prefix="mp2/").get("Uploads")
    # boto3's managed transfer (parallel parts) both ways.
    data = xof_bytes("managed", 21 * MiB + 17)
    cfg = TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=5 * MiB, max_concurrency=4)
    s3.upload_fileobj(io.BytesIO(data), bucket, "mp2/managed", Config=cfg)
    out = io.BytesIO()
    s3.download_fileobj(bucket, "mp2/managed", out, Config=cfg)
    assert out.getvalue() == data


# --------------------------------------------------------------------------------------
# boto3: authentication and protocol hygiene
# --------------------------------------------------------------------------------------


def test_protocol_hygiene(server, s3, bucket):
    # Health needs no auth; every answer carries a request id.
    r = requests.get(server.endpoint + "/health")
    assert r.status_code == 200 and r.headers["x-amz-request-id"]
    r = requests.get(f"{server.endpoint}/{bucket}/x")
    assert r.status_code == 403 and r.headers["x-amz-request-id"]
    assert r.headers["content-type"] == "application/xml"
    assert "<Code>AccessDenied</Code>" in r.text and "<RequestId>" in r.text
    # Unsupported operations answer NotImplemented, not 500.
    for call in (lambda: s3.get_bucket_tagging(Bucket=bucket),
                 lambda: s3.get_bucket_policy(Bucket=bucket),
                 lambda: s3.get_object_acl(Bucket=bucket, Key="x")):
        with pytest.raises(ClientError) as e:
            call()
        assert error_code(e.value) == "NotImplemented" and status_of(e.value) == 501
    ids = set()
    for _ in range(3):
        ids.add(s3.list_buckets()["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"])
    assert len(ids) == 3
    # Key of exactly 1024 bytes works, 1025 is refused.
    k = "é" * 512
    s3.put_object(Bucket=bucket, Key=k, Body=b"1024")
    assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == b"1024"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key=k + "x", Body=b"x")
    assert error_code(e.value) == "KeyTooLongError"


def _aws_bin() -> str:
    venv_aws = Path(sys.executable).parent / "aws"
    aws = str(venv_aws) if venv_aws.exists() else shutil.which("aws")
    if aws is None:
        pytest.fail("aws cli not installed (it is in tests/python/requirements.txt)")
    return aws


def test_expect_continue_connection_reuse(server, bucket, tmp_path):
    """Answers to `Expect: 100-continue` that come without `100 Continue` (an empty body,
    an error before the body is read) must not break the next request on the connection:
    the aws cli's botocore misparses it otherwise (boto/botocore#3010) and hangs until its
    read timeout. One connection, an empty file first, then files with bodies."""
    env = server.cli_env(tmp_path)
    (tmp_path / "aws-config").write_text("[default]\ns3 =\n  max_concurrent_requests = 1\n")
    env["AWS_MAX_ATTEMPTS"] = "1"
    src = tmp_path / "src"
    src.mkdir()
    (src / "a-empty").write_bytes(b"")
    for i in range(3):
        (src / f"b-{i}").write_bytes(xof_bytes(f"expect/{i}", 200_000))
    (src / "c-empty").write_bytes(b"")
    (src / "d-last").write_bytes(b"last")
    aws = [_aws_bin(), "--endpoint-url", server.endpoint, "--cli-read-timeout", "10"]
    started = time.monotonic()
    run(aws + ["s3", "cp", "--recursive", "--only-show-errors", src, f"s3://{bucket}/expect/"], env)
    assert time.monotonic() - started < 9, "a response was misparsed and timed out"
    down = tmp_path / "down"
    run(aws + ["s3", "cp", "--recursive", "--only-show-errors", f"s3://{bucket}/expect/", down], env)
    assert tree_digest(down) == tree_digest(src)


def test_virtual_hosted_style(server, s3, bucket):
    """`bucket.{--s3-domain}` in the Host header names the bucket (SigV4 signed as sent)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    s3.put_object(Bucket=bucket, Key="vhost/a b+é.txt", Body=b"virtual")
    host = f"{bucket}.{VHOST_DOMAIN}:{server.port}"
    creds = Credentials(server.access_key, server.secret_key)

    def send(method, path):
        req = AWSRequest(method=method, url=f"http://{host}{path}", headers={"Host": host})
        S3SigV4Auth(creds, "s3", "us-east-1").add_auth(req)
        headers = dict(req.headers.items())
        return requests.request(method, f"{server.endpoint}{path}", headers=headers)

    r = send("GET", "/vhost/a%20b%2B%C3%A9.txt")
    assert r.status_code == 200 and r.content == b"virtual", r.text
    r = send("GET", "/?list-type=2&prefix=vhost%2F")
    assert r.status_code == 200 and "<Key>vhost/a b+é.txt</Key>" in r.text, r.text
    r = send("GET", "/vhost/missing")
    assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text


# --------------------------------------------------------------------------------------
# huggingface_hub ↔ S3
# --------------------------------------------------------------------------------------


def test_cross_client_with_huggingface_hub(server, s3, tmp_path):
    name = bucket_name("cross")
    s3.create_bucket(Bucket=name)
    hf_home = tmp_path / "hf_home"
    hf_home.mkdir()
    s3_data = {"from-s3/small é.txt": xof_bytes("cross/small", 12_345),
               "from-s3/big.bin": xof_bytes("cross/big", 9 * MiB + 11)}
    for k, v in s3_data.items():
        s3.put_object(Bucket=name, Key=k, Body=v)
    mp = xof_bytes("cross/mp", 11 * MiB)
    s3.upload_fileobj(io.BytesIO(mp), name, "from-s3/multipart.bin",
                      Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    s3_data["from-s3/multipart.bin"] = mp
    dest = tmp_path / "hf-down"
    run_hf(server, hf_home, f"""
        api.download_bucket_files("hugbucket/{name}",
            [(k, os.path.join({str(dest)!r}, k)) for k in {list(s3_data)!r}])
        emit(True)
    """)
    for k, v in s3_data.items():
        assert (dest / k).read_bytes() == v, k

    src = tmp_path / "hf-up"
    hf_files = {"from-hf/one.bin": xof_bytes("cross/hf1", 3 * MiB + 1),
                "from-hf/dir/two+2.txt": xof_bytes("cross/hf2", 777)}
    for k, v in hf_files.items():
        (src / k).parent.mkdir(parents=True, exist_ok=True)
        (src / k).write_bytes(v)
    run_hf(server, hf_home, f"""
        api.batch_bucket_files("hugbucket/{name}",
            add=[(os.path.join({str(src)!r}, k), k) for k in {list(hf_files)!r}])
        emit(True)
    """)
    for k, v in hf_files.items():
        assert s3.get_object(Bucket=name, Key=k)["Body"].read() == v, k
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=name, Prefix="from-hf/")["Contents"]]
    assert listed == sorted(hf_files)


# --------------------------------------------------------------------------------------
# CLI clients
# --------------------------------------------------------------------------------------


def _mutate(tree: Path, work: Path) -> Path:
    """A copy of ``tree`` with one file changed, one added and one removed."""
    dst = work / "mutated"
    shutil.copytree(tree, dst)
    write_xof_file(dst / ODD_KEYS[1], "mutated/changed", 5555)
    write_xof_file(dst / "new dir/new file+1.txt", "mutated/new", 4321)
    (dst / ODD_KEYS[0]).unlink()
    return dst


def test_aws_cli(server, tree, tmp_path):
    env = server.cli_env(tmp_path)
    base = [_aws_bin(), "--endpoint-url", server.endpoint]
    name = bucket_name("awscli")
    run(base + ["s3", "mb", f"s3://{name}"], env)
    run(base + ["s3", "cp", "--recursive", "--only-show-errors", tree, f"s3://{name}/up/"], env)
    ls = run(base + ["s3", "ls", "--recursive", f"s3://{name}/up/"], env).stdout.decode()
    for rel in tree_digest(tree):
        assert f"up/{rel}" in ls, rel
    head = run(base + ["s3api", "head-object", "--bucket", name, "--key", "up/big/multipart.bin"], env)
    assert '"ContentLength": %d' % BIG in head.stdout.decode()
    assert '-' in head.stdout.decode().split('"ETag"')[1].split("\n")[0], "multipart ETag"
    down = tmp_path / "down"
    run(base + ["s3", "cp", "--recursive", "--only-show-errors", f"s3://{name}/up/", down], env)
    assert tree_digest(down) == tree_digest(tree)

    mutated = _mutate(tree, tmp_path)
    run(base + ["s3", "sync", "--delete", "--only-show-errors", mutated, f"s3://{name}/up/"], env)
    # In sync now: a second sync has nothing to do.
    again = run(base + ["s3", "sync", "--delete", "--dryrun", mutated, f"s3://{name}/up/"], env)
    assert again.stdout.decode().strip() == "", again.stdout.decode()
    down2 = tmp_path / "down2"
    run(base + ["s3", "sync", "--only-show-errors", f"s3://{name}/up/", down2], env)
    assert tree_digest(down2) == tree_digest(mutated)

    rng = tmp_path / "range.bin"
    run(base + ["s3api", "get-object", "--bucket", name, "--key", "up/big/multipart.bin",
                "--range", "bytes=1000-1999", rng], env)
    assert rng.read_bytes() == xof_bytes("s3-tree/big", 1000, offset=1000)

    run(base + ["s3", "rm", "--recursive", "--only-show-errors", f"s3://{name}/"], env)
    listed = run(base + ["s3api", "list-objects-v2", "--bucket", name], env).stdout.decode()
    assert "Contents" not in listed
    run(base + ["s3", "rb", f"s3://{name}"], env)
    buckets = run(base + ["s3", "ls"], env).stdout.decode()
    assert name not in buckets


def _rclone_conf(server: ServeS3, path: Path) -> Path:
    path.write_text(f"""[hb]
type = s3
provider = Other
access_key_id = {server.access_key}
secret_access_key = {server.secret_key}
endpoint = {server.endpoint}
region = us-east-1
force_path_style = true
""")
    return path


@pytest.mark.skipif(not have_tool("rclone"), reason="rclone not installed (APT_PACKAGES in tests/run.sh)")
def test_rclone(server, tree, tmp_path):
    conf = _rclone_conf(server, tmp_path / "rclone.conf")
    env = server.cli_env(tmp_path)
    # Multipart above 16 MiB in 8 MiB parts (the default cutoff is 200 MiB).
    rc = ["rclone", "--config", conf, "--s3-upload-cutoff", "16M", "--s3-chunk-size", "8M",
          "--retries", "1", "--low-level-retries", "1"]
    name = bucket_name("rclone")
    run(rc + ["mkdir", f"hb:{name}"], env)
    run(rc + ["copy", tree, f"hb:{name}/up"], env)
    listed = run(rc + ["lsf", "-R", "--files-only", f"hb:{name}/up"], env).stdout.decode().splitlines()
    assert sorted(listed) == sorted(tree_digest(tree))
    down = tmp_path / "down"
    run(rc + ["copy", f"hb:{name}/up", down], env)
    assert tree_digest(down) == tree_digest(tree)
    run(rc + ["check", tree, f"hb:{name}/up"], env)

    mutated = _mutate(tree, tmp_path)
    run(rc + ["sync", mutated, f"hb:{name}/up"], env)
    down2 = tmp_path / "down2"
    run(rc + ["sync", f"hb:{name}/up", down2], env)
    assert tree_digest(down2) == tree_digest(mutated)

    run(rc + ["delete", f"hb:{name}/up"], env)
    assert run(rc + ["lsf", "-R", f"hb:{name}"], env).stdout.decode().strip() == ""
    run(rc + ["rmdir", f"hb:{name}"], env)
    assert name not in run(rc + ["lsd", "hb:"], env).stdout.decode()


def _s3cmd_conf(server: ServeS3, path: Path, v2: bool = False) -> Path:
    hostport = server.endpoint.removeprefix("http://")
    path.write_text(f"""[default]
access_key = {server.access_key}
secret_key = {server.secret_key}
host_base = {hostport}
host_bucket = {hostport}
use_https = False
check_ssl_certificate = False
signature_v2 = {v2}
bucket_location = us-east-1
multipart_chunk_size_mb = 15
""")
    return path


@pytest.mark.skipif(not have_tool("s3cmd"), reason="s3cmd not installed (APT_PACKAGES in tests/run.sh)")
def test_s3cmd_read_side(server, s3, tmp_path):
    """s3cmd bucket create, listing (SigV4 and SigV2), recursive download, delete."""
    env = server.cli_env(tmp_path)
    cmd = ["s3cmd", "-c", _s3cmd_conf(server, tmp_path / "s3cfg")]
    cmd_v2 = ["s3cmd", "-c", _s3cmd_conf(server, tmp_path / "s3cfg-v2", v2=True)]
    name = bucket_name("s3cmd")
    run(cmd + ["mb", f"s3://{name}"], env)
    files = {k: xof_bytes(f"s3cmd/{k}", 20_000 + i) for i, k in enumerate(ODD_KEYS)}
    files["big.bin"] = xof_bytes("s3cmd/big", 17 * MiB)
    for k, v in files.items():
        s3.put_object(Bucket=name, Key=f"t/{k}", Body=v)
    for c in (cmd, cmd_v2):
        out = run(c + ["ls", "--recursive", f"s3://{name}"], env).stdout.decode()
        for k in files:
            assert f"s3://{name}/t/{k}" in out, (k, out)
    down = tmp_path / "down"
    down.mkdir()
    run(cmd + ["get", "--recursive", f"s3://{name}/t/", f"{down}/"], env)
    assert tree_digest(down) == {k: hashlib.sha256(v).hexdigest() for k, v in files.items()}
    run(cmd + ["del", "--recursive", "--force", f"s3://{name}/t/"], env)
    run(cmd + ["rb", f"s3://{name}"], env)
    assert name not in run(cmd + ["ls"], env).stdout.decode()


@pytest.mark.skipif(not have_tool("s3cmd"), reason="s3cmd not installed (APT_PACKAGES in tests/run.sh)")
def test_s3cmd_upload(server, tree, tmp_path):
    env = server.cli_env(tmp_path)
    cmd = ["s3cmd", "-c", _s3cmd_conf(server, tmp_path / "s3cfg")]
    name = bucket_name("s3cmd-up")
    run(cmd + ["mb", f"s3://{name}"], env)
    run(cmd + ["put", "--recursive", f"{tree}/", f"s3://{name}/up/"], env)
    down = tmp_path / "down"
    down.mkdir()
    run(cmd + ["get", "--recursive", f"s3://{name}/up/", f"{down}/"], env)
    assert tree_digest(down) == tree_digest(tree)
    mutated = _mutate(tree, tmp_path)
    run(cmd + ["sync", "--delete-removed", f"{mutated}/", f"s3://{name}/up/"], env)
    down2 = tmp_path / "down2"
    down2.mkdir()
    run(cmd + ["sync", f"s3://{name}/up/", f"{down2}/"], env)
    assert tree_digest(down2) == tree_digest(mutated)
    run(cmd + ["del", "--recursive", "--force", f"s3://{name}/"], env)
    run(cmd + ["rb", f"s3://{name}"], env)


# --------------------------------------------------------------------------------------
# Both runtimes: smoke and graceful shutdown
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["glommio", "tokio"])
def test_runtime_smoke_and_graceful_shutdown(runtime, tmp_path, hugbucket_bin):
    env = {"AWS_ACCESS_KEY_ID": "SMOKEKEY", "AWS_SECRET_ACCESS_KEY": "smoke/secret+key",
           "HUGBUCKET_CREDENTIALS": "SECONDKEY:second-secret"}
    srv = ServeS3(tmp_path / "data", tmp_path / "serve.log", runtime=runtime, env=env).start()
    try:
        assert not any("AWS_SECRET_ACCESS_KEY=" in line for line in srv.stdout_lines)
        s3 = srv.client()
        s3.create_bucket(Bucket="smoke")
        data = xof_bytes(f"smoke/{runtime}", 40 * MiB + 3)
        s3.put_object(Bucket="smoke", Key="a b/é+.bin", Body=data)
        s3.upload_fileobj(io.BytesIO(data), "smoke", "mp.bin",
                          Config=TransferConfig(multipart_threshold=8 * MiB, multipart_chunksize=8 * MiB))
        assert s3.get_object(Bucket="smoke", Key="a b/é+.bin")["Body"].read() == data
        assert s3.get_object(Bucket="smoke", Key="mp.bin", Range="bytes=-10")["Body"].read() == data[-10:]
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="smoke")["Contents"]] == ["a b/é+.bin", "mp.bin"]
        second = srv.client(access_key="SECONDKEY", secret_key="second-secret")
        assert second.head_object(Bucket="smoke", Key="mp.bin")["ContentLength"] == len(data)

        # SIGTERM while a large download is in flight: it completes; the server then exits 0.
        resp = s3.get_object(Bucket="smoke", Key="mp.bin")["Body"]
        first = resp.read(1 * MiB)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        # Draining: new requests are refused (and their connection closed).
        r = requests.get(srv.endpoint + "/health")
        assert r.status_code == 503 and r.headers["connection"] == "close", r.text
        rest = resp.read()
        assert first + rest == data
        assert srv.proc.wait(timeout=60) == 0, srv.log_tail()
    finally:
        srv.stop()


def test_sigterm_during_a_500_mib_upload_lets_it_finish(tmp_path):
    """SIGTERM while a 500 MiB PUT is streaming: the upload completes, the server exits 0,
    and after a restart the object is complete and byte-identical."""
    import threading

    srv = ServeS3(tmp_path / "data", tmp_path / "serve.log").start()
    # 63 distinct 8 MiB pieces (over 500 MiB, no dedup), generated as they are sent.
    src = XofPieces("sigterm/upload", 63, 8 * MiB)
    size = src.size

    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="drain")
        result = {}

        def upload():
            try:
                result["etag"] = s3.put_object(Bucket="drain", Key="big.bin", Body=src)["ETag"]
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                result["error"] = repr(e)

        t = threading.Thread(target=upload)
        t.start()
        # Wait until the upload is well under way (the hub has received some xorbs).
        deadline = time.time() + 120
        while time.time() < deadline and not list((tmp_path / "data" / "hub" / "xorbs").glob("**/*.xorb")):
            time.sleep(0.2)
        assert t.is_alive(), result
        srv.proc.send_signal(signal.SIGTERM)
        t.join(timeout=600)
        assert "etag" in result, result
        assert srv.proc.wait(timeout=120) == 0, srv.log_tail()
    finally:
        srv.stop()

    again = ServeS3(tmp_path / "data", tmp_path / "serve2.log").start()
    try:
        s3 = again.client()
        head = s3.head_object(Bucket="drain", Key="big.bin")
        assert head["ContentLength"] == size
        assert head["ETag"] == result["etag"]
        digest = hashlib.sha256()
        body = s3.get_object(Bucket="drain", Key="big.bin")["Body"]
        for piece in iter(lambda: body.read(8 * MiB), b""):
            digest.update(piece)
        assert digest.hexdigest() == src.sha256()
    finally:
        again.stop()
