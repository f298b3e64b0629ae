"""The agency mutation that starts a backchannel (CIBA, poll mode) consent request for one service item.

It is the GraphQL face of POST /oauth/bc-authorize: the owner approves on their phone, the agency polls the token
endpoint with the returned auth_req_id, exactly as with the OAuth endpoint.
"""

from __future__ import annotations

import json
from typing import Annotated

import strawberry
from authlib.oauth2.rfc6749 import OAuth2Error
from strawberry.types import Info

from vault.api.context import Context
from vault.api.errors import Unauthenticated
from vault.api.limits import MAX_FIELD_NAMES, MAX_TYPES, check_list
from vault.oauth import rar
from vault.oauth.clients import Client
from vault.oauth.scopes import Scope

MAX_QUESTIONS = 16


@strawberry.input(description="Fields of one licence type; a request may only ask for fewer than its item needs.")
class LicenceFieldsInput:
    type: str
    names: list[str]


@strawberry.type(description="The owner has been asked; poll the token endpoint with auth_req_id.")
class ConsentRequestStarted:
    auth_req_id: str
    expires_in: int
    interval: int


@strawberry.type(description="No request was opened; `error` is the OAuth error code.")
class ConsentRequestRefused:
    error: str
    message: str


ConsentRequestResult = Annotated[
    ConsentRequestStarted | ConsentRequestRefused, strawberry.union("ConsentRequestResult")
]


@strawberry.type
class BackchannelMutations:
    @strawberry.mutation(
        description=(
            "Ask an owner (named by resident ID number or credit code) to consent to one of your service items. "
            "`fields` and `questions` (predicate ids) narrow what the item asks; questions alone ask no value. "
            "Needs consent:request and a client registered for the CIBA grant."
        )
    )
    def request_consent(
        self,
        info: Info[Context, None],
        owner: str,
        service_item: str,
        fields: list[LicenceFieldsInput] | None = None,
        binding_message: str | None = None,
        questions: list[str] | None = None,
    ) -> ConsentRequestResult:
        context = info.context
        context.require(Scope.CONSENT_REQUEST)
        check_list("fields", fields, MAX_TYPES)
        check_list("questions", questions, MAX_QUESTIONS)
        for entry in fields or ():
            check_list("names", entry.names, MAX_FIELD_NAMES)
        agency = context.vault.agencies.get(context.session, context.token.client_id)
        if agency is None:
            raise Unauthenticated("the client of this access token is not registered")
        detail: dict[str, object] = {"type": rar.LICENCE_ACCESS, "service_item": service_item}
        if fields is not None:
            detail["fields"] = {entry.type: list(entry.names) for entry in fields}
        if questions is not None:
            detail["questions"] = list(questions)
        savepoint = context.session.begin_nested()
        try:
            started = context.vault.oauth.start_backchannel(
                Client(agency), owner, json.dumps([detail]), binding_message
            )
        except OAuth2Error as error:
            savepoint.commit()  # a refusal keeps what it recorded (policy's denial is an access event)
            return ConsentRequestRefused(error=str(error.error), message=str(error.description or error.error))
        except Exception:
            savepoint.rollback()
            raise
        savepoint.commit()
        return ConsentRequestStarted(
            auth_req_id=str(started["auth_req_id"]),
            expires_in=int(started["expires_in"]),
            interval=int(started["interval"]),
        )
