"""Delivery channels: SMTP e-mail and a signed webhook (HTTP POST), both synchronous, both with timeouts.

A webhook body is signed with the vault's Ed25519 key (published at /oauth/jwks): the header
`Vault-Signature: t=<unix time>,kid=<key id>,ed25519=<base64url signature of "<t>.<body>">` lets the receiver
check who sent it and refuse replays older than it tolerates.
"""

from __future__ import annotations

import ipaddress
import json
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from vault.crypto.jws import b64url_encode
from vault.crypto.services import Signer
from vault.notifications.errors import DeliveryFailed
from vault.notifications.interfaces import Message

TIMEOUT_SECONDS = 10
SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
SIGNATURE_HEADER = "Vault-Signature"


@dataclass(frozen=True)
class SmtpServer:
    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None
    sender: str

    @classmethod
    def parse(cls, url: str, default_sender: str) -> SmtpServer:
        """smtp://, smtp+starttls:// or smtps://[user:pw@]host[:port][?from=address]; ValueError naming the part."""
        parts = urlsplit(url)
        if parts.scheme not in SMTP_SCHEMES:
            raise ValueError("the scheme must be smtp, smtp+starttls or smtps")
        if not parts.hostname:
            raise ValueError("a host is needed")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError("no path or fragment is allowed")
        try:
            port = parts.port or SMTP_SCHEMES[parts.scheme]
        except ValueError:
            raise ValueError("the port must be a number from 1 to 65535") from None
        query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
        if set(query) - {"from"}:
            raise ValueError("the only query parameter allowed is from")
        sender = query.get("from", [default_sender])[-1]
        if not valid_address(sender):
            raise ValueError("from must be an e-mail address")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        return cls(parts.scheme, parts.hostname, port, username, password, sender)


def valid_address(address: str) -> bool:
    """A plain addr-spec (local@domain), nothing that could add a header or a second recipient."""
    if not 3 <= len(address) <= 254 or any(c in address for c in " \t\r\n<>,;\"'()[]\\"):
        return False
    local, at, domain = address.rpartition("@")
    return bool(at and local and domain and "." in domain.strip(".") and "@" not in local)


class SmtpSender:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    def send(self, destination: str, message: Message, payload: dict[str, object]) -> None:
        if not valid_address(destination):
            raise DeliveryFailed("bad e-mail address", permanent=True)
        mail = EmailMessage()
        mail["From"] = self.server.sender
        mail["To"] = destination
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.server.sender.rpartition("@")[2])
        mail.set_content(f"{message.text}\n\n{message.link}\n")
        server = self.server
        try:
            if server.scheme == "smtps":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    server.host, server.port, timeout=TIMEOUT_SECONDS, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_SECONDS)
            with client:
                if server.scheme == "smtp+starttls":
                    client.starttls(context=ssl.create_default_context())
                if server.username:
                    client.login(server.username, server.password or "")
                client.send_message(mail)
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryFailed("recipient refused", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"smtp: {type(exc).__name__}") from None


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


def check_webhook_url(url: str, *, allow_private: bool) -> None:
    """ValueError unless `url` is https (or http to a private host where those are allowed), without credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("a webhook must be an absolute https URL")
    if parts.username or parts.password or parts.fragment:
        raise ValueError("a webhook URL must not carry credentials or a fragment")
    if parts.scheme == "http" and not allow_private:
        raise ValueError("a webhook must use https")
    try:
        literal = ipaddress.ip_address(parts.hostname)
    except ValueError:
        literal = None
    if not allow_private and (parts.hostname == "localhost" or (literal is not None and not literal.is_global)):
        raise ValueError("a webhook must point to a public address")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # a redirect could lead the request to an internal address: treat it as a failure


class WebhookSender:
    """POST the signed JSON payload. Private and loopback targets only where `allow_private` (development) or
    for the operator's own URLs in `trusted`: a person's URL must not make the vault probe its own network."""

    def __init__(self, signer: Signer, *, allow_private: bool, trusted: tuple[str, ...] = ()) -> None:
        self.signer = signer
        self.allow_private = allow_private
        self.trusted = frozenset(trusted)
        self._opener = urllib.request.build_opener(_NoRedirects)

    def sign(self, body: bytes, at: int) -> str:
        signature = self.signer.key.sign(f"{at}.".encode() + body).signature
        return f"t={at},kid={self.signer.kid},ed25519={b64url_encode(signature)}"

    def _check_resolved(self, host: str, port: int, allow_private: bool) -> None:
        if allow_private:
            return
        try:
            infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
        except OSError:
            raise DeliveryFailed("webhook host does not resolve") from None
        if not infos or not all(is_public_address(str(info[4][0])) for info in infos):
            raise DeliveryFailed("webhook host resolves to a private address", permanent=True)

    def send(self, destination: str, message: Message, payload: dict[str, object]) -> None:
        allow_private = self.allow_private or destination in self.trusted
        try:
            check_webhook_url(destination, allow_private=allow_private)
        except ValueError:
            raise DeliveryFailed("webhook URL not allowed", permanent=True) from None
        parts = urlsplit(destination)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._check_resolved(parts.hostname or "", port, allow_private)
        body = json.dumps(
            {**payload, "subject": message.subject, "text": message.text, "link": message.link},
            ensure_ascii=False,
            sort_keys=True,
        ).encode()
        request = urllib.request.Request(  # noqa: S310 - check_webhook_url admitted only http(s) above
            destination,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", SIGNATURE_HEADER: self.sign(body, int(time.time()))},
        )
        try:
            with self._opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            raise DeliveryFailed(f"webhook: {type(exc).__name__}") from None
        if not 200 <= status < 300:
            raise DeliveryFailed(f"webhook answered {status}", permanent=status in (400, 404, 410))
