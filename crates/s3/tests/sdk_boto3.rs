//! Real-client check of the protocol layer: boto3 (default checksum settings, so
//! aws-chunked bodies with CRC trailers), explicit checksum algorithms, streamed uploads,
//! SigV4 and SigV2 presigned URLs and a wrong secret, against a fixture service built on
//! [`Frontend`] + [`VerifyingBody`] on both runtimes. The fixture keeps objects in memory;
//! it is not the product service. It runs the repository's `.venv` Python (where
//! `tests/run.sh` installs boto3 and awscrt from `tests/python/requirements.txt`) and fails
//! when that venv, boto3 or awscrt is missing.

use std::collections::HashMap;
use std::process::Command;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures_util::StreamExt;
use http::{HeaderValue, Response, StatusCode};
use hugbucket_s3::auth::{Authenticator, Credentials, VerifyingBody};
use hugbucket_s3::frontend::{Frontend, decorate, error_response};
use hugbucket_s3::router::{Operation, RouterConfig};
use hugbucket_s3::runtime::{
    Handler, HandlerFactory, RuntimeKind, ServeConfig, empty, full, serve,
};
use hugbucket_s3::{S3Error, S3ErrorCode};
use md5::Digest;

type Store = Arc<Mutex<HashMap<String, Vec<u8>>>>;

fn factory(store: Store, modes: Arc<Mutex<Vec<String>>>) -> HandlerFactory {
    Arc::new(move |_| {
        let mut creds = Credentials::new();
        creds
            .insert("HBTESTKEY", "hb/test+secret")
            .insert("SECONDKEY", "second-secret");
        let fe = Rc::new(Frontend::new(
            RouterConfig::default(),
            Authenticator::new(creds),
        ));
        let store = store.clone();
        let modes = modes.clone();
        let h: Handler = Rc::new(move |req| {
            let fe = fe.clone();
            let store = store.clone();
            let modes = modes.clone();
            Box::pin(async move {
                let ids = fe.ids();
                let (parts, body) = req.into_parts();
                let path = parts.uri.path().to_string();
                let admitted = match fe.admit(&parts, SystemTime::now()) {
                    Ok(a) => a,
                    Err(e) => return error_response(&e, &parts.method, &path, &ids),
                };
                let key = format!(
                    "{}/{}",
                    admitted.route.bucket.clone().unwrap_or_default(),
                    admitted.route.key.clone().unwrap_or_default()
                );
                let mut resp = match admitted.route.op {
                    Operation::PutObject => {
                        let mode = parts
                            .headers
                            .get("x-amz-content-sha256")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let trailer = parts
                            .headers
                            .get("x-amz-trailer")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let mut stream = VerifyingBody::new(body, admitted.body);
                        let mut data = Vec::new();
                        let mut failed = None;
                        while let Some(x) = stream.next().await {
                            match x {
                                Ok(b) => data.extend_from_slice(&b),
                                Err(e) => {
                                    failed = Some(e);
                                    break;
                                }
                            }
                        }
                        if let Some(e) = failed {
                            return error_response(&e, &parts.method, &path, &ids);
                        }
                        modes.lock().unwrap().push(format!("{mode} {trailer}"));
                        let etag = format!("\"{}\"", hex::encode(md5::Md5::digest(&data)));
                        store.lock().unwrap().insert(key, data);
                        let mut r = Response::new(empty());
                        r.headers_mut()
                            .insert("etag", HeaderValue::from_str(&etag).unwrap());
                        r
                    }
                    Operation::GetObject => match store.lock().unwrap().get(&key) {
                        Some(d) => Response::new(full(d.clone())),
                        None => {
                            return error_response(
                                &S3Error::new(S3ErrorCode::NoSuchKey),
                                &parts.method,
                                &path,
                                &ids,
                            );
                        }
                    },
                    Operation::CreateBucket | Operation::Health => Response::new(empty()),
                    _ => {
                        return error_response(
                            &S3Error::new(S3ErrorCode::NotImplemented),
                            &parts.method,
                            &path,
                            &ids,
                        );
                    }
                };
                *resp.status_mut() = StatusCode::OK;
                decorate(&mut resp, &ids);
                resp
            })
        });
        h
    })
}

const SCRIPT: &str = r#"
import json, os, sys, io, urllib.request, urllib.error
import boto3, botocore
from botocore.config import Config
ep = os.environ["EP"]
out = {}
def client(ak="HBTESTKEY", sk="hb/test+secret", **cfg):
    return boto3.client("s3", endpoint_url=ep, aws_access_key_id=ak, aws_secret_access_key=sk,
                        region_name="us-east-1", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **cfg))
s3 = client()
s3.create_bucket(Bucket="bkt")
keys = ["plain", "odd key +%/é/a//b", "k" * 1000]
data = os.urandom(300_000)
for k in keys:
    s3.put_object(Bucket="bkt", Key=k, Body=data)
    assert s3.get_object(Bucket="bkt", Key=k)["Body"].read() == data, k
import awscrt  # CRC32C and CRC64NVME need it; a missing one fails the test here
for algo in ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"]:
    s3.put_object(Bucket="bkt", Key="algo-" + algo, Body=data, ChecksumAlgorithm=algo)
    assert s3.get_object(Bucket="bkt", Key="algo-" + algo)["Body"].read() == data
    out[algo] = "ok"
# Non-seekable stream: aws-chunked upload.
s3.upload_fileobj(io.BufferedReader(io.BytesIO(data)), "bkt", "streamed")
assert s3.get_object(Bucket="bkt", Key="streamed")["Body"].read() == data
# Second credential pair.
client("SECONDKEY", "second-secret").put_object(Bucket="bkt", Key="second", Body=b"2")
# Wrong secret.
try:
    client(sk="wrong").put_object(Bucket="bkt", Key="x", Body=b"x")
    out["wrong"] = "accepted"
except botocore.exceptions.ClientError as e:
    out["wrong"] = e.response["Error"]["Code"]
# Content-MD5 mismatch.
try:
    s3.put_object(Bucket="bkt", Key="md5", Body=b"abc", ContentMD5="AAAAAAAAAAAAAAAAAAAAAA==")
    out["md5"] = "accepted"
except botocore.exceptions.ClientError as e:
    out["md5"] = e.response["Error"]["Code"]
# Presigned SigV4 and SigV2 GETs.
for name, c in [("v4", s3), ("v2", client(signature_version="s3"))]:
    url = c.generate_presigned_url("get_object", Params={"Bucket": "bkt", "Key": keys[1]}, ExpiresIn=300)
    out["presigned_" + name] = urllib.request.urlopen(url).read() == data
    try:
        urllib.request.urlopen(url.replace("Signature=", "Signature=0"))
        out["presigned_bad_" + name] = 200
    except urllib.error.HTTPError as e:
        out["presigned_bad_" + name] = e.code
# botocore only sends aws-chunked bodies with checksum trailers over https; make it
# believe the endpoint is https so its real encoder (AwsChunkedWrapper) is exercised.
import botocore.httpchecksum as hc
from urllib.parse import urlparse as _urlparse
hc.urlparse = lambda u: _urlparse(u.replace("http://", "https://", 1))
for algo in [None, "CRC32", "SHA1", "SHA256", "CRC32C", "CRC64NVME"]:
    kw = {"ChecksumAlgorithm": algo} if algo else {}
    name = "trailer_" + (algo or "default")
    s3.put_object(Bucket="bkt", Key=name, Body=data, **kw)
    assert s3.get_object(Bucket="bkt", Key=name)["Body"].read() == data
    out[name] = "ok"
s3.upload_fileobj(io.BufferedReader(io.BytesIO(data * 20)), "bkt", "trailer_streamed")
out["trailer_streamed"] = s3.get_object(Bucket="bkt", Key="trailer_streamed")["Body"].read() == data * 20
try:
    s3.get_object(Bucket="bkt", Key="missing")
except botocore.exceptions.ClientError as e:
    out["missing"] = e.response["Error"]["Code"]
    out["request_id"] = e.response["ResponseMetadata"].get("RequestId", "")
print(json.dumps(out))
"#;

/// The repository's venv Python (`tests/run.sh` creates it before the Rust tests run).
fn venv_python() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash tests/run.sh` (its venv stage installs boto3 and awscrt)",
        python.display()
    );
    python
}

#[test]
fn boto3_against_protocol_layer() {
    let python = venv_python();
    for kind in [RuntimeKind::Glommio, RuntimeKind::Tokio] {
        let store: Store = Arc::default();
        let modes = Arc::new(Mutex::new(Vec::new()));
        let cfg = ServeConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            ..ServeConfig::default()
        };
        let server = serve(kind, cfg, factory(store.clone(), modes.clone())).unwrap();
        let out = Command::new(&python)
            .args(["-c", SCRIPT])
            .env("EP", format!("http://{}", server.local_addr()))
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .output()
            .unwrap();
        server.shutdown();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{kind:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
        eprintln!("{kind:?}: {v}\nmodes: {:?}", modes.lock().unwrap());
        for algo in [
            "CRC32",
            "SHA1",
            "SHA256",
            "trailer_default",
            "trailer_CRC32",
            "trailer_SHA1",
            "trailer_SHA256",
            "CRC32C",
            "CRC64NVME",
            "trailer_CRC32C",
            "trailer_CRC64NVME",
        ] {
            assert_eq!(v[algo], "ok", "{algo}");
        }
        assert_eq!(v["trailer_streamed"], true);
        assert_eq!(v["wrong"], "SignatureDoesNotMatch");
        assert_eq!(v["md5"], "BadDigest");
        assert_eq!(v["presigned_v4"], true);
        assert_eq!(v["presigned_v2"], true);
        assert_eq!(v["presigned_bad_v4"], 403);
        assert_eq!(v["presigned_bad_v2"], 403);
        assert_eq!(v["missing"], "NoSuchKey");
        assert_eq!(v["request_id"].as_str().unwrap().len(), 16);
        let store = store.lock().unwrap();
        assert!(store.contains_key("bkt/odd key +%/é/a//b"));
        assert!(store.contains_key(&format!("bkt/{}", "k".repeat(1000))));
        // boto3's default checksum behaviour sent aws-chunked trailers at least once.
        let modes = modes.lock().unwrap();
        let trailers = modes
            .iter()
            .filter(|m| m.starts_with("STREAMING-UNSIGNED-PAYLOAD-TRAILER x-amz-checksum-"))
            .count();
        assert!(trailers >= 5, "{modes:?}");
    }
}
