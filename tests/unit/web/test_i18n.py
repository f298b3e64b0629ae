"""Message catalogues: complete in both languages, compiled files current, templates escaping by default."""

from __future__ import annotations

import re

import pytest

from vault.web import i18n

PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


@pytest.fixture(scope="module")
def extracted() -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in i18n.extract() if m.id}


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_the_compiled_catalogues_are_current(lang: str) -> None:
    assert i18n.mo_path(lang).read_bytes() == i18n.compiled(lang), "run `python -m vault.web.i18n compile`"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_msgid_in_the_sources_is_in_each_catalogue_and_nothing_else(lang: str, extracted: set[str]) -> None:
    catalogue = {m.id if isinstance(m.id, str) else m.id[0] for m in i18n.read_catalogue(lang) if m.id}
    assert extracted - catalogue == set(), "run `python -m vault.web.i18n update` and translate"
    assert catalogue - extracted == set(), "stale entries: run `python -m vault.web.i18n update`"


def test_the_sources_use_the_texts_we_know_of(extracted: set[str]) -> None:
    assert {"Sign in", "The login name or the password is wrong.", "Consent Vault"} <= extracted
    # msgids marked in Python modules are found too
    assert "This form was refused because it was not sent from a page of this site." in extracted


def test_chinese_translates_every_message_keeping_its_placeholders() -> None:
    for message in i18n.read_catalogue("zh"):
        if not message.id:
            continue
        ids = [message.id] if isinstance(message.id, str) else list(message.id)
        strings = [message.string] if isinstance(message.string, str) else list(message.string)
        assert all(strings) and not message.fuzzy, message.id
        expected = set(PLACEHOLDER.findall(ids[0]))
        assert all(set(PLACEHOLDER.findall(s)) == expected for s in strings), message.id


def test_chinese_is_the_default_and_english_is_available() -> None:
    assert i18n.DEFAULT_LANGUAGE == "zh" and set(i18n.LANGUAGES) == {"zh", "en"}
    assert i18n.translations("zh").gettext("Sign in") == "登录"
    assert i18n.translations("en").gettext("Sign in") == "Sign in"
    assert i18n.language("fr") is None and i18n.language("en") == "en" and i18n.language(None) is None


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_templates_escape_by_default(lang: str) -> None:
    env = i18n.environment(lang)
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    assert env.from_string("{{ _('To %(name)s', name=x) }}").render(x="<b>") == "To &lt;b&gt;"
    assert env.from_string("{% trans %}To {{ x }}{% endtrans %}").render(x="<b>") == "To &lt;b&gt;"
