"""Every Wycheproof Ed25519 verification case, through the primitive our JWS verification uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vault.crypto.jws import verify_ed25519

VECTORS = Path(__file__).resolve().parents[3].parent / "shared" / "testvectors" / "wycheproof_ed25519_test.json"


def _load() -> tuple[dict[str, Any], list[tuple[bytes, dict[str, Any]]]]:
    suite = json.loads(VECTORS.read_text(encoding="utf-8"))
    cases = [
        (bytes.fromhex(group["publicKey"]["pk"]), case) for group in suite["testGroups"] for case in group["tests"]
    ]
    return suite, cases


SUITE, CASES = _load()


def test_the_suite_is_whole() -> None:
    assert SUITE["algorithm"] == "EDDSA"
    assert len(CASES) == SUITE["numberOfTests"]
    assert len({case["tcId"] for _, case in CASES}) == len(CASES)
    results = {case["result"] for _, case in CASES}
    # The file has no "acceptable" cases; if a later copy does, this test must decide what they mean.
    assert results == {"valid", "invalid"}


def test_every_case() -> None:
    ran = 0
    wrong: list[str] = []
    for public_key, case in CASES:
        verified = verify_ed25519(public_key, bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"]))
        if verified is not (case["result"] == "valid"):
            wrong.append(f"tc{case['tcId']} {case['result']}: {case['comment']} {case['flags']}")
        ran += 1
    assert wrong == []
    assert ran == SUITE["numberOfTests"] == 151
