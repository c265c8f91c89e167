"""Fixtures: the real `sark` binary builds the bundles the tests load."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SARK = Path(os.environ.get("SARK", ROOT / "target/release/sark"))


def sark(*args: str) -> str:
    """Runs `sark` and returns stdout; fails the test with stderr when it fails."""
    out = subprocess.run([str(SARK), *args], capture_output=True, text=True)
    assert out.returncode == 0, f"sark {args} failed: {out.stderr}"
    return out.stdout


def build(src: Path, out: Path, *extra: str) -> Path:
    sark("build", str(src), "-o", str(out), *extra)
    return out


@pytest.fixture(scope="session")
def bundles(tmp_path_factory) -> dict:
    """The example policies, the failure fixtures, and two revisions of a small policy."""
    d = tmp_path_factory.mktemp("bundles")
    small = d / "small"
    small.mkdir()
    (small / "p.rego").write_text(
        "package t\n\n"
        "# METADATA\n# entrypoint: true\n"
        "maybe := 1 if input.x == 1\n\n"
        "no := false\n\n"
        "rev := \"one\"\n\n"
        "conflict := 1 if input.c\n\nconflict := 2 if input.c\n"
    )
    (small / ".manifest").write_text(json.dumps({"revision": "r1"}))
    r1 = build(small, d / "r1.wasm", "-e", "t")
    (small / "p.rego").write_text((small / "p.rego").read_text().replace('"one"', '"two"'))
    (small / ".manifest").write_text(json.dumps({"revision": "r2"}))
    r2 = build(small, d / "r2.wasm", "-e", "t")
    broken = d / "broken.wasm"
    broken.write_bytes(r2.read_bytes()[:100_000])
    return {
        "mcp": build(ROOT / "policies", d / "mcp.wasm"),
        "failures": build(ROOT / "host/tests/fixtures/failures", d / "failures.wasm"),
        "r1": r1,
        "r2": r2,
        "broken": broken,
    }


@pytest.fixture(scope="session")
def samples() -> list:
    """(input file, entrypoint) of every sample input, as `make run` pairs them."""
    out = []
    for f in sorted((ROOT / "policies/samples").glob("*.json")):
        ep = "mcp/a2a/decision" if "a2a" in f.name else "mcp/gateway/decision"
        out.append((f, ep))
    assert out, "no sample inputs"
    return out
