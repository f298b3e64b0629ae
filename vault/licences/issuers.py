"""Issuing departments' signing keys and their published metadata (SD-JWT VC JWT VC Issuer Metadata)."""

from __future__ import annotations

import nacl.signing
from sqlalchemy.orm import Session

from vault.crypto import jws
from vault.crypto.services import KeyService, Signer
from vault.licences.errors import LicenceError
from vault.licences.types import LicenceCatalogue


class UnknownIssuer(LicenceError):
    """No issuing department has that code."""


def purpose(code: str) -> str:
    return f"issuer:{code}"


class IssuerRegistry:
    """Each issuer's Ed25519 keys live wrapped in system_keys; retired keys stay published so old licences verify."""

    def __init__(self, keys: KeyService, catalogue: LicenceCatalogue, public_url: str) -> None:
        self.keys = keys
        self.catalogue = catalogue
        self.public_url = public_url

    def codes(self) -> list[str]:
        return sorted(code for code, d in self.catalogue.departments.items() if d.is_issuer)

    def check(self, code: str) -> str:
        department = self.catalogue.departments.get(code)
        if department is None or not department.is_issuer:
            raise UnknownIssuer(f"no issuing department with code {code!r}")
        return code

    def issuer_id(self, code: str) -> str:
        return f"{self.public_url}/issuers/{self.check(code)}"

    def code_of(self, issuer_id: str) -> str | None:
        prefix = f"{self.public_url}/issuers/"
        if not issuer_id.startswith(prefix):
            return None
        code = issuer_id[len(prefix) :]
        return code if code in self.codes() else None

    def signer(self, session: Session, code: str) -> Signer:
        kid, seed = self.keys.system_secret(session, purpose(self.check(code)))
        return Signer(kid, nacl.signing.SigningKey(seed))

    def rotate_key(self, session: Session, code: str) -> str:
        """A new signing key for `code`; earlier keys stay published for the licences they signed."""
        return self.keys.add_system_key(session, purpose(self.check(code)), prefix=code)[0]

    def verify_keys(self, session: Session, code: str) -> dict[str, nacl.signing.VerifyKey]:
        return self.keys.public_keys(session, purpose(self.check(code)))

    def metadata(self, session: Session, code: str) -> dict[str, object]:
        """What `GET /.well-known/jwt-vc-issuer/issuers/<code>` returns: the issuer id and every public key."""
        self.signer(session, code)  # an issuer has a key from the first time anyone asks
        keys = [jws.public_jwk(key, kid) for kid, key in sorted(self.verify_keys(session, code).items())]
        return {"issuer": self.issuer_id(code), "jwks": {"keys": keys}}

    def metadata_url(self, code: str) -> str:
        return f"{self.public_url}/.well-known/jwt-vc-issuer/issuers/{self.check(code)}"
