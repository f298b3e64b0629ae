"""The agency's `check`: ask a question about the consenting owner's licences, get a signed yes or no, no value.

Under a live grant only. Policy decides the question like a field (askPredicate, deny by default; a refusal is an
access event too); the parameters are checked against the predicate and the ones the service item fixed; the
fields the predicate reads are decrypted for the comparison only. The answer is signed with the vault's key,
recorded as an access event and counted as one use of the grant with the request's reads (ReadLedger.flush).
"""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry.types import Info

from vault.answers.services import Candidate, decide, sign_answer
from vault.api.context import Context
from vault.api.errors import BadUserInput, Forbidden
from vault.api.licences import _load
from vault.api.limits import check_list
from vault.api.loaders import Opening
from vault.api.reads import QuestionAsked
from vault.licences import sdjwt
from vault.licences.lifecycle import LicenceState
from vault.oauth.scopes import Scope
from vault.owners.models import Owner
from vault.policy.errors import UnknownPredicate
from vault.policy.predicates import MAX_PARAMETERS, BadParameters

UNDER_CONSENT = "a question is answered under the owner's consent only: use a token from a consent grant"


@strawberry.input(description='One parameter of a question, e.g. name: "years", value: "18".')
class ParameterInput:
    name: str
    value: str


@strawberry.type(description="A parameter as the answer states it.")
class AnswerParameter:
    name: str
    value: str


@strawberry.type(
    description=(
        "The vault's answer to a question: yes or no, the status of the licence it looked at and the time, signed. "
        "No value of the owner's licences is in it. Verify `signed` offline with the vault's JWKS (/oauth/jwks)."
    )
)
class Answer:
    id: strawberry.ID
    predicate: str
    question_zh: str
    question_en: str
    parameters: list[AnswerParameter]
    answer: bool = strawberry.field(description="True: yes.")
    licence_status: str = strawberry.field(
        description="issued, active, suspended, revoked or expired: the licence the answer rests on; none if the "
        "owner holds no licence of the type."
    )
    answered_at: datetime
    grant_id: strawberry.ID
    signed: str = strawberry.field(description="The answer as a compact JWS (typ predicate-answer+jwt, EdDSA).")


def check(context: Context, predicate_id: str, parameters: list[ParameterInput] | None) -> Answer:
    context.require(Scope.LICENCES_READ)
    authority = context.authority()
    grant = authority.grant
    if grant is None:
        raise Forbidden(UNDER_CONSENT, argument="predicate")
    vault, session = context.vault, context.session
    try:
        predicate = vault.policy.catalogue.predicate(predicate_id)
    except UnknownPredicate:
        raise BadUserInput(f"no predicate {predicate_id!r}", argument="predicate") from None
    check_list("parameters", parameters, MAX_PARAMETERS)
    given: dict[str, object] = {}
    for parameter in parameters or ():
        if parameter.name in given:
            raise BadUserInput(f"parameter {parameter.name!r} is given twice", argument="parameters")
        given[parameter.name] = parameter.value
    owner = session.get(Owner, grant.owner_id)
    if owner is None or owner.erased_at is not None:
        raise Forbidden("the owner of this consent is no longer in the vault", argument="predicate")
    decision = vault.policy.decide_question(
        context.agency,
        owner_id=str(owner.id),
        owner_kind=owner.kind,
        predicate_id=predicate.id,
        purpose=authority.purpose,
        grant=vault.consent.policy_view(grant),
        now=context.now,
    )
    if not decision.allowed:
        context.reads.questions.append(QuestionAsked(owner.id, predicate.id, predicate.licence_type, decision.reason))
        raise Forbidden(
            f"the question {predicate.id} is not answered: {decision.reason}",
            argument="predicate",
            reason=decision.reason,
        )
    licence_type = vault.catalogue.type(predicate.licence_type)
    try:
        values = predicate.check_parameters(licence_type, given, (grant.questions or {}).get(predicate.id, {}))
    except BadParameters as error:
        raise BadUserInput(str(error), argument="parameters") from None

    candidates = []
    for row, version in _load(context, owner.id, [predicate.licence_type]):
        opening = Opening(version, version.id, owner.id, frozenset(predicate.fields))
        opened = context.loaders.disclosures.load(opening) or {}
        read = {name: sdjwt.decode_disclosure(disclosure)[2] for name, disclosure in opened.items()}
        candidates.append(Candidate(row.id, LicenceState(row.state), read))
    outcome = decide(predicate, values, candidates, context.now.date())
    signed = sign_answer(
        vault.keys.signer(session),
        issuer=vault.consent.issuer,
        predicate=predicate,
        parameters=values,
        outcome=outcome,
        grant_id=grant.id,
        client_id=context.token.client_id,
        at=context.now,
    )
    logged = {p.name: values[p.name] for p in predicate.parameters if not p.personal}
    context.reads.questions.append(
        QuestionAsked(
            owner.id,
            predicate.id,
            predicate.licence_type,
            decision.reason,
            answer=outcome.answer,
            licence_status=outcome.licence_status,
            logged=logged,
            answer_id=signed.id,
        )
    )
    return Answer(
        id=strawberry.ID(str(signed.id)),
        predicate=predicate.id,
        question_zh=predicate.question("zh", values),
        question_en=predicate.question("en", values),
        parameters=[AnswerParameter(name=k, value=str(v)) for k, v in values.items()],
        answer=outcome.answer,
        licence_status=outcome.licence_status,
        answered_at=context.now,
        grant_id=strawberry.ID(str(grant.id)),
        signed=signed.token,
    )


@strawberry.type
class CheckQueries:
    @strawberry.field(
        description=(
            "Ask a question (a predicate of policies/predicates.toml) about the owner your consent grant covers: a "
            "signed yes or no, with the licence's status and the time, and no value. Needs licences:read and a "
            "grant that includes the question; each answer is an access event and one use of the grant. "
            "Parameters the service item fixes may be left out."
        )
    )
    def check(
        self, info: Info[Context, None], predicate: str, parameters: list[ParameterInput] | None = None
    ) -> Answer:
        return check(info.context, predicate, parameters)
