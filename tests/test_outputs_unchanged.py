"""What users read stays byte-identical across refactors (issue #21): the reference's metrics JSON,
`twin validate --json` on both committed held-out sets, and the design review's Markdown, against
copies stored in tests/golden/ (the validate reports by SHA-256: 3-4 MB each). The checkout's own
path is written as <ROOT>. A CI run once saw both validate reports differ where a run alone did
not, a cause not found: where bytes differ the test also compares the JSON with every float to
12 significant digits (last-bit noise, e.g. SIMD sums over differently aligned arrays, passes
and is printed; anything larger fails) and keeps what it got in out/golden-mismatch/.

A change meant to move these outputs refreshes them in its own commit, saying why:
    python tests/test_outputs_unchanged.py --refresh
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
CAL = "models/calibration"
# name -> (the twin's arguments writing OUT, stored whole or as a hash)
OUTPUTS: dict[str, tuple[list[str], str]] = {
    "reference.json": (["simulate", "models/renata-reference.toml", "--json", "OUT"], "whole"),
    "review.md": (["review", "models/renata-claims.toml", "--markdown", "OUT"], "whole"),
    "validate-emqx.json": (["validate", f"{CAL}/emqx-5.8.9-2026-11-27-held-out", "--calibration",
                            f"{CAL}/emqx-5.8.9-2026-11-27.json", "--json", "OUT"], "sha256"),
    "validate-standin.json": (["validate", f"{CAL}/standin-nats-2026-11-27-held-out", "--calibration",
                               f"{CAL}/standin-nats-2026-11-27.json", "--json", "OUT"], "sha256"),
}


def produce(name: str, out_dir: Path) -> bytes:
    args, _ = OUTPUTS[name]
    out = out_dir / name
    cmd = [sys.executable, "-m", "twin.cli", *[str(out) if a == "OUT" else a for a in args]]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr[-2000:]}"
    return out.read_bytes().replace(str(ROOT).encode(), b"<ROOT>")


def stored(name: str, suffix: str = ".sha256") -> bytes:
    how = OUTPUTS[name][1]
    return (GOLDEN / (name if how == "whole" else name + suffix)).read_bytes()


def as_stored(name: str, data: bytes) -> bytes:
    return data if OUTPUTS[name][1] == "whole" else (hashlib.sha256(data).hexdigest() + "\n").encode()


def rounded(data: bytes) -> bytes:
    """The JSON with every float to 12 significant digits (Markdown as it is)."""
    try:
        obj = json.loads(data)
    except ValueError:
        return data

    def r(x):
        if isinstance(x, float):
            return float(f"{x:.12g}")
        if isinstance(x, dict):
            return {k: r(v) for k, v in x.items()}
        if isinstance(x, list):
            return [r(v) for v in x]
        return x

    return json.dumps(r(obj), sort_keys=True).encode()


def rounded_stored(name: str, data: bytes) -> bytes:
    return rounded(data) if OUTPUTS[name][1] == "whole" else \
        (hashlib.sha256(rounded(data)).hexdigest() + "\n").encode()


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_output_is_byte_identical(name: str, tmp_path: Path) -> None:
    data = produce(name, tmp_path)
    if as_stored(name, data) == stored(name):
        return
    keep = ROOT / "out" / "golden-mismatch"
    keep.mkdir(parents=True, exist_ok=True)
    (keep / name).write_bytes(data)
    stored_rounded = rounded(stored(name)) if OUTPUTS[name][1] == "whole" else stored(name, ".rounded.sha256")
    assert rounded_stored(name, data) == stored_rounded, (
        f"{name} changed (kept in {keep / name}): if meant, refresh tests/golden/ in its own commit "
        f"(python tests/test_outputs_unchanged.py --refresh)")
    print(f"{name}: bytes differ, equal to 12 significant digits (kept in {keep / name})")


if __name__ == "__main__":
    if sys.argv[1:] != ["--refresh"]:
        sys.exit("usage: python tests/test_outputs_unchanged.py --refresh")
    GOLDEN.mkdir(exist_ok=True)
    tmp = GOLDEN / ".tmp"
    tmp.mkdir(exist_ok=True)
    for n in OUTPUTS:
        raw = produce(n, tmp)
        (GOLDEN / (n if OUTPUTS[n][1] == "whole" else n + ".sha256")).write_bytes(as_stored(n, raw))
        if OUTPUTS[n][1] != "whole":
            (GOLDEN / (n + ".rounded.sha256")).write_bytes(rounded_stored(n, raw))
        print(f"tests/golden: {n} refreshed")
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
