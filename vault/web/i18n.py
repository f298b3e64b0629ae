"""Languages: Chinese by default, English too. Babel message catalogues and one Jinja2 environment per language.

Every text a visitor reads is an English msgid, translated through translations/<lang>/LC_MESSAGES/messages.po;
the compiled .mo files are committed beside them (a test checks they are current). After changing a text:

    .venv/bin/python -m vault.web.i18n update    # add new msgids to both catalogues (keeps translations)
    # translate the new entries in translations/zh/LC_MESSAGES/messages.po
    .venv/bin/python -m vault.web.i18n compile   # rewrite the .mo files
"""

from __future__ import annotations

import functools
import io
import sys
from collections.abc import Iterable
from pathlib import Path

import jinja2
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import Translations

LANGUAGES = {"zh": "中文", "en": "English"}  # each language's own name, as its switch button shows it
HTML_LANG = {"zh": "zh-CN", "en": "en"}
DEFAULT_LANGUAGE = "zh"
WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
TRANSLATIONS_DIR = WEB_DIR / "translations"
DOMAIN = "messages"
# templates are extracted with the same settings the environments render them with
EXTRACTION_METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("**.py", "python")]
EXTRACTION_OPTIONS = {"templates/**.html": {"trimmed": "true", "silent": "false"}}


def N_(message: str) -> str:
    """Mark an English msgid for extraction where it is defined; it is translated where it is shown."""
    return message


def language(value: object) -> str | None:
    """`value` if it names a language the vault speaks, else None."""
    return value if isinstance(value, str) and value in LANGUAGES else None


def po_path(lang: str) -> Path:
    return TRANSLATIONS_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def mo_path(lang: str) -> Path:
    return po_path(lang).with_suffix(".mo")


@functools.cache
def translations(lang: str) -> Translations:
    """The compiled catalogue of `lang`; raises RuntimeError if it is missing (no silent fallback to msgids)."""
    loaded = Translations.load(TRANSLATIONS_DIR, [lang], DOMAIN)
    if not isinstance(loaded, Translations):
        raise RuntimeError(f"no compiled message catalogue at {mo_path(lang)}")
    return loaded


@functools.cache
def environment(lang: str) -> jinja2.Environment:
    """The Jinja2 environment for `lang`: autoescaping always on, `_`, `gettext` and `ngettext` in every template.

    Newstyle gettext: `_("Hello %(name)s", name=x)` escapes x, but the translated text itself is trusted markup,
    so only ever pass a literal msgid (never a value from a visitor or the database) to `_`.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    return env


# maintaining the catalogues


def extract() -> Catalog:
    """Every msgid in the templates and in vault/web's Python modules (marked with N_, gettext or ngettext)."""
    catalogue = Catalog(project="Consent Vault", fuzzy=False)
    for _file, _line, message, comments, context in extract_from_dir(
        WEB_DIR, method_map=EXTRACTION_METHODS, options_map=EXTRACTION_OPTIONS
    ):
        catalogue.add(message, None, auto_comments=comments, context=context)
    return catalogue


def _write(catalogue: Catalog, path: Path) -> None:
    buffer = io.BytesIO()
    write_po(buffer, catalogue, sort_output=True, omit_header=False, ignore_obsolete=True, include_lineno=False)
    path.write_bytes(buffer.getvalue())


def read_catalogue(lang: str) -> Catalog:
    with po_path(lang).open("rb") as f:
        return read_po(f, locale=lang, domain=DOMAIN)


def compiled(lang: str) -> bytes:
    """What the .mo file of `lang` must contain, compiled from its .po file."""
    buffer = io.BytesIO()
    write_mo(buffer, read_catalogue(lang), use_fuzzy=False)
    return buffer.getvalue()


def update(langs: Iterable[str] = LANGUAGES) -> None:
    """Bring each catalogue in line with the sources: new msgids added untranslated, vanished ones dropped."""
    template = extract()
    for lang in langs:
        path = po_path(lang)
        if path.exists():
            catalogue = read_catalogue(lang)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            catalogue = Catalog(locale=lang, domain=DOMAIN, project="Consent Vault", fuzzy=False)
        template.creation_date = catalogue.creation_date  # no date churn in the diff
        catalogue.update(template, no_fuzzy_matching=True)
        _write(catalogue, path)


def compile_all(langs: Iterable[str] = LANGUAGES) -> None:
    for lang in langs:
        mo_path(lang).write_bytes(compiled(lang))


def main(argv: list[str]) -> int:
    commands = {"update": update, "compile": compile_all}
    if len(argv) != 1 or argv[0] not in commands:
        print("usage: python -m vault.web.i18n update|compile", file=sys.stderr)
        return 2
    commands[argv[0]]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
