"""What users read stays byte-identical across refactors (issue #21): the reference's metrics JSON,
`twin validate --json` on both committed held-out sets, and the design review's Markdown, against
copies stored in tests/golden/ (the validate reports by SHA-256: 3-4 MB each).

A change meant to move these outputs refreshes them in its own commit, saying why:
    python tests/test_outputs_unchanged.py --refresh
"""

from __future__ import annotations

import hashlib
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
    return out.read_bytes()


def stored(name: str) -> bytes:
    how = OUTPUTS[name][1]
    return (GOLDEN / (name if how == "whole" else name + ".sha256")).read_bytes()


def as_stored(name: str, data: bytes) -> bytes:
    return data if OUTPUTS[name][1] == "whole" else (hashlib.sha256(data).hexdigest() + "\n").encode()


@pytest.mark.parametrize("name", sorted(OUTPUTS))
def test_output_is_byte_identical(name: str, tmp_path: Path) -> None:
    got = as_stored(name, produce(name, tmp_path))
    assert got == stored(name), (f"{name} changed: if meant, refresh tests/golden/ in its own commit "
                                 f"(python tests/test_outputs_unchanged.py --refresh)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--refresh"]:
        sys.exit("usage: python tests/test_outputs_unchanged.py --refresh")
    GOLDEN.mkdir(exist_ok=True)
    tmp = GOLDEN / ".tmp"
    tmp.mkdir(exist_ok=True)
    for n in OUTPUTS:
        data = as_stored(n, produce(n, tmp))
        (GOLDEN / (n if OUTPUTS[n][1] == "whole" else n + ".sha256")).write_bytes(data)
        print(f"tests/golden: {n} refreshed")
    for f in tmp.iterdir():
        f.unlink()
    tmp.rmdir()
