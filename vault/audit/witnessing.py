"""Getting checkpoints cosigned: the tlog-witness protocol's client side, and reading a witness's latest view.

A witness cosigns only a checkpoint that extends (by a consistency proof) the last one it cosigned for this log.
Nothing here holds a database transaction while it talks to a witness.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vault.audit import note
from vault.audit.errors import NoteError, WitnessError

log = logging.getLogger("vault.audit.witnessing")

Transport = Callable[[str, str, bytes | None], tuple[int, bytes]]
"""(method, url, body) -> (HTTP status, body). Tests pass the witness app in-process."""

TIMEOUT = 10.0
SIZE_TYPE = "text/x.tlog.size"


@dataclass(frozen=True)
class Witness:
    url: str  # the submission prefix: add-checkpoint is POSTed below it
    verifier: note.Verifier  # a cosignature key (type 0x04)

    @property
    def name(self) -> str:
        return self.verifier.name


def parse_witnesses(value: str) -> tuple[Witness, ...]:
    """`<url> <vkey>` pairs separated by commas; raises ValueError naming what is wrong."""
    witnesses = []
    for item in value.split(","):
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 2:
            raise ValueError(f"each witness is '<url> <verifier key>', got {item.strip()!r}")
        url, vkey = parts
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.query or parsed.fragment:
            raise ValueError(f"a witness URL must be an absolute http(s) URL without query, got {url!r}")
        try:
            verifier = note.parse_vkey(vkey, note.COSIGNATURE)
        except NoteError as error:
            raise ValueError(f"witness {url}: {error}") from None
        witnesses.append(Witness(url.rstrip("/"), verifier))
    if len({w.name for w in witnesses}) != len(witnesses):
        raise ValueError("two witnesses have the same name")
    return tuple(witnesses)


def http_transport(method: str, url: str, body: bytes | None) -> tuple[int, bytes]:
    if not url.startswith(("http://", "https://")):
        raise WitnessError(f"{url}: only http(s) witnesses")
    request = urllib.request.Request(url, data=body, method=method)  # noqa: S310 (scheme checked above)
    if body is not None:
        request.add_header("Content-Type", "text/plain; charset=utf-8")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (scheme checked above)
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()
    except (urllib.error.URLError, OSError) as error:
        raise WitnessError(f"{url}: {error}") from None


def request_body(old_size: int, proof: Sequence[bytes], signed_note: str) -> bytes:
    lines = [f"old {old_size}", *(note.b64(h) for h in proof)]
    return ("".join(line + "\n" for line in lines) + "\n" + signed_note).encode()


def add_checkpoint(
    transport: Transport,
    witness: Witness,
    signed_note: str,
    old_size: int,
    proof_from: Callable[[int], list[bytes]],
) -> note.Signature:
    """Submit the checkpoint; on a 409 naming the witness's size, prove from there once. Returns the cosignature."""
    for _attempt in range(2):
        status, body = transport(
            "POST", witness.url + "/add-checkpoint", request_body(old_size, proof_from(old_size), signed_note)
        )
        if status == 409 and body.strip().isdigit():
            known = int(body.strip())
            if known == old_size:
                break
            old_size = known
            continue
        if status != 200:
            raise WitnessError(f"witness {witness.name} answered {status}: {body[:200]!r}")
        return _cosignature(witness, signed_note, body)
    raise WitnessError(f"witness {witness.name} refused the checkpoint: it has cosigned size {old_size}")


def _cosignature(witness: Witness, signed_note: str, body: bytes) -> note.Signature:
    checkpoint_text = note.parse_note(signed_note).text
    try:
        lines = body.decode().split("\n")
    except UnicodeDecodeError:
        raise WitnessError(f"witness {witness.name} answered something that is not text") from None
    for line in lines:
        if not line:
            continue
        try:
            signature = note.parse_note("x\n\n" + line + "\n").signatures[0]
        except NoteError:
            continue
        if note.check(checkpoint_text, signature, witness.verifier):
            return signature
    raise WitnessError(f"witness {witness.name} returned no valid cosignature")


def latest_of(transport: Transport, witness: Witness, origin: str) -> str | None:
    """The latest checkpoint the witness cosigned for `origin` (note with its cosignature), None if it has none."""
    url = witness.url + "/latest-checkpoint?" + urllib.parse.urlencode({"origin": origin})
    status, body = transport("GET", url, None)
    if status == 404:
        return None
    if status != 200:
        raise WitnessError(f"witness {witness.name} answered {status} for its latest checkpoint")
    return body.decode("utf-8", "replace")
