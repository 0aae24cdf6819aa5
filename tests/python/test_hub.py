"""The embedded hub (`hugbucket hub`) driven by the real huggingface_hub + hf_xet.

One server (fresh data dir, free port, fresh HF_HOME) serves the whole module; the tests
run in file order and build on each other: buckets -> uploads -> listings -> downloads ->
ranged reads -> copies -> sync -> deletes -> SIGKILL + restart -> everything still there.
Negative tests use raw HTTP. Clients run in subprocesses (see hub_util.run_client).
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import shutil
import signal
import struct
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import run_hugbucket, write_xof_file
from hub_util import HubServer, run_client, spawn_client

MAIN = "hugbucket/main"
OTHER = "hugbucket/other"
MiB = 1 << 20


@pytest.fixture(scope="module")
def env(tmp_path_factory, hugbucket_bin):
    root = tmp_path_factory.mktemp("hub")
    server = HubServer(root / "data", root / "hub.log").start()
    files = root / "files"
    files.mkdir()
    (files / "empty.bin").write_bytes(b"")
    (files / "small.txt").write_bytes(b"hello hugbucket\n" * 100)
    write_xof_file(files / "rand3m.bin", "test_hub/rand3m", 3 * MiB)
    write_xof_file(files / "big" / "rand100m.bin", "test_hub/rand100m", 100 * MiB)
    (files / "dup").mkdir()
    shutil.copyfile(files / "rand3m.bin", files / "dup" / "rand3m-copy.bin")
    ns = SimpleNamespace(root=root, server=server, hf_home=root / "hf_home", files=files,
                         remote={})
    yield ns
    server.stop()


def client(env, code, **kw):
    try:
        return run_client(env.server, env.hf_home, code, **kw)
    except AssertionError as e:
        log = env.server.log_path.read_text(errors="replace")[-4000:]
        raise AssertionError(f"{e}\n--- hub log tail ---\n{log}") from None


def xet_hashes(paths: list[Path]) -> list[str]:
    """Xet file hashes by `hugbucket hash` (b3sum-style output)."""
    p = run_hugbucket("hash", *paths)
    assert p.returncode == 0, p.stderr.decode()
    lines = p.stdout.decode().splitlines()
    assert len(lines) == len(paths)
    return [line.split()[0] for line in lines]


def test_01_buckets(env):
    res = client(env, """
        url = api.create_bucket("hugbucket/main")
        url2 = api.create_bucket("hugbucket/main", exist_ok=True)
        try:
            api.create_bucket("hugbucket/main")
            dup = None
        except Exception as e:
            dup = e.response.status_code
        api.create_bucket("hugbucket/other", private=True)
        api.create_bucket("hugbucket/tmp")
        api.move_bucket("hugbucket/tmp", "hugbucket/tmp2")
        api.update_bucket_settings("hugbucket/tmp2", private=True)
        info = api.bucket_info("hugbucket/tmp2")
        api.delete_bucket("hugbucket/tmp2")
        api.delete_bucket("hugbucket/tmp2", missing_ok=True)
        try:
            api.bucket_info("hugbucket/tmp2")
            nf = None
        except Exception as e:
            nf = type(e).__name__
        emit(dict(url=url.url, bucket_id=url.bucket_id, url2=url2.url, dup=dup,
                  private=info.private, nf=nf, ids=sorted(b.id for b in api.list_buckets()),
                  other_private=api.bucket_info("hugbucket/other").private,
                  whoami=api.whoami()["name"]))
    """)
    assert res == dict(url=f"{env.server.url}/buckets/hugbucket/main", bucket_id=MAIN,
                       url2=f"{env.server.url}/buckets/hugbucket/main", dup=409, private=True,
                       nf="BucketNotFoundError", ids=[MAIN, OTHER], other_private=True,
                       whoami="hugbucket")


UPLOADS = {
    "empty.bin": "empty.bin",
    "small.txt": "docs/small.txt",
    "rand3m.bin": "data/rand3m.bin",
    "big/rand100m.bin": "data/big/rand100m.bin",
    "dup/rand3m-copy.bin": "data/dup/rand3m-copy.bin",
}


def test_02_batch_upload(env):
    before = env.server.stats()
    adds = [(str(env.files / local), remote) for local, remote in UPLOADS.items()]
    adds.append(("BYTES", "inline/bytes.bin"))
    res = client(env, f"""
        adds = {adds!r}
        adds = [(b"inline bytes payload" if s == "BYTES" else s, d) for s, d in adds]
        api.batch_bucket_files("{MAIN}", add=adds)
        emit([[f.path, f.size, f.xet_hash] for f in api.get_bucket_paths_info("{MAIN}", [d for _, d in adds])])
    """)
    (env.files / "inline").mkdir(exist_ok=True)
    (env.files / "inline" / "bytes.bin").write_bytes(b"inline bytes payload")
    env.remote.update({remote: env.files / local for local, remote in UPLOADS.items()})
    env.remote["inline/bytes.bin"] = env.files / "inline" / "bytes.bin"
    got = {p: (size, h) for p, size, h in res}
    assert set(got) == set(env.remote)
    for remote, local in env.remote.items():
        assert got[remote][0] == local.stat().st_size, remote
    assert got["empty.bin"][1] == "0" * 64
    # The duplicate has the same hash. (hf_xet hashes files concurrently, so whether its
    # chunks were deduplicated within the commit is up to the client: at most 106 MiB.)
    assert got["data/rand3m.bin"][1] == got["data/dup/rand3m-copy.bin"][1]
    after = env.server.stats()
    stored = after["xorb_upload_bytes"] - before["xorb_upload_bytes"]
    assert 103 * MiB <= stored < 106 * MiB + 64 * 1024, stored
    assert after["shard_uploads"] > before["shard_uploads"]
    env.uploaded_hashes = {p: h for p, (_, h) in got.items()}


def test_03_xet_hash_matches_hugbucket_hash(env):
    """Files uploaded by hf_xet get exactly the xetHash that `hugbucket hash` computes (and
    that hf_xet's own hasher computes)."""
    locals_ = list(env.remote.values())
    want = xet_hashes(locals_)
    by_hf_xet = client(env, f"""
        import hf_xet
        emit([i.hash for i in hf_xet.hash_files({[str(x) for x in locals_]!r})])
    """)
    assert want == by_hf_xet
    for (remote, _), h in zip(env.remote.items(), want):
        assert env.uploaded_hashes[remote] == h, remote


def test_04_tree_and_paths_info(env):
    res = client(env, f"""
        def ls(prefix=None, recursive=None):
            return sorted((e.type if hasattr(e, "type") else "?", e.path)
                          for e in api.list_bucket_tree("{MAIN}", prefix=prefix, recursive=recursive))
        emit(dict(
            root=ls(),
            rec=ls(recursive=True),
            data=ls("data"),
            data_rec=ls("data", recursive=True),
            big=ls("data/big", recursive=True),
            file=ls("docs/small.txt"),
            missing=ls("nope", recursive=True),
            info=[[f.path, f.size] for f in api.get_bucket_paths_info("{MAIN}", ["docs/small.txt", "nope", "empty.bin"])],
        ))
    """)
    assert res["root"] == [["directory", "data"], ["directory", "docs"], ["directory", "inline"],
                           ["file", "empty.bin"]]
    assert [p for _, p in res["rec"]] == sorted(env.remote)
    assert res["data"] == [["directory", "data/big"], ["directory", "data/dup"],
                           ["file", "data/rand3m.bin"]]
    assert [p for _, p in res["data_rec"]] == sorted(p for p in env.remote if p.startswith("data/"))
    assert res["big"] == [["file", "data/big/rand100m.bin"]]
    assert res["file"] == [["file", "docs/small.txt"]]
    assert res["missing"] == []
    assert res["info"] == [["docs/small.txt", 1600], ["empty.bin", 0]]


def download_all(env, bucket: str, paths: list[str], dest: Path):
    client(env, f"""
        api.download_bucket_files("{bucket}", [(p, os.path.join({str(dest)!r}, p)) for p in {paths!r}],
                                  raise_on_missing_files=True)
    """)


def test_05_download_bucket_files(env):
    dest = env.root / "dl1"
    before = env.server.stats()
    download_all(env, MAIN, sorted(env.remote), dest)
    for remote, local in env.remote.items():
        assert filecmp.cmp(dest / remote, local, shallow=False), remote
    after = env.server.stats()
    assert after["reconstructions"] > before["reconstructions"]
    assert after["xorb_range_bytes"] - before["xorb_range_bytes"] >= 106 * MiB


def test_06_hffs_ranged_reads(env):
    big = env.files / "big" / "rand100m.bin"
    ranges = [(0, 10), (1, 100_000), (65_000, 200_000), (50 * MiB - 7, 50 * MiB + 3 * MiB),
              (100 * MiB - 1000, 100 * MiB)]
    res = client(env, f"""
        import hashlib
        fs = HfFileSystem()
        out = []
        with fs.open("buckets/{MAIN}/data/big/rand100m.bin", "rb", block_size=1 << 20) as f:
            for a, b in {ranges!r}:
                f.seek(a)
                out.append(hashlib.sha256(f.read(b - a)).hexdigest())
        info = fs.info("buckets/{MAIN}/data/big/rand100m.bin")
        ls = sorted(fs.ls("buckets/{MAIN}/data", detail=False))
        cat = fs.cat_file("buckets/{MAIN}/docs/small.txt", start=16, end=48)
        emit(dict(hashes=out, size=info["size"], ls=ls, cat=cat.decode()))
    """)
    with open(big, "rb") as f:
        want = []
        for a, b in ranges:
            f.seek(a)
            want.append(hashlib.sha256(f.read(b - a)).hexdigest())
    assert res["hashes"] == want
    assert res["size"] == 100 * MiB
    assert res["ls"] == [f"buckets/{MAIN}/data/big", f"buckets/{MAIN}/data/dup",
                         f"buckets/{MAIN}/data/rand3m.bin"]
    assert res["cat"] == ("hello hugbucket\n" * 3)[16:48]


def test_06b_hffs_write_get_file_rm(env):
    """HfFileSystem writes (batch), get_file (huggingface_hub's own xet_get, which reads the
    X-Xet-* token headers) and rm."""
    local = env.root / "fs-get.bin"
    res = client(env, f"""
        fs = HfFileSystem()
        fs.pipe_file("buckets/{MAIN}/fs/written.txt", b"written through HfFileSystem")
        with fs.open("buckets/{MAIN}/fs/opened.bin", "wb") as f:
            f.write(b"abc" * 100000)
        fs.get_file("buckets/{MAIN}/data/rand3m.bin", {str(local)!r})
        got = fs.cat_file("buckets/{MAIN}/fs/written.txt")
        size = fs.info("buckets/{MAIN}/fs/opened.bin")["size"]
        fs.rm("buckets/{MAIN}/fs/written.txt")
        fs.rm("buckets/{MAIN}/fs/opened.bin")
        left = [f.path for f in api.get_bucket_paths_info("{MAIN}", ["fs/written.txt", "fs/opened.bin"])]
        emit(dict(got=got.decode(), size=size, left=left))
    """)
    assert res == dict(got="written through HfFileSystem", size=300000, left=[])
    assert filecmp.cmp(local, env.files / "rand3m.bin", shallow=False)


def test_07_copy_files_moves_no_bytes(env):
    before = env.server.stats()
    res = client(env, f"""
        from huggingface_hub import copy_files
        api.copy_files("hf://buckets/{MAIN}/data/", "hf://buckets/{OTHER}/copied/")
        api.copy_files("hf://buckets/{MAIN}/docs/small.txt", "hf://buckets/{OTHER}/single.txt")
        emit(sorted([f.path, f.xet_hash] for f in api.list_bucket_tree("{OTHER}", recursive=True)))
    """)
    after = env.server.stats()
    assert after["xorb_upload_bytes"] == before["xorb_upload_bytes"]
    assert after["xorb_range_bytes"] == before["xorb_range_bytes"]
    h = env.uploaded_hashes
    assert res == sorted([
        ["copied/big/rand100m.bin", h["data/big/rand100m.bin"]],
        ["copied/dup/rand3m-copy.bin", h["data/dup/rand3m-copy.bin"]],
        ["copied/rand3m.bin", h["data/rand3m.bin"]],
        ["single.txt", h["docs/small.txt"]],
    ])
    dest = env.root / "dl-copy"
    download_all(env, OTHER, ["single.txt", "copied/rand3m.bin"], dest)
    assert filecmp.cmp(dest / "single.txt", env.files / "small.txt", shallow=False)
    assert filecmp.cmp(dest / "copied" / "rand3m.bin", env.files / "rand3m.bin", shallow=False)


def test_08_sync_up_and_down(env):
    up = env.root / "sync-src"
    (up / "sub").mkdir(parents=True)
    (up / "a.txt").write_bytes(b"a" * 1000)
    write_xof_file(up / "sub" / "b.bin", "test_hub/sync-b", 2 * MiB + 17)
    (up / "sub" / "empty").write_bytes(b"")
    res = client(env, f"""
        p1 = api.sync_bucket({str(up)!r}, "hf://buckets/{OTHER}/synced", quiet=True)
        p2 = api.sync_bucket({str(up)!r}, "hf://buckets/{OTHER}/synced", quiet=True)
        emit(dict(first=sorted((o.action, o.path) for o in p1.operations),
                  second=sorted(o.action for o in p2.operations)))
    """)
    assert res["first"] == [["upload", "a.txt"], ["upload", "sub/b.bin"], ["upload", "sub/empty"]]
    assert all(a == "skip" for a in res["second"]), res["second"]
    down = env.root / "sync-dst"
    down.mkdir()
    client(env, f"""
        api.sync_bucket("hf://buckets/{OTHER}/synced", {str(down)!r}, quiet=True)
    """)
    cmp = filecmp.dircmp(up, down)
    assert cmp.left_only == [] and cmp.right_only == [] and cmp.diff_files == []
    for rel in ["a.txt", "sub/b.bin", "sub/empty"]:
        assert filecmp.cmp(up / rel, down / rel, shallow=False), rel
    env.remote_other = {f"synced/{rel}": up / rel for rel in ["a.txt", "sub/b.bin", "sub/empty"]}


def test_09_delete(env):
    res = client(env, f"""
        api.batch_bucket_files("{MAIN}", delete=["inline/bytes.bin", "never/was.bin"])
        emit([f.path for f in api.get_bucket_paths_info("{MAIN}", ["inline/bytes.bin", "empty.bin"])])
    """)
    assert res == ["empty.bin"]
    del env.remote["inline/bytes.bin"]


def test_10_sigkill_restart_keeps_everything(env):
    env.server.kill(signal.SIGKILL)
    env.server.start()  # same data dir, same port; same HF_HOME for the client
    dest = env.root / "dl-after-restart"
    download_all(env, MAIN, sorted(env.remote), dest)
    for remote, local in env.remote.items():
        assert filecmp.cmp(dest / remote, local, shallow=False), remote
    dest2 = env.root / "dl-other-after-restart"
    download_all(env, OTHER, sorted(env.remote_other), dest2)
    for remote, local in env.remote_other.items():
        assert filecmp.cmp(dest2 / remote, local, shallow=False), remote
    # The client's shard cache (same HF_HOME) dedups against xorbs the server kept: an
    # upload of known bytes is accepted and reads back.
    res = client(env, f"""
        api.batch_bucket_files("{MAIN}", add=[({str(env.files / 'rand3m.bin')!r}, "again/rand3m.bin")])
        emit([f.xet_hash for f in api.get_bucket_paths_info("{MAIN}", ["again/rand3m.bin"])])
    """)
    assert res == [env.uploaded_hashes["data/rand3m.bin"]]
    download_all(env, MAIN, ["again/rand3m.bin"], env.root / "dl-again")
    assert filecmp.cmp(env.root / "dl-again" / "again" / "rand3m.bin", env.files / "rand3m.bin",
                       shallow=False)


def test_10b_global_dedup_with_fresh_client_cache(env):
    """A client without a shard cache finds known content through the global dedup query
    (the hub answers with a full shard) and uploads no xorb at all."""
    before = env.server.stats()
    fresh = env.root / "hf_home_fresh"
    run_client(env.server, fresh, f"""
        api.batch_bucket_files("{MAIN}", add=[({str(env.files / 'rand3m.bin')!r}, "dedup/rand3m.bin")])
    """)
    after = env.server.stats()
    assert after["dedup_hits"] > before["dedup_hits"]
    assert after["xorb_upload_bytes"] == before["xorb_upload_bytes"]
    dest = env.root / "dl-dedup"
    run_client(env.server, fresh, f"""
        api.download_bucket_files("{MAIN}", [("dedup/rand3m.bin", {str(dest / 'x.bin')!r})])
    """)
    assert filecmp.cmp(dest / "x.bin", env.files / "rand3m.bin", shallow=False)


def test_10c_v1_apis(env):
    """The v1 shard and reconstruction APIs, forced through hf_xet's own switches."""
    src = env.root / "v1.bin"
    src.write_bytes(os.urandom(5 * MiB + 3))
    before = env.server.stats()
    xenv = {"HF_XET_CLIENT_SHARD_API_VERSION": "1",
            "HF_XET_CLIENT_RECONSTRUCTION_API_VERSION": "1"}
    dest = env.root / "dl-v1"
    run_client(env.server, env.root / "hf_home_v1", f"""
        api.batch_bucket_files("{MAIN}", add=[({str(src)!r}, "v1/v1.bin")])
        api.download_bucket_files("{MAIN}", [("v1/v1.bin", {str(dest / 'v1.bin')!r})])
    """, extra_env=xenv)
    assert filecmp.cmp(dest / "v1.bin", src, shallow=False)
    req_b, req_a = before["requests"], env.server.stats()["requests"]
    assert req_a.get("shard_v1", 0) > req_b.get("shard_v1", 0)
    assert req_a.get("reconstruction_v1", 0) > req_b.get("reconstruction_v1", 0)
    assert req_a.get("reconstruction_v2", 0) == req_b.get("reconstruction_v2", 0)


def test_10d_multirange_fetches(env):
    """A file made of distant pieces of another one reuses two separate chunk ranges of the
    same xorb; with multi-range fetching enabled hf_xet asks for both in one request and
    decodes the multipart/byteranges answer."""
    blocks = [os.urandom(MiB) for _ in range(3)]
    a = env.root / "mr-a.bin"
    b = env.root / "mr-b.bin"
    a.write_bytes(b"".join(blocks))
    b.write_bytes(blocks[0] + blocks[2])
    hf_home = env.root / "hf_home_mr"
    run_client(env.server, hf_home, f"""
        api.batch_bucket_files("{MAIN}", add=[({str(a)!r}, "mr/a.bin")])
        api.batch_bucket_files("{MAIN}", add=[({str(b)!r}, "mr/b.bin")])
    """)
    before = env.server.stats()
    dest = env.root / "dl-mr"
    run_client(env.server, hf_home, f"""
        api.download_bucket_files("{MAIN}", [("mr/b.bin", {str(dest / 'b.bin')!r})])
    """, extra_env={"HF_XET_CLIENT_ENABLE_MULTIRANGE_FETCHING": "true"})
    assert filecmp.cmp(dest / "b.bin", b, shallow=False)
    assert env.server.stats()["multirange_fetches"] > before["multirange_fetches"]


# ---- negative tests over raw HTTP ----


def one_chunk_xorb(payload: bytes) -> bytes:
    """A serialized xorb with one uncompressed chunk record."""
    n = len(payload)
    return bytes([0]) + n.to_bytes(3, "little") + bytes([0]) + n.to_bytes(3, "little") + payload


def test_11_hub_token_required(env):
    s = env.server
    # As on the Hub: a public bucket (MAIN) reads without a token, a private one (OTHER)
    # does not exist for an anonymous caller (401 RepoNotFound); writes need a token.
    r = s.http("GET", f"/api/buckets/{MAIN}", token=None)
    assert r.status_code == 200 and r.json()["private"] is False
    r = s.http("GET", f"/api/buckets/{OTHER}", token=None)
    assert r.status_code == 401 and r.headers["X-Error-Code"] == "RepoNotFound"
    r = s.http("GET", "/api/whoami-v2", token=None)
    assert r.status_code == 401 and r.headers["X-Error-Code"] == "Unauthorized"
    r = s.http("GET", f"/api/buckets/{MAIN}", token="hf_not_a_token")
    assert r.status_code == 401 and r.headers["X-Error-Code"] == "Unauthorized"
    r = s.http("POST", f"/api/buckets/{MAIN}/batch", token=None,
               data=b'{"type":"deleteFile","path":"empty.bin"}\n')
    assert r.status_code == 401
    assert s.http("POST", f"/api/buckets/{MAIN}/paths-info",
                  json={"paths": ["empty.bin"]}).json()[0]["path"] == "empty.bin"


def test_12_read_token_cannot_write_and_bad_xorbs(env):
    s = env.server
    read = s.http("GET", f"/api/buckets/{MAIN}/xet-read-token").json()["accessToken"]
    write = s.http("GET", f"/api/buckets/{MAIN}/xet-write-token").json()["accessToken"]
    xorbs_before = s.xorb_count()
    x = one_chunk_xorb(b"some chunk bytes" * 10)
    # Which hash it has does not matter for the scope check.
    r = s.http("POST", "/v1/xorbs/default/" + "1" * 64, token=read, data=x)
    assert r.status_code == 403
    r = s.http("POST", "/v2/shards", token=read, data=b"x" * 48)
    assert r.status_code == 403
    # Write token, but the hash does not match the content: 400, nothing stored.
    r = s.http("POST", "/v1/xorbs/default/" + "1" * 64, token=write, data=x)
    assert r.status_code == 400 and "X-Error-Code" in r.headers
    # Corrupt record (length field past the end): 400.
    r = s.http("POST", "/v1/xorbs/default/" + "1" * 64, token=write, data=x[:-5])
    assert r.status_code == 400
    assert s.xorb_count() == xorbs_before


def test_13_expired_token(env, tmp_path):
    short = HubServer(tmp_path / "data", tmp_path / "hub.log",
                      extra_args=("--token-ttl", "1")).start()
    try:
        short.http("POST", "/api/buckets/hugbucket/t", json={}).raise_for_status()
        tok = short.http("GET", "/api/buckets/hugbucket/t/xet-write-token").json()
        time.sleep(max(0.0, tok["exp"] - time.time()) + 1.1)
        r = short.http("POST", "/v1/xorbs/default/" + "1" * 64, token=tok["accessToken"],
                       data=one_chunk_xorb(b"z" * 100))
        assert r.status_code == 401
        assert "expired" in r.headers["X-Error-Message"]
        r = short.http("GET", "/v1/reconstructions/" + "1" * 64, token=tok["accessToken"])
        assert r.status_code == 401
        assert short.xorb_count() == 0
    finally:
        short.stop()


@pytest.mark.parametrize("delay", [0.8, 1.6, 2.7])
def test_14_sigkill_during_uploads_never_leaves_dangling_files(tmp_path, delay):
    """kill -9 while a client uploads commit after commit; after a restart every listed file
    downloads completely and has the xetHash it is listed with."""
    server = HubServer(tmp_path / "data", tmp_path / "hub.log").start()
    uploader = None
    try:
        server.http("POST", "/api/buckets/hugbucket/crash", json={}).raise_for_status()
        src = tmp_path / "src"
        src.mkdir()
        uploader = spawn_client(server, tmp_path / "hf_home_up", f"""
            import random
            src = Path({str(src)!r})
            for i in range(1000):
                adds = []
                for j in range(3):
                    p = src / f"c{{i}}-{{j}}.bin"
                    p.write_bytes(os.urandom(random.randint(1, 3 << 20)))
                    adds.append((str(p), f"c{{i}}/f{{j}}.bin"))
                api.batch_bucket_files("hugbucket/crash", add=adds)
                print("committed", i, flush=True)
        """, tmp_path / "uploader.log")
        time.sleep(delay)
        server.kill(signal.SIGKILL)
        uploader.kill()
        uploader.wait(timeout=30)
        server.start()
        listed = server.http("GET", "/api/buckets/hugbucket/crash/tree?recursive=true&limit=10000").json()
        committed = (tmp_path / "uploader.log").read_text().count("committed")
        # Every commit the client saw acknowledged is there (3 files each).
        assert len(listed) >= 3 * committed, (len(listed), committed)
        if not listed:
            return
        dest = tmp_path / "dl"
        run_client(server, tmp_path / "hf_home_dl", f"""
            api.download_bucket_files("hugbucket/crash",
                [(p, os.path.join({str(dest)!r}, p)) for p in {[e["path"] for e in listed]!r}],
                raise_on_missing_files=True)
        """)
        files = [dest / e["path"] for e in listed]
        for e, f in zip(listed, files):
            assert f.stat().st_size == e["size"], e["path"]
        assert xet_hashes(files) == [e["xetHash"] for e in listed]
    finally:
        if uploader is not None and uploader.poll() is None:
            uploader.kill()
        server.stop()


def test_15_shard_referencing_unknown_xorbs_is_rejected(tmp_path):
    """Emulation gotcha 8 with the real client: a fresh server on the same port, and a
    client whose shard cache (same HF_HOME) remembers xorbs this server never received.
    The client then uploads only a shard pointing at them: it must be refused, and
    nothing registered."""
    hf_home = tmp_path / "hf_home"
    src = tmp_path / "f.bin"
    src.write_bytes(os.urandom(2 * MiB))
    first = HubServer(tmp_path / "data1", tmp_path / "hub1.log").start()
    try:
        first.http("POST", "/api/buckets/hugbucket/b", json={}).raise_for_status()
        run_client(first, hf_home, f"""
            api.batch_bucket_files("hugbucket/b", add=[({str(src)!r}, "f.bin")])
        """)
    finally:
        first.stop()
    second = HubServer(tmp_path / "data2", tmp_path / "hub2.log", port=first.port)
    second.token = first.token  # same token so that the client's HF_TOKEN stays valid
    second.extra_args = ("--token", first.token)
    second.start()
    try:
        second.http("POST", "/api/buckets/hugbucket/b", json={}).raise_for_status()
        with pytest.raises(AssertionError) as err:
            run_client(second, hf_home, f"""
                api.batch_bucket_files("hugbucket/b", add=[({str(src)!r}, "f.bin")])
            """)
        assert "unknown xorb" in str(err.value)
        assert second.http("POST", "/api/buckets/hugbucket/b/paths-info",
                           json={"paths": ["f.bin"]}).json() == []
        stats = second.stats()
        assert stats["uploads_rejected"] >= 1 and stats["shard_files_registered"] == 0
    finally:
        second.stop()
