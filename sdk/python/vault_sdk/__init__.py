"""Consent Vault SDK for agencies: OAuth (PAR + PKCE + RAR, CIBA, client credentials, refresh) with DPoP-bound
tokens, the vault's GraphQL operations as typed methods, and offline verification of licences and receipts."""

from vault_sdk.auth import ClientSecretBasic, PrivateKeyJwt
from vault_sdk.client import BackchannelRequest, PendingAuthorization, Tokens, VaultClient, licence_access
from vault_sdk.dpop import DPoPKey
from vault_sdk.errors import (
    AuthorizationError,
    AuthorizationPending,
    GraphQLError,
    OAuthError,
    VaultError,
    VerificationError,
)
from vault_sdk.operations import Operations
from vault_sdk.verify import Presentation, Verifier

__all__ = [
    "AuthorizationError",
    "AuthorizationPending",
    "BackchannelRequest",
    "ClientSecretBasic",
    "DPoPKey",
    "GraphQLError",
    "OAuthError",
    "Operations",
    "PendingAuthorization",
    "Presentation",
    "PrivateKeyJwt",
    "Tokens",
    "VaultClient",
    "VaultError",
    "VerificationError",
    "Verifier",
    "licence_access",
]
