"""The witness's rules (c2sp.org/tlog-witness): cosign a checkpoint only if the log signed it and it extends, by a
valid consistency proof, the last checkpoint this witness cosigned for that log; never a smaller or forked tree."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import nacl.signing

from vault.audit import merkle, note
from vault.audit.errors import NoteError
from vault.witness.store import Latest, WitnessStore

MAX_PROOF = 63
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


class Witness:
    def __init__(
        self, store: WitnessStore, name: str, key: nacl.signing.SigningKey, clock: Callable[[], float] = time.time
    ) -> None:
        self.store, self.name, self.key, self.clock = store, name, key, clock

    @property
    def verifier(self) -> note.Verifier:
        return note.verifier_of(self.name, note.COSIGNATURE, self.key)

    def add_checkpoint(self, raw: bytes) -> Answer:
        try:
            old, proof, signed = _parse_request(raw)
            parsed = note.parse_note(signed)
            checkpoint = note.parse_checkpoint(parsed.text)
        except (NoteError, UnicodeDecodeError) as error:
            return Answer(400, f"bad request: {error}\n")
        with self.store.transaction() as conn:
            keys = self.store.log_keys(conn, checkpoint.origin)
            if not keys:
                return Answer(404, "unknown log\n")
            try:
                signed_by_log = note.verified_by(parsed, keys)
            except NoteError:
                signed_by_log = []
            if not signed_by_log:
                return Answer(403, "the checkpoint is not signed by the log's key\n")
            if old > checkpoint.size:
                return Answer(400, "the old size is larger than the checkpoint's\n")
            latest = self.store.latest(conn, checkpoint.origin)
            known = latest.size if latest else 0
            if old != known:
                return Answer(409, f"{known}\n", "text/x.tlog.size")
            if latest is not None and old == checkpoint.size:
                if latest.root != checkpoint.root:
                    return Answer(409, f"{known}\n", "text/x.tlog.size")
            elif old == 0:
                if proof:
                    return Answer(422, "the proof from size 0 must be empty\n")
            elif latest is None or not merkle.verify_consistency(
                old, checkpoint.size, latest.root, checkpoint.root, proof
            ):
                return Answer(422, "the consistency proof does not verify\n")
            cosignature = note.cosign(parsed.text, self.name, self.key, int(self.clock()))
            kept = note.Note(parsed.text, (*_log_signatures(parsed, keys), cosignature))
            self.store.record(conn, checkpoint.origin, Latest(checkpoint.size, checkpoint.root, kept.render()))
        return Answer(200, cosignature.line())

    def latest(self, origin: str) -> Answer:
        latest = self.store.read_latest(origin)
        return Answer(404, "nothing cosigned for that log\n") if latest is None else Answer(200, latest.signed)


def _log_signatures(parsed: note.Note, keys: list[note.Verifier]) -> tuple[note.Signature, ...]:
    ids = {(k.name, k.key_id) for k in keys}
    return tuple(s for s in parsed.signatures if (s.name, s.key_id) in ids)


def _parse_request(raw: bytes) -> tuple[int, list[bytes], str]:
    if len(raw) > MAX_BODY:
        raise NoteError("the request is too large")
    text = raw.decode("utf-8")
    head, sep, signed = text.partition("\n\n")
    if not sep:
        raise NoteError("the request is an old size line, proof lines, a blank line and the checkpoint")
    lines = head.split("\n")
    first = lines[0].split(" ")
    if len(first) != 2 or first[0] != "old" or not first[1].isascii() or not first[1].isdigit():
        raise NoteError("the first line is 'old <size>'")
    if first[1] != "0" and first[1].startswith("0"):
        raise NoteError("the old size has leading zeroes")
    if len(lines) - 1 > MAX_PROOF:
        raise NoteError(f"at most {MAX_PROOF} proof lines")
    proof = [note.unb64(line, "a proof line") for line in lines[1:]]
    if any(len(h) != 32 for h in proof):
        raise NoteError("each proof line is a 32-byte hash")
    return int(first[1]), proof, signed
