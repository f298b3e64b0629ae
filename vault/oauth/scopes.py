"""API-level rights an agency's client may be registered for; field access is never a scope (see RAR)."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    CASES_REGISTER = "cases:register"  # a case-management system registering cases under a legal mandate
    CONSENT_REQUEST = "consent:request"
    LICENCES_ISSUE = "licences:issue"
    LICENCES_READ = "licences:read"
    LICENCES_VERIFY = "licences:verify"


class GrantType(StrEnum):
    AUTHORIZATION_CODE = "authorization_code"
    CIBA = "urn:openid:params:grant-type:ciba"
    CLIENT_CREDENTIALS = "client_credentials"
    REFRESH_TOKEN = "refresh_token"


class AuthMethod(StrEnum):
    CLIENT_SECRET_BASIC = "client_secret_basic"
    PRIVATE_KEY_JWT = "private_key_jwt"
