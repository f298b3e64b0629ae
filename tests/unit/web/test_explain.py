"""The access log's reasons explained: never a policy id or a technical phrase for the owner."""

from __future__ import annotations

from vault.web.explain import ALLOWED_BY_RULES, POLICIES, REFUSED_BY_RULES, explain


def test_policy_decisions_become_sentences_and_keep_their_ids_for_staff() -> None:
    why = explain("permit: consent-read, full-ordinary-field-under-consent", "allow")
    assert why.sentences == (POLICIES["consent-read"], POLICIES["full-ordinary-field-under-consent"])
    assert why.policy_ids == ("consent-read", "full-ordinary-field-under-consent")
    assert not any("consent-read" in s for s in why.sentences)


def test_a_read_with_denied_fields_explains_each_reason_once() -> None:
    denial = "forbid: biometric-never-under-consent"
    reason = f"permit: consent-read; resident-id-card/photo: {denial}; driving-licence/photo: {denial}"
    why = explain(reason, "allow")
    assert why.sentences == (POLICIES["consent-read"], POLICIES["biometric-never-under-consent"])


def test_technical_phrases_are_explained() -> None:
    assert explain("authorization code redeemed", None).sentences == (
        "The agency collected its access after the consent.",
    )
    assert explain("legal mandate police-criminal-investigation, case X", None).sentences == (
        "Access under a law, for a stated case.",
    )


def test_an_unknown_reason_is_never_shown_as_it_is() -> None:
    assert explain("forbid: some-new-rule", "deny").sentences == (REFUSED_BY_RULES,)
    assert explain("something internal happened", "allow").sentences == (ALLOWED_BY_RULES,)
    assert explain("something internal happened", "deny").policy_ids == ()


def test_a_reason_a_person_typed_is_shown_as_written() -> None:
    why = explain("比对事项目录后发现授权期限过长", None, typed_by_person=True)
    assert why.free_text == "比对事项目录后发现授权期限过长" and why.sentences == ()


def test_questions_are_explained_in_words() -> None:
    assert explain("permit: consent-ask", "allow").sentences == ("Consent was given for this question.",)
    refused = explain("forbid: grant-question-not-asked-by-item", "deny")
    assert refused.sentences == ("The service does not ask this question.",)
    assert explain("a question is asked under a consent grant", "deny").sentences == (
        "A question is answered only under your consent.",
    )
