"""Reliability end to end: hub faults seen through `hugbucket serve`, and SIGKILL of the
gateway at random moments.

* Faults: `hugbucket serve --hub-fault RULE` injects faults in the embedded hub (grammar in
  ``crates/hub/src/faults.rs``). Transient faults are absorbed (byte-identical results);
  persistent ones surface as S3 ``503 SlowDown`` / FTP ``451`` with nothing visible, or, once
  a GET body has started, as an aborted response, never as short bytes that look complete.
* Crashes: ``kill -9`` of `hugbucket serve` during a streaming PUT, between multipart parts,
  during CompleteMultipartUpload and while GETs fill the chunk cache; after a restart on the
  same data dir no object is half-visible, no acknowledged write is lost, and the chunk
  cache (also with a deliberately corrupted segment) serves only correct bytes.

The kill moments come from ``random.Random(SEED)``; the seed is printed (``-s`` shows it) and
``HUGBUCKET_CRASH_SEED`` replays a run. The standalone hub's SIGKILL test is
``test_hub.py::test_14_sigkill_during_uploads_never_leaves_dangling_files``.
"""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest
import requests
from botocore.exceptions import BotoCoreError, ClientError

from conftest import XofPieces, free_port, hugbucket_bin_path, stop_process, wait_for_port, xof_bytes
from s3_util import ServeS3, bucket_name, error_code, status_of

SEED = int(os.environ.get("HUGBUCKET_CRASH_SEED", "20251126"))
MiB = 1 << 20


@pytest.fixture
def rng(request) -> random.Random:
    seed = f"{SEED}/{request.node.name}"
    print(f"\ncrash test seed: HUGBUCKET_CRASH_SEED={SEED} ({seed})")
    return random.Random(seed)


def serve(tmp_path: Path, *faults: str, name: str = "serve") -> ServeS3:
    # A fixed hub port: restarts keep the URL the log names first (ServeS3 reads that one).
    args: list[str] = ["--hub-listen", f"127.0.0.1:{free_port()}"]
    for f in faults:
        args += ["--hub-fault", f]
    return ServeS3(tmp_path / "data", tmp_path / f"{name}.log", extra_args=tuple(args)).start()


def client(server: ServeS3):
    """A boto3 client that never retries (its own retries would hide the gateway's answer)."""
    return server.client(retries={"total_max_attempts": 1, "mode": "standard"})


def hub_stats(server: ServeS3) -> dict:
    r = requests.get(f"{server.hub_url}/api/_hugbucket/stats",
                     headers={"Authorization": f"Bearer {server.hub_token}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def route_count(server: ServeS3, route: str) -> int:
    return hub_stats(server)["requests"].get(route, 0)


def sigkill(server: ServeS3) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=30)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def get_sha(s3, bucket: str, key: str) -> tuple[int, str]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    h, n = hashlib.sha256(), 0
    for piece in iter(lambda: body.read(MiB), b""):
        h.update(piece)
        n += len(piece)
    return n, h.hexdigest()


def listed(s3, bucket: str) -> dict[str, int]:
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def assert_absent_or_complete(s3, bucket: str, key: str, size: int, digest: str) -> bool:
    """HEAD, GET and the listing agree: the key is absent everywhere, or present everywhere
    with its full size and exact bytes. Returns whether it is present."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        assert status_of(e) == 404, e
        with pytest.raises(ClientError) as err:
            s3.get_object(Bucket=bucket, Key=key)
        assert error_code(err.value) == "NoSuchKey"
        assert key not in listed(s3, bucket)
        return False
    assert head["ContentLength"] == size
    assert get_sha(s3, bucket, key) == (size, digest)
    assert listed(s3, bucket).get(key) == size
    return True


# --------------------------------------------------------------------------------------
# Hub faults through the gateway
# --------------------------------------------------------------------------------------


def test_persistent_upload_faults_are_slowdown_and_leave_nothing(tmp_path):
    """Every attempt of the xorb upload (then of the batch registration) answering 503:
    the PUT fails with 503 SlowDown and the key is not visible; once the faults are used up
    (5 attempts each) the same PUT succeeds."""
    server = serve(tmp_path, "xorb_upload:503:5", "batch:503:5")
    try:
        s3 = client(server)
        b = bucket_name("faults")
        s3.create_bucket(Bucket=b)
        data = [xof_bytes(f"persistent-put/{i}", 2 * MiB + i) for i in range(3)]
        for i in range(2):
            with pytest.raises(ClientError) as err:
                s3.put_object(Bucket=b, Key=f"k{i}", Body=data[i])
            assert (error_code(err.value), status_of(err.value)) == ("SlowDown", 503)
            assert not assert_absent_or_complete(s3, b, f"k{i}", len(data[i]), sha(data[i]))
        stats = hub_stats(server)["requests"]
        assert stats["xorb_upload"] >= 5 and stats["batch"] >= 5, stats
        s3.put_object(Bucket=b, Key="k2", Body=data[2])
        assert assert_absent_or_complete(s3, b, "k2", len(data[2]), sha(data[2]))
        assert listed(s3, b) == {"k2": len(data[2])}
    finally:
        server.stop()


def test_transient_get_faults_are_retried_byte_identical(tmp_path):
    """Resets mid-body, 503s, an expired token and a trickling body on the GET path: the
    client gets the exact bytes, and each fault was really met."""
    server = serve(tmp_path, "fetch:reset=50000:2", "reconstruction_v2:503:2",
                   "reconstruction_v2:expired:1", "fetch:truncate=1000:1",
                   "fetch:trickle=2000000:1")
    try:
        s3 = client(server)
        b = bucket_name("faults")
        s3.create_bucket(Bucket=b)
        data = xof_bytes("transient-get", 3 * MiB + 17)
        s3.put_object(Bucket=b, Key="obj", Body=data)
        tokens = route_count(server, "xet_read_token")
        assert get_sha(s3, b, "obj") == (len(data), sha(data))
        stats = hub_stats(server)["requests"]
        # 2 resets + 1 truncation + the trickled fetch that finished; 2 x 503 + 1 x 401 + 1.
        assert stats["fetch"] >= 4, stats
        assert stats["reconstruction_v2"] >= 4, stats
        assert stats["xet_read_token"] >= tokens + 1, stats
        # A ranged read (the trickle rule is used up: plain again).
        r = s3.get_object(Bucket=b, Key="obj", Range="bytes=1000000-2000000")["Body"].read()
        assert r == data[1000000:2000001]
    finally:
        server.stop()


def test_persistent_get_fault_aborts_the_response(tmp_path):
    """Every xorb range fetch cut short: the GET is answered (HEAD and the reconstruction
    work) but its body is aborted before Content-Length bytes; never complete-looking.
    Restarted without faults, the same GET is byte-identical (nothing bad was cached)."""
    server = serve(tmp_path)
    b = bucket_name("faults")
    data = xof_bytes("persistent-get", 4 * MiB)
    try:
        s3 = client(server)
        s3.create_bucket(Bucket=b)
        s3.put_object(Bucket=b, Key="obj", Body=data)
    finally:
        server.stop()
    server = serve(tmp_path, "fetch:truncate=100000", name="faulty")
    try:
        s3 = client(server)
        got = b""
        with pytest.raises((BotoCoreError, ClientError, OSError)):
            resp = s3.get_object(Bucket=b, Key="obj")
            assert resp["ContentLength"] == len(data)
            got = resp["Body"].read()
        assert len(got) < len(data)
        # Raw HTTP: the connection closes short of the announced length.
        url = s3.generate_presigned_url("get_object", Params={"Bucket": b, "Key": "obj"})
        received = 0
        with pytest.raises(requests.exceptions.RequestException):
            with requests.get(url, stream=True, timeout=60) as r:
                assert r.status_code == 200
                assert int(r.headers["Content-Length"]) == len(data)
                for piece in r.iter_content(65536):
                    received += len(piece)
        assert received < len(data)
        assert route_count(server, "fetch") >= 5
    finally:
        server.stop()
    server = serve(tmp_path, name="healthy")
    try:
        assert get_sha(client(server), b, "obj") == (len(data), sha(data))
    finally:
        server.stop()


FTP_USER, FTP_PASSWORD = "crashuser", "crash-pw"


def test_ftp_persistent_upload_fault_is_451_and_leaves_nothing(tmp_path):
    """Over FTP the same persistent hub failure is a transient 4xx reply (451), and the file
    does not appear; a later STOR (faults used up) works and RETR returns the bytes."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HF_ENDPOINT")}
    env.update({"FTP_USERNAME": FTP_USER, "FTP_PASSWORD": FTP_PASSWORD, "RUST_LOG": "info"})
    argv = [str(hugbucket_bin_path()), "serve", "--mode", "ftp",
            "--ftp-listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data"),
            "--hub-listen", f"127.0.0.1:{free_port()}",
            "--admin-listen", f"127.0.0.1:{free_port()}",
            "--ftp-passive-ports", "46000-46999", "--hub-fault", "xorb_upload:503:5"]
    with open(tmp_path / "ftp.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_for_port(port, timeout=60)
        f = ftplib.FTP()
        f.connect("127.0.0.1", port, timeout=120)
        f.login(FTP_USER, FTP_PASSWORD)
        f.mkd("/ftpfaults")
        data = xof_bytes("ftp-fault", 2 * MiB)
        with pytest.raises(ftplib.error_temp) as err:
            f.storbinary("STOR /ftpfaults/a.bin", io.BytesIO(data))
        assert str(err.value).startswith("451"), err.value
        assert "a.bin" not in f.nlst("/ftpfaults")
        f.storbinary("STOR /ftpfaults/b.bin", io.BytesIO(data))
        out = io.BytesIO()
        f.retrbinary("RETR /ftpfaults/b.bin", out.write)
        assert out.getvalue() == data
        with pytest.raises(ftplib.error_perm):
            f.retrbinary("RETR /ftpfaults/a.bin", io.BytesIO().write)
        f.quit()
    finally:
        stop_process(proc)


# --------------------------------------------------------------------------------------
# SIGKILL of `hugbucket serve`
# --------------------------------------------------------------------------------------


def kill_during(server: ServeS3, rng: random.Random, span: float, call) -> tuple[float, bool]:
    """Runs ``call()`` in a thread, SIGKILLs the server at a random moment within ``span``
    seconds, restarts it on the same data dir; returns (the delay, whether ``call``
    returned a response, i.e. the client got an acknowledgement)."""
    outcome: list = []

    def run():
        try:
            outcome.append(call())
        except Exception as e:  # noqa: BLE001 - any client error is an outcome
            outcome.append(e)

    t = threading.Thread(target=run)
    t.start()
    delay = rng.uniform(0.05, 0.95) * span
    time.sleep(delay)
    sigkill(server)
    t.join(timeout=120)
    server.start()
    return delay, bool(outcome) and isinstance(outcome[0], dict)


def test_sigkill_during_streaming_put(tmp_path, rng):
    """kill -9 at a random moment of a streaming 48 MiB PUT (generated on the fly), three
    times on one data dir: after each restart the object is absent or complete and
    identical everywhere, and every earlier acknowledged PUT is intact."""
    # Slow shard and batch calls widen the window where the object is all uploaded but not
    # yet registered.
    server = serve(tmp_path, "shard_v2:delay=300ms", "batch:delay=300ms")
    b = bucket_name("crash")
    acknowledged: dict[str, tuple[int, str]] = {}
    try:
        client(server).create_bucket(Bucket=b)
        # Calibration: how long one such PUT takes here; the kills land inside it.
        started = time.monotonic()
        client(server).put_object(Bucket=b, Key="calibration",
                                  Body=XofPieces("streaming/calibration", 48, MiB))
        span = time.monotonic() - started
        for round_ in range(3):
            s3 = client(server)
            small = xof_bytes(f"acked/{round_}", 300_000 + round_)
            s3.put_object(Bucket=b, Key=f"acked-{round_}", Body=small)
            acknowledged[f"acked-{round_}"] = (len(small), sha(small))
            body = XofPieces(f"streaming/{round_}", 48, MiB)
            digest = body.sha256()
            delay, acked = kill_during(server, rng, span, lambda s3=s3, body=body, k=f"big-{round_}":
                                       s3.put_object(Bucket=b, Key=k, Body=body))
            s3 = client(server)
            present = assert_absent_or_complete(s3, b, f"big-{round_}", body.size, digest)
            print(f"round {round_}: kill after {delay:.2f}s, acknowledged={acked}, "
                  f"present={present}")
            assert present or not acked, "an acknowledged PUT was lost"
            for key, (size, d) in acknowledged.items():
                assert get_sha(s3, b, key) == (size, d), key
    finally:
        server.stop()


def _part(upload: str, n: int) -> bytes:
    return xof_bytes(f"mpu/{upload}/{n}", 5 * MiB + (n if n == 4 else 0))


def test_sigkill_between_multipart_parts(tmp_path, rng):
    """kill -9 while parts are being uploaded one after the other: after a restart every
    acknowledged part is listed with its ETag, the missing ones are uploaded again, and
    Complete gives exactly the concatenated bytes."""
    server = serve(tmp_path, "xorb_upload:delay=150ms")
    b = bucket_name("crash")
    try:
        client(server).create_bucket(Bucket=b)
        s3 = client(server)
        uid = s3.create_multipart_upload(Bucket=b, Key="calibration")["UploadId"]
        started = time.monotonic()
        for n in range(1, 5):
            s3.upload_part(Bucket=b, Key="calibration", UploadId=uid, PartNumber=n,
                           Body=_part(uid, n))
        span = time.monotonic() - started
        s3.abort_multipart_upload(Bucket=b, Key="calibration", UploadId=uid)
        for round_ in range(3):
            s3 = client(server)
            key = f"mpu-{round_}"
            uid = s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
            acked: dict[int, str] = {}

            def upload_parts(client=s3, uid=uid, key=key, acked=acked):
                for n in range(1, 5):
                    r = client.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n,
                                           Body=_part(uid, n))
                    acked[n] = r["ETag"]

            delay, _ = kill_during(server, rng, span, upload_parts)
            s3 = client(server)
            parts = {p["PartNumber"]: p["ETag"]
                     for p in s3.list_parts(Bucket=b, Key=key, UploadId=uid).get("Parts", [])}
            print(f"round {round_}: kill after {delay:.2f}s, acknowledged parts "
                  f"{sorted(acked)}, listed {sorted(parts)}")
            for n, etag in acked.items():
                assert parts.get(n) == etag, f"acknowledged part {n} lost"
            for n in range(1, 5):
                if n not in parts:
                    parts[n] = s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n,
                                              Body=_part(uid, n))["ETag"]
            s3.complete_multipart_upload(
                Bucket=b, Key=key, UploadId=uid,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": parts[n]}
                                           for n in range(1, 5)]})
            whole = b"".join(_part(uid, n) for n in range(1, 5))
            assert assert_absent_or_complete(s3, b, key, len(whole), sha(whole))
    finally:
        server.stop()


def test_sigkill_during_complete_multipart_upload(tmp_path, rng):
    """kill -9 while CompleteMultipartUpload runs: after a restart the object is absent or
    complete; completing again (same parts) then succeeds with exactly the right bytes."""
    server = serve(tmp_path, "shard_v2:delay=200ms", "batch:delay=200ms")
    b = bucket_name("crash")
    try:
        client(server).create_bucket(Bucket=b)
        # Calibration: the time of one Complete (upload of parts not counted).
        s3 = client(server)
        uid = s3.create_multipart_upload(Bucket=b, Key="calibration")["UploadId"]
        etag = s3.upload_part(Bucket=b, Key="calibration", UploadId=uid, PartNumber=1,
                              Body=b"x" * 1000)["ETag"]
        started = time.monotonic()
        s3.complete_multipart_upload(Bucket=b, Key="calibration", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag}]})
        span = time.monotonic() - started
        for round_ in range(3):
            s3 = client(server)
            key = f"complete-{round_}"
            uid = s3.create_multipart_upload(Bucket=b, Key=key)["UploadId"]
            parts = [{"PartNumber": n,
                      "ETag": s3.upload_part(Bucket=b, Key=key, UploadId=uid, PartNumber=n,
                                             Body=_part(uid, n))["ETag"]}
                     for n in range(1, 4)]
            whole = b"".join(_part(uid, n) for n in range(1, 4))
            delay, acked = kill_during(
                server, rng, span,
                lambda s3=s3, uid=uid, key=key, parts=parts: s3.complete_multipart_upload(
                    Bucket=b, Key=key, UploadId=uid, MultipartUpload={"Parts": parts}))
            s3 = client(server)
            present = assert_absent_or_complete(s3, b, key, len(whole), sha(whole))
            print(f"round {round_}: kill after {delay:.3f}s, acknowledged={acked}, "
                  f"present={present}")
            assert present or not acked, "an acknowledged Complete was lost"
            s3.complete_multipart_upload(Bucket=b, Key=key, UploadId=uid,
                                         MultipartUpload={"Parts": parts})
            assert assert_absent_or_complete(s3, b, key, len(whole), sha(whole))
    finally:
        server.stop()


def test_sigkill_while_gets_fill_the_cache_and_corrupt_segments(tmp_path, rng):
    """kill -9 while concurrent GETs fill the chunk cache (three times), then a cache with
    deliberately damaged segment files: every later GET (whole and ranged) is exact."""
    # Fetches trickle at 40 MB/s: the cache fills over about a second.
    server = serve(tmp_path, "fetch:trickle=40000000")
    b = bucket_name("crash")
    data = xof_bytes("cache-crash", 40 * MiB + 5)
    digest = sha(data)
    try:
        s3 = client(server)
        s3.create_bucket(Bucket=b)
        s3.put_object(Bucket=b, Key="obj", Body=data)
        for round_ in range(3):
            s3 = client(server)

            def reader(client=s3):
                try:
                    get_sha(client, b, "obj")
                except Exception:  # noqa: BLE001 - the server was killed
                    pass

            threads = [threading.Thread(target=reader) for _ in range(3)]
            for t in threads:
                t.start()
            delay = rng.uniform(0.05, 0.8)
            time.sleep(delay)
            sigkill(server)
            for t in threads:
                t.join(timeout=120)
            print(f"round {round_}: kill after {delay:.2f}s")
            server.start()
            s3 = client(server)
            assert get_sha(s3, b, "obj") == (len(data), digest)
            r = s3.get_object(Bucket=b, Key="obj", Range="bytes=7000000-9000000")["Body"].read()
            assert r == data[7000000:9000001]
        # Now the cache holds the object: damage every segment file while stopped.
        server.stop()
        segments = sorted((tmp_path / "data" / "cache").rglob("*.seg"))
        assert segments and sum(p.stat().st_size for p in segments) > 10 * MiB, segments
        for p in segments:
            size = p.stat().st_size
            with open(p, "r+b") as f:
                for _ in range(64):
                    at = rng.randrange(0, size)
                    f.seek(at)
                    byte = f.read(1)
                    f.seek(at)
                    f.write(bytes([byte[0] ^ 0xFF]))
        server.start()
        s3 = client(server)
        before = route_count(server, "fetch")
        assert get_sha(s3, b, "obj") == (len(data), digest)
        r = s3.get_object(Bucket=b, Key="obj", Range="bytes=123-4567890")["Body"].read()
        assert r == data[123:4567891]
        fetches = route_count(server, "fetch") - before
        # The damaged records were misses: the bytes came from the hub again.
        assert fetches >= 1, fetches
    finally:
        server.stop()


# --------------------------------------------------------------------------------------
# Whole reads are verified whatever mix of cache and CAS serves them
# --------------------------------------------------------------------------------------


def serve_both(tmp_path: Path, *extra: str) -> tuple[ServeS3, int]:
    """`serve --mode both` (S3 + FTP, the S3 key pair logs in over FTP) with its FTP port."""
    ftp_port = free_port()
    args = ("--hub-listen", f"127.0.0.1:{free_port()}", "--ftp-listen", f"127.0.0.1:{ftp_port}",
            "--ftp-passive-ports", "47000-47999", *extra)
    server = ServeS3(tmp_path / "data", tmp_path / "serve.log", mode="both", extra_args=args)
    return server.start(), ftp_port


def hub_get(server: ServeS3, path: str, token: str | None = None) -> dict | list:
    r = requests.get(f"{server.hub_url}{path}", timeout=30,
                     headers={"Authorization": f"Bearer {token or server.hub_token}"})
    r.raise_for_status()
    return r.json()


def reconstruction_terms(server: ServeS3, bucket: str, key: str) -> list[dict]:
    """The hub's reconstruction of `bucket/key`: its terms (xorb hash, chunk range, length)."""
    ns = hub_get(server, "/api/whoami-v2")["name"]
    tree = hub_get(server, f"/api/buckets/{ns}/{bucket}/tree?recursive=true")
    xet_hash = next(e["xetHash"] for e in tree if e["path"] == key)
    token = hub_get(server, f"/api/buckets/{ns}/{bucket}/xet-read-token")["accessToken"]
    return hub_get(server, f"/v2/reconstructions/{xet_hash}", token)["terms"]


def flip_chunk_byte(xorb: Path, chunk: int) -> None:
    """Flips one data byte in the middle of stored chunk `chunk` of a xorb file. The chunk
    must be stored uncompressed, so that it still decodes, to the wrong bytes."""
    raw = bytearray(xorb.read_bytes())
    off = 0
    for _ in range(chunk):
        off += 8 + int.from_bytes(raw[off + 1:off + 4], "little")
    clen, scheme = int.from_bytes(raw[off + 1:off + 4], "little"), raw[off + 4]
    assert scheme == 0 and clen > 2, (scheme, clen)
    raw[off + 8 + clen // 2] ^= 0x01
    xorb.write_bytes(bytes(raw))


def rewrite_cached_byte(cache_dir: Path) -> int:
    """Flips one data byte of every chunk cache record and rewrites the record's CRC (layout in
    crates/cache/src/segment.rs): wrong bytes that the cache's own check accepts, as if they
    had been wrong when stored. Returns the number of records changed."""
    import zlib

    changed = 0
    for seg in sorted(cache_dir.rglob("*.seg")):
        raw = bytearray(seg.read_bytes())
        off = 0
        while raw[off:off + 4] == b"HBC1":
            start, end, dlen = struct.unpack_from("<III", raw, off + 40)
            data_off = off + 52 + 4 * (end - start)
            raw[data_off + dlen // 2] ^= 0x01
            raw[off + 4:off + 8] = struct.pack("<I", zlib.crc32(raw[off + 8:data_off + dlen]))
            off = data_off + dlen
            changed += 1
        seg.write_bytes(bytes(raw))
    return changed


def s3_whole_get(s3, bucket: str, key: str) -> bytes | None:
    """The body of a whole GET, or None when the response was cut short."""
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError, requests.RequestException, OSError):
        return None


def ftp_whole_retr(server: ServeS3, port: int, path: str) -> bytes | None:
    """The file of a whole RETR, or None when the transfer failed."""
    got = io.BytesIO()
    f = ftplib.FTP()
    f.connect("127.0.0.1", port, timeout=120)
    f.login(server.access_key, server.secret_key)
    try:
        f.retrbinary(f"RETR {path}", got.write, blocksize=MiB)
    except (ftplib.Error, OSError):
        return None
    finally:
        f.close()
    return got.getvalue()


def mismatches(server: ServeS3) -> int:
    m = re.search(r"^hugbucket_get_hash_mismatches_total (\d+)$", server.metrics(), re.M)
    assert m, "hugbucket_get_hash_mismatches_total missing from /metrics"
    return int(m.group(1))


def test_whole_reads_are_verified_over_cache_and_cas(tmp_path):
    """The case a ranged read sets up: it fills the chunk cache with the object's first term
    (a ranged read has no file hash to check against). Then

    * the xorb of the *second* term is corrupted on the hub: a whole GET (S3) and a whole
      RETR (FTP) serve the first term from the cache and the second from the CAS, and must
      be cut short, never complete with the wrong bytes;
    * the cached first term is corrupted in the cache segment, with a valid record CRC: the
      same whole reads must be cut short too, the bad entries dropped (the next read is
      exact), and each mismatch counted on /metrics."""
    server, ftp_port = serve_both(tmp_path)
    b = bucket_name("verify")
    # Over 64 MiB: two xorbs, so two terms.
    data = {k: xof_bytes(f"verify-{k}", 72 * MiB + 11) for k in ("cas", "cache")}
    try:
        s3 = client(server)
        s3.create_bucket(Bucket=b)
        terms = {}
        for k, v in data.items():
            s3.put_object(Bucket=b, Key=k, Body=v)
            terms[k] = reconstruction_terms(server, b, k)
            assert len({t["hash"] for t in terms[k]}) >= 2, terms[k]

        def fill_first_term(key: str) -> None:
            first = terms[key][0]["unpacked_length"]
            r = s3.get_object(Bucket=b, Key=key, Range=f"bytes=0-{first - 1}")["Body"].read()
            assert r == data[key][:first]

        # 1. A corrupted xorb behind a cached first term.
        second = terms["cas"][1]
        xorbs = list((tmp_path / "data" / "hub").rglob(f"{second['hash']}.xorb"))
        assert len(xorbs) == 1, xorbs
        flip_chunk_byte(xorbs[0], second["range"]["start"] + 1)
        fill_first_term("cas")
        assert s3_whole_get(s3, b, "cas") is None, "S3 GET completed over a corrupted xorb"
        assert mismatches(server) == 1
        fill_first_term("cas")
        assert ftp_whole_retr(server, ftp_port, f"/{b}/cas") is None, \
            "FTP RETR completed over a corrupted xorb"
        assert mismatches(server) == 2

        # 2. Wrong bytes in the cache that its CRC accepts (rewritten while stopped).
        for via in ("s3", "ftp"):
            fill_first_term("cache")
            server.stop()
            assert rewrite_cached_byte(tmp_path / "data" / "cache") >= 1
            server.start()
            s3 = client(server)
            got = (s3_whole_get(s3, b, "cache") if via == "s3"
                   else ftp_whole_retr(server, ftp_port, f"/{b}/cache"))
            assert got is None, f"{via}: a whole read completed with corrupted cached bytes"
            assert mismatches(server) == 1
            # The bad entries were dropped: the next whole read is exact (from the CAS).
            assert s3_whole_get(s3, b, "cache") == data["cache"]
        # /metrics tells private memory from the mapped cache pages.
        text = server.metrics()
        for kind in ("anon", "shmem", "file"):
            assert re.search(rf'^hugbucket_process_resident_bytes{{kind="{kind}"}} \d+$', text,
                             re.M), kind
    finally:
        server.stop()


# --------------------------------------------------------------------------------------
# SIGTERM drains FTP transfers
# --------------------------------------------------------------------------------------


def xet_hash_of(src: XofPieces) -> str:
    """The Xet file hash of `src`, by `hugbucket hash -` (the hash the hub records)."""
    proc = subprocess.Popen([str(hugbucket_bin_path()), "hash", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    src.seek(0)
    for piece in iter(lambda: src.read(8 * MiB), b""):
        proc.stdin.write(piece)
    proc.stdin.close()
    out = proc.stdout.read().decode()
    assert proc.wait(timeout=120) == 0, out
    return out.split()[0]


def test_sigterm_drains_ftp_retr_and_stor_of_1_gib(tmp_path):
    """SIGTERM while a 1 GiB RETR and a 1 GiB STOR are in flight (each past 128 MiB): new
    connections are refused at once, both transfers complete with 226, the RETR's bytes are
    exact, the server (and its embedded hub) stop cleanly with exit 0, and after a restart
    the stored object has the source's Xet hash."""
    retr_src = XofPieces("sigterm/ftp-retr", 128, 8 * MiB)
    stor_src = XofPieces("sigterm/ftp-stor", 128, 8 * MiB)
    server, ftp_port = serve_both(tmp_path, "--shutdown-timeout", "300")
    b = bucket_name("drain")
    progress = {"retr": 0, "stor": 0}
    result: dict = {}

    def ftp() -> ftplib.FTP:
        f = ftplib.FTP()
        f.connect("127.0.0.1", ftp_port, timeout=300)
        f.login(server.access_key, server.secret_key)
        return f

    def retr() -> None:
        digest = hashlib.sha256()

        def got(piece: bytes) -> None:
            digest.update(piece)
            progress["retr"] += len(piece)

        try:
            f = ftp()
            result["retr"] = f.retrbinary(f"RETR /{b}/retr.bin", got, blocksize=MiB)
            result["retr_sha"] = digest.hexdigest()
        except Exception as e:  # noqa: BLE001 - reported by the assertions below
            result["retr_error"] = repr(e)

    def stor() -> None:
        def sent(piece: bytes) -> None:
            progress["stor"] += len(piece)

        try:
            f = ftp()
            stor_src.seek(0)
            result["stor"] = f.storbinary(f"STOR /{b}/stor.bin", stor_src, blocksize=MiB,
                                          callback=sent)
        except Exception as e:  # noqa: BLE001 - reported by the assertions below
            result["stor_error"] = repr(e)

    try:
        s3 = client(server)
        s3.create_bucket(Bucket=b)
        s3.put_object(Bucket=b, Key="retr.bin", Body=retr_src)
        threads = [threading.Thread(target=retr), threading.Thread(target=stor)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 300
        while min(progress.values()) < 128 * MiB:
            assert all(t.is_alive() for t in threads), result
            assert time.monotonic() < deadline, progress
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGTERM)
        # New connections are refused while the transfers drain.
        refused_by = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", ftp_port), timeout=1).close()
            except ConnectionRefusedError:
                break
            assert time.monotonic() < refused_by, "still accepting FTP connections"
            time.sleep(0.05)
        assert min(progress.values()) < retr_src.size, "a transfer ended before the refusal"
        for t in threads:
            t.join(timeout=300)
        assert result.get("retr", "").startswith("226"), result
        assert result.get("stor", "").startswith("226"), result
        assert progress["retr"] == retr_src.size
        assert result["retr_sha"] == retr_src.sha256()
        assert server.proc.wait(timeout=120) == 0, server.log_tail()
        assert "embedded hub stopped" in server.log_tail(20000), server.log_tail()
    finally:
        server.stop()

    server.start()
    try:
        s3 = client(server)
        assert s3.head_object(Bucket=b, Key="stor.bin")["ContentLength"] == stor_src.size
        ns = hub_get(server, "/api/whoami-v2")["name"]
        tree = hub_get(server, f"/api/buckets/{ns}/{b}/tree?recursive=true")
        stored = next(e["xetHash"] for e in tree if e["path"] == "stor.bin")
        assert stored == xet_hash_of(stor_src)
    finally:
        server.stop()
