"""Security and hostile-input checks of `hugbucket serve` (S3, plus FTP log hygiene).

* Every S3 operation the server implements is refused (403, with the S3 error code of the
  failure) without credentials, with a wrong secret and with an unknown access key, and
  leaves no trace: buckets, objects and multipart uploads are unchanged.
* Presigned URLs (SigV4 and SigV2): valid before expiry, refused after it and when any
  signed part of the URL is changed. `/health` needs no auth and says nothing else.
* Secrets (S3 secret key, FTP password, hub token, wrong passwords tried) never reach the
  log, stdout or stderr, even at debug level.
* Hostile HTTP: oversized headers, bodies longer or shorter than Content-Length, invalid
  UTF-8 and over-long keys, bad bucket names, a 10 000-part CompleteMultipartUpload of
  missing parts, huge / deep / entity-expanding XML, malformed aws-chunked bodies. Each
  answer is a clear 4xx, nothing half-written is committed, and afterwards the server still
  answers `/health` and a normal PUT/GET round trip.

One server per runtime (glommio, the default, and tokio) serves the whole module, except
the log test which needs its own server with debug logging, FTP and fixed credentials.
"""

from __future__ import annotations

import ftplib
import hashlib
import hmac
import http.client
import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import requests
from botocore.exceptions import ClientError

from conftest import PrivateMemorySampler, free_port
from s3_util import ServeS3, error_code, status_of

BUCKET = "sec-main"
EMPTY_BUCKET = "sec-empty"
KEEP = "keep.txt"
KEEP_BODY = b"precious bytes"
MP_KEY = "mp/upload.bin"


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def _uri_encode(s: str, safe: str) -> str:
    return quote(s, safe=safe + "-_.~")


def sigv4_headers(server: ServeS3, method: str, path: str, query: str = "",
                  headers: dict | None = None, payload: str = "UNSIGNED-PAYLOAD",
                  access_key: str | None = None, secret_key: str | None = None):
    """Signs a request with SigV4 (header form). Returns (headers, chunk-signing state:
    (signing key, amz date, scope, seed signature))."""
    ak = server.access_key if access_key is None else access_key
    sk = server.secret_key if secret_key is None else secret_key
    now = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    date = now[:8]
    h = {k.lower(): str(v) for k, v in (headers or {}).items()}
    h["host"] = f"127.0.0.1:{server.port}"
    h["x-amz-date"] = now
    h["x-amz-content-sha256"] = payload
    signed = sorted(h)
    canon_headers = "".join(f"{k}:{' '.join(h[k].split())}\n" for k in signed)
    pairs = sorted((_uri_encode(unquote(k), ""), _uri_encode(unquote(v), ""))
                   for k, _, v in (p.partition("=") for p in query.split("&") if p))
    canon_query = "&".join(f"{k}={v}" for k, v in pairs)
    creq = "\n".join([method, _uri_encode(unquote(path), "/"), canon_query, canon_headers,
                      ";".join(signed), payload])
    scope = f"{date}/us-east-1/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", now, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{sk}".encode(), date), "us-east-1"), "s3"), "aws4_request")
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={ak}/{scope}, "
                          f"SignedHeaders={';'.join(signed)}, Signature={sig}")
    return h, (key, now, scope, sig)


def chunk_signature(state, previous: str, data: bytes) -> str:
    key, now, scope, _ = state
    sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", now, scope, previous,
                     hashlib.sha256(b"").hexdigest(), hashlib.sha256(data).hexdigest()])
    return hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()


def raw_request(server: ServeS3, method: str, path: str, query: str = "",
                headers: dict | None = None, body: bytes = b"", sign: bool = True,
                timeout: float = 60.0) -> tuple[int, dict, bytes]:
    """One request on a fresh connection, exactly as given (no client-side re-encoding)."""
    hdrs = dict(headers or {})
    if body or method in ("PUT", "POST"):
        hdrs.setdefault("Content-Length", str(len(body)))
    if sign:
        hdrs, _ = sigv4_headers(server, method, path, query, hdrs)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.putrequest(method, path + (f"?{query}" if query else ""), skip_host="host" in hdrs,
                        skip_accept_encoding=True)
        for k, v in hdrs.items():
            conn.putheader(k, v)
        conn.endheaders()
        if body:
            conn.send(body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def xml_code(body: bytes) -> str | None:
    m = re.search(rb"<Code>([^<]*)</Code>", body)
    return m.group(1).decode() if m else None


def assert_healthy(server: ServeS3, s3) -> None:
    """The server still answers /health and a normal PUT/GET round trip."""
    r = requests.get(server.endpoint + "/health", timeout=30)
    assert r.status_code == 200 and r.text == "OK"
    body = os.urandom(1000)
    s3.put_object(Bucket=BUCKET, Key="health/roundtrip", Body=body)
    assert s3.get_object(Bucket=BUCKET, Key="health/roundtrip")["Body"].read() == body
    assert server.proc.poll() is None


def object_exists(s3, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as e:
        assert status_of(e) == 404, e
        return False


# --------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["glommio", "tokio"])
def server(request, tmp_path_factory, hugbucket_bin):
    """One server per runtime (their socket layers differ); every test below runs on both."""
    d = tmp_path_factory.mktemp(f"security-{request.param}")
    srv = ServeS3(d / "data", d / "serve.log", runtime=request.param).start()
    yield srv
    code = srv.stop()
    assert code == 0, f"serve exited with {code}: {srv.log_tail()}"
    # No request of this module may have made the server panic.
    assert "panicked" not in srv.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def s3(server):
    return server.client()


@pytest.fixture(scope="module")
def state(s3):
    """The state every refused request must leave untouched: a bucket with one object, an
    empty bucket, and a multipart upload with exactly one part."""
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=EMPTY_BUCKET)
    s3.put_object(Bucket=BUCKET, Key=KEEP, Body=KEEP_BODY)
    up = s3.create_multipart_upload(Bucket=BUCKET, Key=MP_KEY)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=MP_KEY, UploadId=up, PartNumber=1, Body=b"part one")
    return {"upload_id": up}


def snapshot(s3, upload_id: str) -> dict:
    buckets = sorted(b["Name"] for b in s3.list_buckets()["Buckets"])
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
                  if not o["Key"].startswith("health/"))
    uploads = sorted((u["Key"], u["UploadId"])
                     for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []))
    parts = [(p["PartNumber"], p["Size"])
             for p in s3.list_parts(Bucket=BUCKET, Key=MP_KEY, UploadId=upload_id)["Parts"]]
    return {"buckets": buckets, "keys": keys, "uploads": uploads, "parts": parts,
            "keep": s3.get_object(Bucket=BUCKET, Key=KEEP)["Body"].read()}


# --------------------------------------------------------------------------------------
# 1. Authentication on every operation
# --------------------------------------------------------------------------------------

_DELETE_XML = (f"<Delete><Object><Key>{KEEP}</Key></Object></Delete>").encode()
_COMPLETE_XML = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>"


def _md5_b64(b: bytes) -> str:
    import base64
    return base64.b64encode(hashlib.md5(b).digest()).decode()


#: operation -> (raw request: method, path, query, headers, body; boto3 call(client, upload id))
OPERATIONS = {
    "ListBuckets": (("GET", "/", "", {}, b""), lambda c, u: c.list_buckets()),
    "CreateBucket": (("PUT", "/sec-forbidden-new", "", {}, b""),
                     lambda c, u: c.create_bucket(Bucket="sec-forbidden-new")),
    "DeleteBucket": (("DELETE", f"/{EMPTY_BUCKET}", "", {}, b""),
                     lambda c, u: c.delete_bucket(Bucket=EMPTY_BUCKET)),
    "HeadBucket": (("HEAD", f"/{BUCKET}", "", {}, b""), lambda c, u: c.head_bucket(Bucket=BUCKET)),
    "GetBucketLocation": (("GET", f"/{BUCKET}", "location", {}, b""),
                          lambda c, u: c.get_bucket_location(Bucket=BUCKET)),
    "GetBucketVersioning": (("GET", f"/{BUCKET}", "versioning", {}, b""),
                            lambda c, u: c.get_bucket_versioning(Bucket=BUCKET)),
    "ListObjectsV2": (("GET", f"/{BUCKET}", "list-type=2", {}, b""),
                      lambda c, u: c.list_objects_v2(Bucket=BUCKET)),
    "ListObjects": (("GET", f"/{BUCKET}", "", {}, b""), lambda c, u: c.list_objects(Bucket=BUCKET)),
    "PutObject": (("PUT", f"/{BUCKET}/forbidden.txt", "", {}, b"forged"),
                  lambda c, u: c.put_object(Bucket=BUCKET, Key="forbidden.txt", Body=b"forged")),
    "GetObject": (("GET", f"/{BUCKET}/{KEEP}", "", {}, b""),
                  lambda c, u: c.get_object(Bucket=BUCKET, Key=KEEP)),
    "HeadObject": (("HEAD", f"/{BUCKET}/{KEEP}", "", {}, b""),
                   lambda c, u: c.head_object(Bucket=BUCKET, Key=KEEP)),
    "DeleteObject": (("DELETE", f"/{BUCKET}/{KEEP}", "", {}, b""),
                     lambda c, u: c.delete_object(Bucket=BUCKET, Key=KEEP)),
    "DeleteObjects": (("POST", f"/{BUCKET}", "delete", {"Content-MD5": _md5_b64(_DELETE_XML)},
                       _DELETE_XML),
                      lambda c, u: c.delete_objects(Bucket=BUCKET,
                                                    Delete={"Objects": [{"Key": KEEP}]})),
    "CopyObject": (("PUT", f"/{BUCKET}/copied.txt", "",
                    {"x-amz-copy-source": f"/{BUCKET}/{KEEP}"}, b""),
                   lambda c, u: c.copy_object(Bucket=BUCKET, Key="copied.txt",
                                              CopySource={"Bucket": BUCKET, "Key": KEEP})),
    "CreateMultipartUpload": (("POST", f"/{BUCKET}/mp/new.bin", "uploads", {}, b""),
                              lambda c, u: c.create_multipart_upload(Bucket=BUCKET,
                                                                     Key="mp/new.bin")),
    "UploadPart": (("PUT", f"/{BUCKET}/{MP_KEY}", "partNumber=2&uploadId={u}", {}, b"part two"),
                   lambda c, u: c.upload_part(Bucket=BUCKET, Key=MP_KEY, UploadId=u,
                                              PartNumber=2, Body=b"part two")),
    "UploadPartCopy": (("PUT", f"/{BUCKET}/{MP_KEY}", "partNumber=3&uploadId={u}",
                        {"x-amz-copy-source": f"/{BUCKET}/{KEEP}"}, b""),
                       lambda c, u: c.upload_part_copy(Bucket=BUCKET, Key=MP_KEY, UploadId=u,
                                                       PartNumber=3,
                                                       CopySource={"Bucket": BUCKET, "Key": KEEP})),
    "CompleteMultipartUpload": (("POST", f"/{BUCKET}/{MP_KEY}", "uploadId={u}", {}, _COMPLETE_XML),
                                lambda c, u: c.complete_multipart_upload(
                                    Bucket=BUCKET, Key=MP_KEY, UploadId=u,
                                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": "x"}]})),
    "AbortMultipartUpload": (("DELETE", f"/{BUCKET}/{MP_KEY}", "uploadId={u}", {}, b""),
                             lambda c, u: c.abort_multipart_upload(Bucket=BUCKET, Key=MP_KEY,
                                                                   UploadId=u)),
    "ListMultipartUploads": (("GET", f"/{BUCKET}", "uploads", {}, b""),
                             lambda c, u: c.list_multipart_uploads(Bucket=BUCKET)),
    "ListParts": (("GET", f"/{BUCKET}/{MP_KEY}", "uploadId={u}", {}, b""),
                  lambda c, u: c.list_parts(Bucket=BUCKET, Key=MP_KEY, UploadId=u)),
}

#: how -> expected S3 error code
AUTH_FAILURES = {
    "unsigned": "AccessDenied",
    "wrong-secret": "SignatureDoesNotMatch",
    "unknown-key": "InvalidAccessKeyId",
}


def test_operation_table_is_complete(hugbucket_bin, repo_root):
    """OPERATIONS lists every operation of the router (a new one must be added here)."""
    src = (repo_root / "crates/s3/src/router.rs").read_text()
    enum = src.split("pub enum Operation {", 1)[1].split("}", 1)[0]
    ops = set(re.findall(r"^\s*([A-Z][A-Za-z0-9]+),", enum, re.M)) - {"Health", "NotImplemented"}
    assert ops == set(OPERATIONS)


@pytest.mark.parametrize("how", list(AUTH_FAILURES))
@pytest.mark.parametrize("op", list(OPERATIONS))
def test_every_operation_needs_valid_credentials(server, s3, state, op, how):
    up = state["upload_id"]
    before = snapshot(s3, up)
    (method, path, query, headers, body), call = OPERATIONS[op]
    query = query.format(u=up)
    expected = AUTH_FAILURES[how]
    if how == "unsigned":
        status, hdrs, text = raw_request(server, method, path, query, headers, body, sign=False)
        assert status == 403, (status, text)
        if method != "HEAD":
            assert xml_code(text) == expected, text
            assert hdrs.get("content-type") == "application/xml"
    else:
        client = (server.client(secret_key="not-the-secret") if how == "wrong-secret"
                  else server.client(access_key="AKIDNOSUCHKEY0000000"))
        with pytest.raises(ClientError) as e:
            call(client, up)
        assert status_of(e.value) == 403
        if method != "HEAD":
            assert error_code(e.value) == expected
    assert snapshot(s3, up) == before
    assert not object_exists(s3, BUCKET, "forbidden.txt")
    assert not object_exists(s3, BUCKET, "copied.txt")
    assert not object_exists(s3, BUCKET, MP_KEY)


def test_raw_signed_requests_are_accepted(server, s3, state):
    """Control for the table above: the same raw requests, correctly signed, succeed (so a
    403 there is the missing/bad credential, not a malformed request)."""
    for op in ("ListBuckets", "HeadBucket", "GetBucketLocation", "ListObjectsV2", "GetObject",
               "ListMultipartUploads", "ListParts"):
        (method, path, query, headers, body), _ = OPERATIONS[op]
        status, _, text = raw_request(server, method, path, query.format(u=state["upload_id"]),
                                      headers, body)
        assert status == 200, (op, text)


# --------------------------------------------------------------------------------------
# Presigned URLs and /health
# --------------------------------------------------------------------------------------


def test_presigned_urls(server, s3, state):
    v4 = server.client(signature_version="s3v4")
    v2 = server.client(signature_version="s3")
    params = {"Bucket": BUCKET, "Key": KEEP}
    for c, sig_field in [(v4, "X-Amz-Signature="), (v2, "Signature=")]:
        url = c.generate_presigned_url("get_object", Params=params, ExpiresIn=300)
        assert sig_field in url
        r = requests.get(url, timeout=30)
        assert r.status_code == 200 and r.content == KEEP_BODY
        # Any change to what was signed is refused: the signature, the key, the expiry.
        tampered = [url.replace(sig_field, sig_field + "00"),
                    url.replace(f"/{KEEP}?", "/other.txt?")]
        tampered.append(re.sub(r"(X-Amz-Expires=)\d+", r"\g<1>600", url) if c is v4
                        else re.sub(r"(Expires=)(\d+)", lambda m: m.group(1) + str(int(m.group(2)) + 1), url))
        for bad in tampered:
            assert bad != url
            r = requests.get(bad, timeout=30)
            assert r.status_code == 403 and xml_code(r.content) == "SignatureDoesNotMatch", (bad, r.text)
        # A presigned GET URL does not allow a PUT or DELETE of the same key.
        for method in ("PUT", "DELETE"):
            r = requests.request(method, url, data=b"x" if method == "PUT" else None, timeout=30)
            assert r.status_code == 403, (method, r.text)
    assert s3.get_object(**params)["Body"].read() == KEEP_BODY
    # Presigned PUT works, then expires.
    put_url = v4.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "presigned-put"},
                                        ExpiresIn=300)
    assert requests.put(put_url, data=b"via presigned put", timeout=30).status_code == 200
    assert s3.get_object(Bucket=BUCKET, Key="presigned-put")["Body"].read() == b"via presigned put"
    short = [c.generate_presigned_url("get_object", Params=params, ExpiresIn=1) for c in (v4, v2)]
    short_put = v4.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": "late-put"},
                                          ExpiresIn=1)
    time.sleep(2.5)
    for url in short:
        r = requests.get(url, timeout=30)
        assert r.status_code == 403 and xml_code(r.content) == "AccessDenied", r.text
        assert "expired" in r.text
    r = requests.put(short_put, data=b"too late", timeout=30)
    assert r.status_code == 403 and xml_code(r.content) == "AccessDenied"
    assert not object_exists(s3, BUCKET, "late-put")
    # An absurd expiry (beyond any representable time) is an error, not a crash.
    url = v2.generate_presigned_url("get_object", Params=params, ExpiresIn=300)
    r = requests.get(re.sub(r"Expires=\d+", "Expires=18446744073709551615", url), timeout=30)
    assert r.status_code == 403
    assert_healthy(server, s3)


def test_health_needs_no_auth_and_reveals_nothing(server, s3, state):
    for path in ("/health", "/minio/health/live"):
        r = requests.get(server.endpoint + path, timeout=30)
        assert r.status_code == 200 and r.text == "OK"
        assert set(r.headers) <= {"content-length", "x-amz-request-id", "x-amz-id-2", "server",
                                  "date", "content-type"}, r.headers
    # Only an exact unauthenticated GET of the probe path is anonymous.
    for method, path in [("GET", "/health?list-type=2"), ("HEAD", "/health"), ("PUT", "/health"),
                         ("GET", "/health/"), ("GET", "/health/x"), ("DELETE", "/health"),
                         ("GET", "/%68ealth/../sec-main"), ("GET", f"/health/../{BUCKET}")]:
        p, _, q = path.partition("?")
        status, _, text = raw_request(server, method, p, q, sign=False)
        assert status == 403, (method, path, status, text)
        assert method == "HEAD" or xml_code(text) == "AccessDenied", text
        assert KEEP.encode() not in text and b"<Contents>" not in text


# --------------------------------------------------------------------------------------
# 2. Secrets never in logs
# --------------------------------------------------------------------------------------


def test_secrets_never_logged(tmp_path, hugbucket_bin):
    ak, sk = "AKIDLOGTEST000000001", "logtest-secret-Zq8vX2pLm9"
    ftp_user, ftp_pass = "ftpuser", "ftp-pass-Hn4kT7wQ"
    wrong_secret, wrong_pass = "wrong-secret-Yb3nR6", "wrong-pass-Jc5mP1"
    ftp_port = free_port()
    srv = ServeS3(tmp_path / "data", tmp_path / "serve.log",
                  mode="both", extra_args=("--ftp-listen", f"127.0.0.1:{ftp_port}",
                              "--ftp-passive-ports", "46000-46999"),
                  env={"AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk,
                       "FTP_USERNAME": ftp_user, "FTP_PASSWORD": ftp_pass,
                       "RUST_LOG": os.environ.get("SECURITY_LOG_LEVEL", "debug")})
    srv.start()
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="logs")
        s3.put_object(Bucket="logs", Key="a.txt", Body=b"hello")
        assert s3.get_object(Bucket="logs", Key="a.txt")["Body"].read() == b"hello"
        s3.list_objects_v2(Bucket="logs")
        url = srv.client(signature_version="s3").generate_presigned_url(
            "get_object", Params={"Bucket": "logs", "Key": "a.txt"}, ExpiresIn=60)
        assert requests.get(url, timeout=30).status_code == 200
        with pytest.raises(ClientError):
            srv.client(secret_key=wrong_secret).list_buckets()
        with pytest.raises(ClientError):
            srv.client(access_key=sk, secret_key=sk).list_buckets()
        f = ftplib.FTP()
        f.connect("127.0.0.1", ftp_port, timeout=30)
        with pytest.raises(ftplib.error_perm):
            f.login(ftp_user, wrong_pass)
        f.close()
        f = ftplib.FTP()
        f.connect("127.0.0.1", ftp_port, timeout=30)
        f.login(ftp_user, ftp_pass)
        assert "logs" in f.nlst("/")
        f.quit()
        hub_token = srv.hub_token
        assert len(hub_token) >= 16
    finally:
        srv.stop()
    log = srv.log_path.read_text(errors="replace")
    out = "".join(srv.stdout_lines)
    # Sanity: debug logging was on and the log covers the traffic above.
    assert " DEBUG " in log, "debug logging was not on"
    assert "ftp login refused" in log and "s3 request" in log
    for name, secret in [("S3 secret", sk), ("FTP password", ftp_pass), ("hub token", hub_token),
                         ("wrong S3 secret", wrong_secret), ("wrong FTP password", wrong_pass)]:
        assert secret not in log, f"{name} found in the serve log"
        assert secret not in out, f"{name} found on stdout"


# --------------------------------------------------------------------------------------
# 3. Hostile HTTP input
# --------------------------------------------------------------------------------------


def _recv_all(sock: socket.socket, timeout: float = 30.0) -> tuple[bytes, bool]:
    """Reads until the peer closes (True) or `timeout` passes with no data (False)."""
    sock.settimeout(timeout)
    out = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return out, False
        except ConnectionResetError:
            return out, True
        if not chunk:
            return out, True
        out += chunk


@pytest.mark.parametrize("size", [100 << 10, 1 << 20])
def test_oversized_headers(server, s3, state, size):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * size + b"\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading (and close) before all of it is sent
        data, closed = _recv_all(sock, timeout=10)
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None
    assert status in (400, 431), data[:300]
    assert closed, "the connection stayed open after an oversized header section"
    assert_healthy(server, s3)


def _put_head(server: ServeS3, key: str, length: int) -> bytes:
    h, _ = sigv4_headers(server, "PUT", f"/{BUCKET}/{key}", headers={"Content-Length": str(length)})
    return (f"PUT /{BUCKET}/{key} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
            + "\r\n").encode()


def test_body_longer_than_content_length(server, s3, state):
    # Extra bytes that are not a request: the object is the declared 5 bytes; the garbage is
    # answered as a bad request (or the connection is closed), never merged into the object.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_put_head(server, "cl/extra", 5) + b"helloEXTRA GARBAGE NOT PART OF IT\r\n\r\n")
        data, _ = _recv_all(sock, timeout=5)
    assert data.startswith(b"HTTP/1.1 200 "), data[:300]
    rest = data.split(b"HTTP/1.1 ")[2:]
    assert all(r.startswith(b"400 ") for r in rest), data
    assert s3.get_object(Bucket=BUCKET, Key="cl/extra")["Body"].read() == b"hello"
    # Extra bytes that form a valid request are the next request on the connection.
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_put_head(server, "cl/pipelined", 5)
                     + b"world" + b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data, closed = _recv_all(sock, timeout=10)
    assert closed
    answers = data.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 2 and answers[0].startswith(b"200 ") and answers[1].startswith(b"200 ")
    assert answers[1].endswith(b"\r\n\r\nOK")
    assert s3.get_object(Bucket=BUCKET, Key="cl/pipelined")["Body"].read() == b"world"
    assert_healthy(server, s3)


def test_body_shorter_than_content_length_then_close(server, s3, state):
    for key, sent in [("cl/short", b"only ten b"), ("cl/nothing", b"")]:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(_put_head(server, key, 100_000) + sent)
            sock.shutdown(socket.SHUT_WR)
            _recv_all(sock, timeout=10)
    # Give the server time to notice the closed connection, then nothing must be there.
    time.sleep(1)
    assert not object_exists(s3, BUCKET, "cl/short")
    assert not object_exists(s3, BUCKET, "cl/nothing")
    assert_healthy(server, s3)


@pytest.mark.parametrize("path", [f"/{BUCKET}/%FF", f"/{BUCKET}/a%C3%28b", f"/{BUCKET}/%ED%A0%80",
                                  "/%FF/key", "/%C0%AF"])
def test_invalid_utf8_in_path(server, s3, state, path):
    for sign in (True, False):
        status, _, text = raw_request(server, "PUT" if sign else "GET", path, body=b"x" if sign else b"",
                                      sign=sign)
        assert status == 400 and xml_code(text) == "InvalidURI", (path, status, text)
    assert_healthy(server, s3)


def test_key_too_long(server, s3, state):
    key = "k" * 1025
    status, _, text = raw_request(server, "PUT", f"/{BUCKET}/{key}", body=b"x")
    assert status == 400 and xml_code(text) == "KeyTooLongError", text
    status, _, text = raw_request(server, "PUT", f"/{BUCKET}/dst", body=b"",
                                  headers={"x-amz-copy-source": f"/{BUCKET}/{key}"})
    assert status == 400 and xml_code(text) == "KeyTooLongError", text
    status, _, _ = raw_request(server, "PUT", f"/{BUCKET}/{'k' * 1024}", body=b"x")
    assert status == 200
    assert_healthy(server, s3)


BAD_BUCKET_NAMES = ["ab", "a" * 64, "UPPER", "Bad_Case", "-lead", "trail-", ".lead", "trail.",
                    "a..b", "spa ce", "192.168.1.1", "xn--punycode", "bucket-s3alias",
                    "sthree-bucket", "b\u00e9b", "a"]


@pytest.mark.parametrize("name", BAD_BUCKET_NAMES)
def test_bad_bucket_names(server, s3, state, name):
    status, _, text = raw_request(server, "PUT", "/" + quote(name, safe="%"))
    assert status == 400 and xml_code(text) == "InvalidBucketName", (name, status, text)
    assert name not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_good_bucket_names(server, s3, state):
    for name in ["abc", "a" * 63, "with-dash.and.dots", "under_score", "1digit-first"]:
        status, _, text = raw_request(server, "PUT", f"/{name}")
        assert status == 200, (name, text)
        s3.delete_bucket(Bucket=name)


def test_complete_with_10000_missing_parts(server, s3, state):
    up = s3.create_multipart_upload(Bucket=BUCKET, Key="mp/huge-complete")["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key="mp/huge-complete", UploadId=up, PartNumber=1, Body=b"x")
    etag = '"' + "0" * 64 + '-1"'
    xml = ("<CompleteMultipartUpload>" + "".join(
        f"<Part><PartNumber>{i}</PartNumber><ETag>{etag}</ETag></Part>" for i in range(1, 10_001))
        + "</CompleteMultipartUpload>").encode()
    assert len(xml) < (2 << 20)
    with PrivateMemorySampler(server.proc.pid) as mem:
        status, _, text = raw_request(server, "POST", f"/{BUCKET}/mp/huge-complete",
                                      f"uploadId={up}", body=xml, timeout=60)
    assert status == 400 and xml_code(text) == "InvalidPart", text
    # Bounded memory: private memory grew by less than 64 MiB for a 0.7 MiB document.
    assert mem.growth_kib < 64 << 10, mem.growth_kib
    assert not object_exists(s3, BUCKET, "mp/huge-complete")
    s3.abort_multipart_upload(Bucket=BUCKET, Key="mp/huge-complete", UploadId=up)
    assert_healthy(server, s3)


HUGE_LISTING_KEYS = int(os.environ.get("HUGBUCKET_HUGE_LISTING_KEYS", "1000000"))


def test_listing_a_huge_bucket_is_paged_in_bounded_memory(server, s3, state):
    """A bucket with a million keys (registered at the hub in bulk, all pointing at one
    stored file) lists page by page: correct order, continuation, delimiter folding and
    prefix push-down, with the gateway's private memory (sampled during the listings)
    growing by less than 64 MiB."""
    import json

    s3.put_object(Bucket=BUCKET, Key="huge/seed", Body=b"seed")
    xet = s3.head_object(Bucket=BUCKET, Key="huge/seed")["ETag"].strip('"').split("-")[0]
    n = HUGE_LISTING_KEYS
    for start in range(0, n, 100_000):
        lines = "\n".join(json.dumps({"type": "addFile", "path": f"huge/d{i % 100:02d}/k{i:07d}",
                                      "xetHash": xet})
                          for i in range(start, min(n, start + 100_000)))
        r = requests.post(f"{server.hub_url}/api/buckets/hugbucket/{BUCKET}/batch",
                          data=lines.encode(), timeout=300,
                          headers={"Authorization": f"Bearer {server.hub_token}",
                                   "Content-Type": "application/x-ndjson"})
        assert r.ok, r.text
    with PrivateMemorySampler(server.proc.pid) as mem:
        first = s3.list_objects_v2(Bucket=BUCKET, Prefix="huge/d", MaxKeys=1000)
        keys = [o["Key"] for o in first["Contents"]]
        assert first["KeyCount"] == 1000 and first["IsTruncated"]
        assert keys == [f"huge/d00/k{i:07d}" for i in range(0, 100_000, 100)]
        second = s3.list_objects_v2(Bucket=BUCKET, Prefix="huge/d", MaxKeys=1000,
                                    ContinuationToken=first["NextContinuationToken"])
        assert second["Contents"][0]["Key"] == "huge/d00/k0100000"
        assert all(o["Size"] == 4 for o in second["Contents"])

        folded = s3.list_objects_v2(Bucket=BUCKET, Prefix="huge/", Delimiter="/")
        assert [p["Prefix"] for p in folded["CommonPrefixes"]] == [f"huge/d{i:02d}/" for i in range(100)]
        assert [o["Key"] for o in folded["Contents"]] == ["huge/seed"]

        last = s3.list_objects_v2(Bucket=BUCKET, Prefix="huge/d99/", MaxKeys=3)
        assert [o["Key"] for o in last["Contents"]] == [f"huge/d99/k{i:07d}" for i in (99, 199, 299)]
    assert mem.growth_kib < 64 << 10, mem.growth_kib
    assert_healthy(server, s3)


def _billion_laughs() -> bytes:
    ents = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    return (f'<?xml version="1.0"?><!DOCTYPE Delete [{"".join(ents)}]>'
            "<Delete><Object><Key>&lol9;</Key></Object></Delete>").encode()


HOSTILE_XML = {
    "10 MiB": b"<Delete>" + b"<Object><Key>k</Key></Object>" * (10 * (1 << 20) // 28) + b"</Delete>",
    "deeply nested": b"<Delete>" + b"<a>" * 100_000 + b"</a>" * 100_000 + b"</Delete>",
    "billion laughs": _billion_laughs(),
    "external entity": (b'<?xml version="1.0"?><!DOCTYPE Delete [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                        b"<Delete><Object><Key>&x;</Key></Object></Delete>"),
    "unclosed": b"<Delete><Object><Key>k</Key></Object>",
    "not xml": b"\x00\xff\xfe garbage",
    "undefined entity": b"<Delete><Object><Key>&nope;</Key></Object></Delete>",
    "wrong root": b"<CompleteMultipartUpload/>",
    "1001 keys": b"<Delete>" + b"<Object><Key>k</Key></Object>" * 1001 + b"</Delete>",
}


@pytest.mark.parametrize("name", list(HOSTILE_XML))
def test_hostile_xml_bodies(server, s3, state, name):
    body = HOSTILE_XML[name]
    for method, query, path in [("POST", "delete", f"/{BUCKET}"),
                                ("POST", f"uploadId={state['upload_id']}", f"/{BUCKET}/{MP_KEY}"),
                                ("PUT", "", "/sec-xml-bucket")]:
        try:
            status, _, text = raw_request(server, method, path, query, body=body, timeout=60)
        except (BrokenPipeError, ConnectionResetError):
            continue  # refused (and closed) before the whole body was sent
        assert status == 400, (name, path, status, text[:300])
        assert xml_code(text) in ("MalformedXML", "InvalidArgument", "InvalidPart"), text[:300]
    assert snapshot(s3, state["upload_id"])["keep"] == KEEP_BODY
    assert "sec-xml-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert_healthy(server, s3)


def _chunked_put(server: ServeS3, key: str, make_body, payload: str, decoded_len: int,
                 extra: dict | None = None):
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded_len)}
    headers.update(extra or {})
    body_len_probe = make_body(None)
    headers["Content-Length"] = str(len(body_len_probe))
    h, st = sigv4_headers(server, "PUT", f"/{BUCKET}/{key}", headers=headers, payload=payload)
    body = make_body(st)
    assert len(body) == len(body_len_probe)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("PUT", f"/{BUCKET}/{key}", skip_host=True, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _signed_chunks(pieces: list[bytes], corrupt: int | None = None):
    def make(st):
        out, prev = b"", st[3] if st else "0" * 64
        for i, p in enumerate(pieces + [b""]):
            sig = chunk_signature(st, prev, p) if st else "0" * 64
            prev = sig
            if corrupt == i:
                sig = ("1" if sig[0] == "0" else "0") + sig[1:]
            out += f"{len(p):x};chunk-signature={sig}\r\n".encode() + p + (b"\r\n" if p else b"")
        return out + b"\r\n"
    return make


def test_aws_chunked_signed(server, s3, state):
    pieces = [os.urandom(100), os.urandom(37)]
    n = sum(map(len, pieces))
    mode = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    # Control: correct chunk signatures are accepted.
    status, text = _chunked_put(server, "chunked/good", _signed_chunks(pieces), mode, n)
    assert status == 200, text
    assert s3.get_object(Bucket=BUCKET, Key="chunked/good")["Body"].read() == b"".join(pieces)
    # A wrong signature on any chunk (the final empty one included) commits nothing.
    for i in range(3):
        status, text = _chunked_put(server, f"chunked/badsig{i}", _signed_chunks(pieces, corrupt=i),
                                    mode, n)
        assert status == 403 and xml_code(text) == "SignatureDoesNotMatch", (i, text)
        assert not object_exists(s3, BUCKET, f"chunked/badsig{i}")
    assert_healthy(server, s3)


def test_aws_chunked_checksum_trailer(server, s3, state):
    """A CRC32 trailer that matches the body commits the object; a wrong one (or one that
    names another algorithm than `x-amz-trailer` announced) commits nothing."""
    import base64
    import zlib

    good = base64.b64encode(zlib.crc32(b"hello").to_bytes(4, "big")).decode()
    mode = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    trailer = {"x-amz-trailer": "x-amz-checksum-crc32"}

    def body(line: str):
        return lambda st: b"5\r\nhello\r\n0\r\n" + line.encode() + b"\r\n\r\n"

    status, text = _chunked_put(server, "trailer/good", body(f"x-amz-checksum-crc32:{good}"),
                                mode, 5, trailer)
    assert status == 200, text
    assert s3.get_object(Bucket=BUCKET, Key="trailer/good")["Body"].read() == b"hello"
    for name, line in [("wrong", "x-amz-checksum-crc32:AAAAAA=="),
                       ("other-algorithm", f"x-amz-checksum-crc32c:{good}")]:
        status, text = _chunked_put(server, f"trailer/{name}", body(line), mode, 5, trailer)
        assert status == 400, (name, status, text)
        assert xml_code(text) in ("BadDigest", "InvalidRequest"), (name, text)
        assert not object_exists(s3, BUCKET, f"trailer/{name}"), name
    assert_healthy(server, s3)


BAD_CHUNKED = {
    "bad size line": b"zz\r\nhello\r\n0\r\n\r\n",
    "negative size": b"-5\r\nhello\r\n0\r\n\r\n",
    "huge size": b"fffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "overlong size": b"0000000000000000005\r\nhello\r\n0\r\n\r\n",
    "size line without CRLF": b"5\nhello\r\n0\r\n\r\n",
    "data longer than size": b"3\r\nhello\r\n0\r\n\r\n",
    "no final chunk": b"5\r\nhello\r\n",
    "more than decoded length": b"6\r\nhello!\r\n0\r\n\r\n",
    "data after final chunk": b"5\r\nhello\r\n0\r\n\r\nGARBAGE",
    "endless size line": b"5" + b"0" * 8000 + b"\r\n",
}


@pytest.mark.parametrize("name", list(BAD_CHUNKED))
def test_aws_chunked_malformed(server, s3, state, name):
    body = BAD_CHUNKED[name]
    key = "chunked/bad-" + re.sub(r"\W", "-", name)
    status, text = _chunked_put(server, key, lambda st: body, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", 5)
    assert 400 <= status < 500, (status, text)
    assert xml_code(text) in ("InvalidRequest", "IncompleteBody", "SignatureDoesNotMatch"), text
    assert not object_exists(s3, BUCKET, key)
    assert_healthy(server, s3)
