"""C2SP signed notes: tlog-checkpoint bodies, Ed25519 note signatures (type 0x01), Ed25519 witness cosignatures
(tlog-cosignature, type 0x04) and verifier keys (`<name>+<key id hex>+<base64(type || public key)>`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import nacl.exceptions
import nacl.signing

from vault.audit.errors import NoteError

ED25519 = 0x01
COSIGNATURE = 0x04
DASH = "\u2014"
MAX_SIGNATURES = 16
_NAME = re.compile(r"^[^\s+]+$")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise NoteError(f"{what} is not standard base64") from None


def key_id(name: str, kind: int, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || type || public key)[:4], as signed-note recommends."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([kind]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """A public key as a note verifier: who (name), which (key id), what kind of signature, and the key."""

    name: str
    kind: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.kind, self.public_key)

    @property
    def vkey(self) -> str:
        return f"{self.name}+{self.key_id.hex()}+{b64(bytes([self.kind]) + self.public_key)}"


def parse_vkey(text: str, kind: int | None = None) -> Verifier:
    """A verifier key; raises NoteError naming what is wrong (and when `kind` is given, a key of another kind)."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not _NAME.match(parts[0]):
        raise NoteError("a verifier key is <name>+<8 hex digits>+<base64 key>")
    name, hex_id, encoded = parts
    raw = unb64(encoded, "the verifier key's key")
    if len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE):
        raise NoteError("the verifier key is not an Ed25519 key (type 0x01 or 0x04 and 32 bytes)")
    verifier = Verifier(name, raw[0], raw[1:])
    if hex_id.lower() != verifier.key_id.hex():
        raise NoteError("the verifier key's id does not match its name and key")
    if kind is not None and verifier.kind != kind:
        raise NoteError(f"expected a verifier key of type {kind:#04x}, got {verifier.kind:#04x}")
    return verifier


def verifier_of(name: str, kind: int, key: nacl.signing.SigningKey) -> Verifier:
    return Verifier(name, kind, bytes(key.verify_key))


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint body: origin, tree size, root hash, and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or not lines[0]:
        raise NoteError("a checkpoint is an origin line, a size line and a root hash line, each ending in a newline")
    size_text = lines[1]
    if not size_text.isascii() or not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise NoteError("the checkpoint's size line is not a decimal number")
    root = unb64(lines[2], "the checkpoint's root hash")
    if len(root) != 32:
        raise NoteError("the checkpoint's root hash is not 32 bytes")
    return Checkpoint(lines[0], int(size_text), root, tuple(lines[3:-1]))


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes
    data: bytes  # after the key id

    def line(self) -> str:
        return f"{DASH} {self.name} {b64(self.key_id + self.data)}\n"


@dataclass(frozen=True)
class Note:
    text: str
    signatures: tuple[Signature, ...]

    def render(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)


def parse_note(note: str) -> Note:
    """Split a signed note into its text and signature lines; raises NoteError on any malformed part."""
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise NoteError("a note must not hold control characters")
    cut = note.rfind("\n\n")
    if cut < 0 or not note.endswith("\n"):
        raise NoteError("a note is text, a blank line and signature lines, each ending in a newline")
    text, lines = note[: cut + 1], note[cut + 2 :].split("\n")[:-1]
    if not lines or len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note carries 1 to {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != DASH or not _NAME.match(parts[1]):
            raise NoteError("a signature line is an em dash, a key name and a base64 signature")
        raw = unb64(parts[2], "a signature")
        if len(raw) < 5:
            raise NoteError("a signature is too short")
        signatures.append(Signature(parts[1], raw[:4], raw[4:]))
    return Note(text, tuple(signatures))


def sign(text: str, name: str, key: nacl.signing.SigningKey) -> Signature:
    """An Ed25519 note signature (type 0x01) over the note text."""
    return Signature(name, key_id(name, ED25519, bytes(key.verify_key)), key.sign(text.encode()).signature)


def cosignature_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def cosign(text: str, name: str, key: nacl.signing.SigningKey, timestamp: int) -> Signature:
    """A timestamped Ed25519 cosignature (type 0x04) over a checkpoint's text, as tlog-cosignature defines it."""
    signature = key.sign(cosignature_message(text, timestamp)).signature
    return Signature(name, key_id(name, COSIGNATURE, bytes(key.verify_key)), struct.pack(">Q", timestamp) + signature)


def check(text: str, signature: Signature, verifier: Verifier) -> bool:
    """Whether `signature` is `verifier`'s valid signature (or cosignature) over `text`."""
    if signature.name != verifier.name or signature.key_id != verifier.key_id:
        return False
    if verifier.kind == ED25519:
        message, raw = text.encode(), signature.data
    else:
        if len(signature.data) != 72:
            return False
        timestamp = struct.unpack(">Q", signature.data[:8])[0]
        if timestamp >= 1 << 63:
            return False
        message, raw = cosignature_message(text, timestamp), signature.data[8:]
    try:
        nacl.signing.VerifyKey(verifier.public_key).verify(message, raw)
    except (nacl.exceptions.BadSignatureError, ValueError):
        return False
    return True


def verified_by(note: Note, verifiers: Iterable[Verifier]) -> list[Verifier]:
    """The verifiers whose signature the note carries and that verify; a known key that fails raises NoteError."""
    good = []
    for verifier in verifiers:
        for signature in note.signatures:
            if signature.name == verifier.name and signature.key_id == verifier.key_id:
                if not check(note.text, signature, verifier):
                    raise NoteError(f"the signature of {verifier.name} does not verify")
                good.append(verifier)
                break
    return good


def timestamp_of(signature: Signature) -> int:
    return int(struct.unpack(">Q", signature.data[:8])[0]) if len(signature.data) == 72 else 0


def with_signatures(note: Note, extra: Sequence[Signature]) -> Note:
    """The note with `extra` signatures added, none twice."""
    seen = {s.line() for s in note.signatures}
    return Note(note.text, note.signatures + tuple(s for s in extra if s.line() not in seen))
