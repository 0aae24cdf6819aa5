"""`hugbucket hash` must print the same Xet file hash as Hugging Face's own client.

Reference: ``hf_xet.hash_files(paths) -> list[PyXetUploadInfo]`` (``.hash`` = Xet hex
file hash, ``.file_size``), and the ``file_hash`` of every input in
tests/vectors/xet_vectors.json.

Output contract of `hugbucket hash FILE...`: one ``<hash>  <name>`` line per argument,
in argument order, ``-`` = standard input; an unreadable argument prints an error on
stderr, the others are still hashed, and the exit status is non-zero.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys

import hf_xet
import pytest

from conftest import (
    parse_sum_lines,
    recipe_bytes,
    run_hugbucket,
    vectors_dir,
    write_xof_file,
)

MiB = 1 << 20
HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: Seed of the "random sizes" below; override with HUGBUCKET_TEST_SEED to explore.
SEED = int(os.environ.get("HUGBUCKET_TEST_SEED", "20261126"))


def _sizes() -> list[tuple[str, int]]:
    fixed = [
        ("empty", 0),
        ("one", 1),
        ("b8191", 8191),  # just below the minimum chunk size
        ("b8192", 8192),
        ("b8193", 8193),
        ("b131072", 131072),  # exactly one maximum-size chunk
        ("b131073", 131073),
        ("mib1", MiB),
        ("mib1_plus", MiB + 3),
        ("mib9", 9 * MiB + 12345),
    ]
    rng = random.Random(SEED)
    rnd = [(f"rnd{i}", rng.randrange(2, 24 * MiB)) for i in range(5)]
    rnd.append(("rnd_small", rng.randrange(2, 200_000)))
    return fixed + rnd + [("mib100", 100 * MiB)]


def hf_xet_hashes(paths) -> list[tuple[str, int]]:
    infos = hf_xet.hash_files([str(p) for p in paths])
    return [(info.hash, info.file_size) for info in infos]


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """Deterministic pseudo-random files (distinct BLAKE3 XOF streams) of many sizes,
    plus a few structured ones (zeros, repeated blocks)."""
    root = tmp_path_factory.mktemp("hash_corpus")
    files = [write_xof_file(root / f"{name}.bin", f"hugbucket-tests/hash/{name}/{SEED}", size)
             for name, size in _sizes()]
    zeros = root / "zeros_3MiB.bin"
    zeros.write_bytes(bytes(3 * MiB + 1))
    block = recipe_bytes([{"kind": "blake3_xof", "label": "hugbucket-tests/hash/block",
                           "length": 700_001}])
    repeated = root / "repeated.bin"
    repeated.write_bytes(block * 3 + block[:12345] + block)
    spaced = root / "name with spaces.bin"
    spaced.write_bytes(block[:50_000])
    yield files + [zeros, repeated, spaced]
    shutil.rmtree(root, ignore_errors=True)  # ~250 MiB; pytest keeps old tmp dirs


def _expect_lines(stdout: bytes, names: list[str]) -> list[str]:
    """Parses stdout, checks one well-formed line per name in order, returns the hashes."""
    pairs = parse_sum_lines(stdout.decode())
    assert [n for _, n in pairs] == names, f"unexpected output:\n{stdout.decode()}"
    for digest, name in pairs:
        assert HEX64.match(digest), f"bad hash {digest!r} for {name}"
    return [d for d, _ in pairs]


def test_matches_hf_xet_on_many_sizes(hugbucket_bin, corpus):
    proc = run_hugbucket("hash", *corpus)
    assert proc.returncode == 0, proc.stderr.decode()
    ours = _expect_lines(proc.stdout, [str(p) for p in corpus])
    ref = hf_xet_hashes(corpus)
    mismatches = [
        f"{p.name} ({p.stat().st_size} B): hugbucket {o} != hf_xet {r}"
        for p, o, (r, size) in zip(corpus, ours, ref)
        if o != r or size != p.stat().st_size
    ]
    assert not mismatches, "\n".join(mismatches)


def test_empty_file_hash_is_zero(hugbucket_bin, tmp_path):
    f = tmp_path / "empty"
    f.write_bytes(b"")
    proc = run_hugbucket("hash", f)
    assert proc.returncode == 0, proc.stderr.decode()
    assert _expect_lines(proc.stdout, [str(f)]) == ["0" * 64]


def _vector_names():
    # Collected before fixtures exist: read the file directly, tolerate its absence
    # (the `xet_vectors` fixture then fails the tests with a clear message).
    path = vectors_dir() / "xet_vectors.json"
    if not path.is_file():
        return ["<missing xet_vectors.json>"]
    with open(path) as f:
        return list(json.load(f)["inputs"])


@pytest.mark.parametrize("name", _vector_names())
def test_spec_vector(hugbucket_bin, xet_vectors, tmp_path, name):
    vec = xet_vectors["inputs"][name]
    data = recipe_bytes(vec["recipe"])
    assert len(data) == vec["size"]
    f = tmp_path / f"{name}.bin"
    f.write_bytes(data)

    proc = run_hugbucket("hash", f)
    assert proc.returncode == 0, proc.stderr.decode()
    [ours] = _expect_lines(proc.stdout, [str(f)])
    [(ref, size)] = hf_xet_hashes([f])

    assert size == vec["size"]
    assert ref == vec["file_hash"], "hf_xet disagrees with the spec vector itself"
    assert ours == vec["file_hash"]


@pytest.mark.parametrize("size", [0, 1, 8193, 9 * MiB + 7])
def test_stdin(hugbucket_bin, tmp_path, size):
    f = write_xof_file(tmp_path / "in.bin", f"hugbucket-tests/hash/stdin/{size}", size)
    proc = run_hugbucket("hash", "-", input=f.read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    [ours] = _expect_lines(proc.stdout, ["-"])
    [(ref, _)] = hf_xet_hashes([f])
    assert ours == ref


def test_stdin_large_streamed(hugbucket_bin, corpus):
    big = next(p for p in corpus if p.name == "mib100.bin")
    with open(big, "rb") as stdin:
        proc = subprocess.run([str(hugbucket_bin), "hash", "-"], stdin=stdin,
                              capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    [ours] = _expect_lines(proc.stdout, ["-"])
    [(ref, _)] = hf_xet_hashes([big])
    assert ours == ref


def test_stdin_between_files(hugbucket_bin, corpus):
    a, b, c = corpus[3], corpus[7], corpus[-2]
    proc = run_hugbucket("hash", a, "-", c, input=b.read_bytes())
    assert proc.returncode == 0, proc.stderr.decode()
    ours = _expect_lines(proc.stdout, [str(a), "-", str(c)])
    assert ours == [h for h, _ in hf_xet_hashes([a, b, c])]


def test_missing_file_reports_error_and_continues(hugbucket_bin, corpus, tmp_path):
    a, b = corpus[4], corpus[8]
    missing = tmp_path / "does-not-exist.bin"
    proc = run_hugbucket("hash", a, missing, b)
    assert proc.returncode != 0
    stderr = proc.stderr.decode()
    assert "does-not-exist.bin" in stderr, f"stderr does not name the missing file: {stderr!r}"
    ours = _expect_lines(proc.stdout, [str(a), str(b)])
    assert ours == [h for h, _ in hf_xet_hashes([a, b])]


def test_directory_argument_is_an_error(hugbucket_bin, corpus, tmp_path):
    a = corpus[2]
    proc = run_hugbucket("hash", tmp_path, a)
    assert proc.returncode != 0
    assert proc.stderr.strip(), "no error message on stderr"
    ours = _expect_lines(proc.stdout, [str(a)])
    assert ours == [h for h, _ in hf_xet_hashes([a])]


def test_no_arguments_is_usage_error(hugbucket_bin):
    proc = run_hugbucket("hash")
    assert proc.returncode != 0
    assert proc.stderr.strip()
    assert proc.stdout == b""


def test_committed_vectors_are_what_hf_xet_uploads():
    """tests/vectors/generate.py uploads every input with hf_xet to a recording fake CAS:
    the committed shards, xorbs and upload fields of xet_vectors.json are those bytes."""
    script = os.path.join(os.path.dirname(__file__), "..", "vectors", "generate.py")
    p = subprocess.run([sys.executable, script], capture_output=True, text=True,
                       timeout=300, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "all hf_xet-made vectors reproduced" in p.stdout, p.stdout
