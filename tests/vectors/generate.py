#!/usr/bin/env python3
"""Regenerates the hf_xet-made golden vectors of this directory and compares them with the
committed files (or rewrites them with --write).

What hf_xet 1.8.0 (PyPI, pinned in tests/python/requirements.txt) produces is taken from
hf_xet itself: each input is uploaded with ``hf_xet.upload_bytes`` to a recording fake CAS
on 127.0.0.1, and the xorb and shard bodies it POSTs are the vectors
(``xorbs/<input>.xorb``, ``shards/<input>.shard``). The JSON fields of
``xet_vectors.json`` that describe an upload (chunks, file hash, terms, verification
hashes, xorb chunk headers) are read back from those bodies; ``hf_xet.hash_files`` gives
the file hash a second time. The shard and xorb layouts read here are those of the Xet
specification (§3 shards, §2 xorbs).

Not regenerated (see README.md): ``gear_table.json`` and ``merkle_reference.json`` (xet-core
source constants and test cases, not outputs of hf_xet), ``xorbs/*.xorb_with_footer``
(the CAS-side footer, which hf_xet never sends), ``http_capture.json`` (a log of one
recording session: session ids and timings differ on every run) and the multi-file
session, whose xorb chunk order depends on thread timing.

Usage: python3 tests/vectors/generate.py [--write]
Needs: hf_xet==1.8.0 and blake3 (both in tests/python/requirements.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import struct
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import blake3
import hf_xet

HERE = Path(__file__).resolve().parent
HF_XET_VERSION = "1.8.0"

# The inputs (the recipes of xet_vectors.json's "generator" section).
RAND = "xet-vectors/rand"
INPUTS: dict[str, list[tuple]] = {
    "empty": [],
    "one_byte": [("blake3_xof", "xet-vectors/one_byte", 1)],
    "rand_8191": [("blake3_xof", RAND, 8191)],
    "rand_8192": [("blake3_xof", RAND, 8192)],
    "rand_8193": [("blake3_xof", RAND, 8193)],
    "rand_1MiB": [("blake3_xof", RAND, 1 << 20)],
    "rand_9MiB": [("blake3_xof", RAND, 9 << 20)],
    "zeros_1MiB": [("zeros", 1 << 20)],
    "repeat_ABAA": [
        ("blake3_xof", "xet-vectors/repeat-a", 300_000),
        ("blake3_xof", "xet-vectors/repeat-b", 200_000),
        ("blake3_xof", "xet-vectors/repeat-a", 300_000),
        ("blake3_xof", "xet-vectors/repeat-a", 300_000),
    ],
    "f32ramp_256KiB": [("f32_ramp", 65536)],
}
# Inputs whose serialized xorb is committed (the others are too large to keep).
XORB_FILES = {"one_byte", "rand_8191", "rand_8192", "rand_8193", "zeros_1MiB",
              "f32ramp_256KiB"}


def segment(seg: tuple) -> bytes:
    kind = seg[0]
    if kind == "blake3_xof":
        return blake3.blake3(seg[1].encode()).digest(length=seg[2])
    if kind == "zeros":
        return bytes(seg[1])
    if kind == "f32_ramp":
        return b"".join(struct.pack("<f", i * 0.25) for i in range(seg[1]))
    raise ValueError(kind)


def build(recipe: list[tuple]) -> bytes:
    return b"".join(segment(s) for s in recipe)


# ------------------------------------------------------------------ recording fake CAS

class Recorder(http.server.ThreadingHTTPServer):
    """Accepts what a legacy hf_xet upload sends: no global dedup hits, no xorb grants
    (so xorbs are POSTed whole), /v2/shards refused (so shards go to /v1/shards)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.xorbs: list[bytes] = []
        self.shards: list[bytes] = []
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    server: Recorder

    def log_message(self, *args) -> None:  # quiet
        pass

    def _body(self) -> bytes:
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n)

    def _answer(self, status: int, doc: dict | None = None) -> None:
        body = json.dumps(doc).encode() if doc is not None else b""
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(404)  # /v1/chunks/default/{hash}: no global dedup

    def do_POST(self) -> None:
        body = self._body()
        path = self.path
        if path.startswith("/v1/xorbs/"):
            with self.server.lock:
                self.server.xorbs.append(body)
            self._answer(200, {"was_inserted": True})
        elif path == "/v1/shards":
            with self.server.lock:
                self.server.shards.append(body)
            self._answer(200, {"result": 1})
        elif path == "/v1/telemetry":
            self._answer(200, {})
        else:  # /v1/xorb-grants/..., /v2/shards: fall back to the v1 routes
            self._answer(404)


def upload(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """The xorb and shard bodies hf_xet sends to upload `data` alone."""
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        token = ("xet-fake-token", int(time.time()) + 3600)
        # The legacy call needs only a CAS endpoint and token (no Hub token route); its
        # bytes are those of an XetSession upload commit with SKIP_SHA256, as the
        # committed single-file sessions were made.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            hf_xet.upload_bytes([data], endpoint, token, None, None, "model",
                                skip_sha256=True)
    finally:
        server.shutdown()
        server.server_close()
    return server.xorbs, server.shards


# ------------------------------------------------------------------ parsing (spec §2, §3)

def xet_hex(h: bytes) -> str:
    """Xet hex: four little-endian u64 groups, 16 hex digits each."""
    return "".join(f"{v:016x}" for v in struct.unpack("<4Q", h))


BOOKEND = b"\xff" * 32
SHARD_HEADER_LEN = 48
RECORD = 48


def parse_shard(shard: bytes) -> tuple[list[dict], list[dict]]:
    """(files, xorbs) of a shard without footer."""
    pos = SHARD_HEADER_LEN
    files = []
    while shard[pos:pos + 32] != BOOKEND:
        fhash, flags, n = struct.unpack_from("<32sII", shard, pos)
        pos += RECORD
        terms = []
        for _ in range(n):
            xh, _cas_flags, unpacked, start, end = struct.unpack_from("<32sIIII", shard, pos)
            terms.append({"xorb_hash": xet_hex(xh), "chunk_start": start, "chunk_end": end,
                          "unpacked_bytes": unpacked})
            pos += RECORD
        if flags & 0x80000000:
            for t in terms:
                t["verification_hash"] = xet_hex(shard[pos:pos + 32])
                pos += RECORD
        if flags & 0x40000000:
            pos += RECORD  # SHA-256 metadata extension
        files.append({"file_hash": xet_hex(fhash), "flags": f"0x{flags:08x}", "terms": terms})
    pos += RECORD
    xorbs = []
    while shard[pos:pos + 32] != BOOKEND:
        xh, _flags, n, nbytes, _on_disk = struct.unpack_from("<32sIIII", shard, pos)
        pos += RECORD
        chunks = []
        for _ in range(n):
            ch, _start, unpacked = struct.unpack_from("<32sII", shard, pos)
            chunks.append({"hash": xet_hex(ch), "length": unpacked})
            pos += RECORD
        xorbs.append({"xorb_hash": xet_hex(xh), "num_chunks": n, "num_bytes_in_xorb": nbytes,
                      "chunks": chunks})
    return files, xorbs


def chunk_headers(xorb: bytes) -> list[dict]:
    """The 8-byte header of every chunk of a serialized xorb (no footer)."""
    out, pos = [], 0
    while pos < len(xorb):
        word = int.from_bytes(xorb[pos:pos + 8], "little")
        compressed = (word >> 8) & 0xFFFFFF
        out.append({"compressed_len": compressed, "header_offset": pos,
                    "scheme": (word >> 32) & 0xFF,
                    "uncompressed_len": (word >> 40) & 0xFFFFFF})
        pos += 8 + compressed
    return out


# ------------------------------------------------------------------ one input

def describe(name: str, data: bytes, xorbs: list[bytes], shards: list[bytes]) -> dict:
    """The xet_vectors.json fields of one input, from what hf_xet uploaded."""
    doc: dict = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert len(shards) == 1, f"{name}: {len(shards)} shards uploaded"
    files, shard_xorbs = parse_shard(shards[0])
    (file,) = files
    by_hash = {x["xorb_hash"]: x for x in shard_xorbs}
    # The file's chunks, in order: every term's chunk range of its xorb.
    chunks, offset = [], 0
    for t in file["terms"]:
        for c in by_hash[t["xorb_hash"]]["chunks"][t["chunk_start"]:t["chunk_end"]]:
            chunks.append({"hash": c["hash"], "length": c["length"], "offset": offset})
            offset += c["length"]
    assert offset == len(data), f"{name}: terms cover {offset} of {len(data)} bytes"
    doc.update(num_chunks=len(chunks), chunks=chunks, file_hash=file["file_hash"])
    session = {"shard_file": f"shards/{name}.shard", "shard_len": len(shards[0]),
               "shard_sha256": hashlib.sha256(shards[0]).hexdigest(),
               "file_flags": file["flags"], "terms": file["terms"]}
    if xorbs:
        assert len(xorbs) == 1 and len(shard_xorbs) == 1, f"{name}: several xorbs"
        (x,) = shard_xorbs
        session["xorb"] = {
            "xorb_hash": x["xorb_hash"], "num_chunks": x["num_chunks"],
            "num_bytes_in_xorb": x["num_bytes_in_xorb"],
            "serialized_no_footer": {"len": len(xorbs[0]),
                                     "sha256": hashlib.sha256(xorbs[0]).hexdigest()},
            "chunk_headers": chunk_headers(xorbs[0]),
        }
    doc["single_file_upload_session"] = session
    return doc


def compare(name: str, path: str, got, want, diffs: list[str]) -> None:
    if got != want:
        diffs.append(f"{name}: {path}: generated {json.dumps(got)[:160]} "
                     f"!= committed {json.dumps(want)[:160]}")


def check_input(name: str, doc: dict, committed: dict, diffs: list[str]) -> None:
    want = committed["inputs"][name]
    for key in ("size", "sha256", "num_chunks", "chunks", "file_hash"):
        compare(name, key, doc[key], want[key], diffs)
    got_s, want_s = doc["single_file_upload_session"], want["single_file_upload_session"]
    for key in ("shard_len", "shard_sha256", "file_flags", "terms"):
        compare(name, f"session.{key}", got_s[key], want_s.get(key), diffs)
    if "xorb" in got_s or "xorb" in want_s:
        gx, wx = got_s.get("xorb", {}), want_s.get("xorb", {})
        for key in ("xorb_hash", "num_chunks", "num_bytes_in_xorb", "serialized_no_footer",
                    "chunk_headers"):
            compare(name, f"session.xorb.{key}", gx.get(key), wx.get(key), diffs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", action="store_true",
                    help="overwrite the committed shard and xorb files")
    args = ap.parse_args()
    version = getattr(hf_xet, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version
        version = dist_version("hf_xet")
    if version != HF_XET_VERSION:
        print(f"hf_xet {version} installed; the vectors are those of {HF_XET_VERSION}")
        return 2
    committed = json.loads((HERE / "xet_vectors.json").read_text())
    diffs: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, recipe in INPUTS.items():
            data = build(recipe)
            xorbs, shards = upload(data)
            doc = describe(name, data, xorbs, shards)
            # hash_files: the same file hash without uploading.
            path = Path(tmp) / name
            path.write_bytes(data)
            (info,) = hf_xet.hash_files([str(path)])
            compare(name, "hash_files", info.hash, doc["file_hash"], diffs)
            check_input(name, doc, committed, diffs)
            files = {f"shards/{name}.shard": shards[0]}
            if name in XORB_FILES:
                files[f"xorbs/{name}.xorb"] = xorbs[0]
            for rel, body in files.items():
                if args.write:
                    (HERE / rel).write_bytes(body)
                elif (HERE / rel).read_bytes() != body:
                    diffs.append(f"{name}: {rel} differs from the bytes hf_xet uploaded")
            print(f"{name}: {len(doc['chunks'])} chunks, file hash {doc['file_hash'][:16]}…")
    for d in diffs:
        print("DIFF", d)
    print("all hf_xet-made vectors reproduced" if not diffs else f"{len(diffs)} differences")
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
