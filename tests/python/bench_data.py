"""The object data format of ``hugbucket-bench`` (bench/src/load/spec.rs and data.rs),
computed independently of the Rust code: used by tests/python/test_bench_cli.py and by the
soak benchmark's final verification (bench/soak.sh)."""

from __future__ import annotations

import blake3


def expected_size(seed: int, key: str, lo: int, hi: int) -> int:
    """The data format's object size (see bench/src/load/spec.rs), computed independently."""
    if lo == hi:
        return lo
    h = blake3.blake3(seed.to_bytes(8, "little") + key.encode(),
                      derive_key_context="hugbucket-bench object size v1").digest()
    return lo + int.from_bytes(h[:8], "little") % (hi - lo + 1)


def expected_bytes(seed: int, key: str, size: int) -> bytes:
    """The data format's object bytes (see bench/src/load/data.rs), computed independently."""
    return blake3.blake3(seed.to_bytes(8, "little") + key.encode(),
                         derive_key_context="hugbucket-bench object data v1").digest(length=size)


def list_keys(s3, bucket: str, prefix: str) -> dict[str, int]:
    keys = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            keys[o["Key"]] = o["Size"]
    return keys
