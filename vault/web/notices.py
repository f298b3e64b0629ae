"""Notifications worded for a person, in their language: which agency, which service, which fields by name.

Used by the notification centre and, at send time, by the outbox; nothing here reads a field value or an
identifier, so no message can carry one.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from vault.licences.types import LicenceCatalogue
from vault.notifications.interfaces import Message
from vault.notifications.models import Kind, Notification
from vault.oauth.agencies import AgencyRegistry
from vault.policy.catalogue import ServiceCatalogue
from vault.web.i18n import N_, translations

SUBJECTS = {
    Kind.REQUEST: N_("%(agency)s asks for your consent"),
    Kind.READ: N_("%(agency)s read your data"),
    Kind.MANDATE_READ: N_("%(agency)s read your data under a law"),
    Kind.GRANT_EXPIRING: N_("Your consent to %(agency)s ends soon"),
    Kind.REPRESENTATIVE: N_("Who may act for your company changed"),
}
COUNTER_SUBJECT = N_("A counter is waiting for your consent: %(agency)s")
TEXTS = {
    Kind.REQUEST: N_("For %(item)s, it asks for: %(fields)s. Open your requests to approve, narrow or deny it."),
    Kind.READ: N_("For %(item)s, under the consent you gave, it read: %(fields)s."),
    Kind.MANDATE_READ: N_("Under %(mandate)s, without consent, it read: %(fields)s."),
    Kind.GRANT_EXPIRING: N_("Your consent for %(item)s ends within three days. You need do nothing."),
    Kind.REPRESENTATIVE: N_("The list of people who may act for your company was changed. Check it is right."),
}
COUNTER_TEXT = N_(
    "For %(item)s, it asks for: %(fields)s. The request expires in a few minutes: approve or deny it now."
)
LINKS = {
    Kind.REQUEST: "/inbox",
    Kind.READ: "/activity",
    Kind.MANDATE_READ: "/activity",
    Kind.GRANT_EXPIRING: "/grants",
    Kind.REPRESENTATIVE: "/representatives",
}
UNKNOWN_AGENCY = N_("An agency")
UNKNOWN_ITEM = N_("a service")
UNKNOWN_MANDATE = N_("a legal mandate")
NO_FIELDS = N_("no field")


class NoticeRenderer:
    def __init__(
        self, agencies: AgencyRegistry, services: ServiceCatalogue, licences: LicenceCatalogue, public_url: str
    ) -> None:
        self.agencies = agencies
        self.services = services
        self.licences = licences
        self.public_url = public_url

    def field_labels(self, names: Iterable[str], lang: str) -> list[str]:
        """ "driving-licence/name" -> "驾驶证 · 姓名"; a name no longer in the catalogue is shown as it is."""
        labels = []
        for path in names:
            type_code, _, field = path.partition("/")
            try:
                licence_type = self.licences.type(type_code)
                definition = licence_type.field(field)
            except (KeyError, LookupError):
                labels.append(path)
                continue
            type_name = licence_type.name_en if lang == "en" else licence_type.name_zh
            label = definition.label_en if lang == "en" else definition.label_zh
            labels.append(f"{type_name} · {label}")
        return labels

    def render(self, session: Session, notification: Notification, lang: str) -> Message:
        gettext = translations(lang).gettext
        kind = Kind(notification.kind)
        agency = gettext(UNKNOWN_AGENCY)
        if notification.client_id:
            agency = self.agencies.display_name(session, notification.client_id, lang)
        item = self.services.items.get(notification.service_item or "")
        mandate = self.services.mandates.get(notification.mandate or "")
        labels = self.field_labels(notification.fields, lang)
        values = {
            "agency": agency,
            "item": (item.name_en if lang == "en" else item.name_zh) if item else gettext(UNKNOWN_ITEM),
            "mandate": (mandate.name_en if lang == "en" else mandate.name_zh) if mandate else gettext(UNKNOWN_MANDATE),
            "fields": ("、" if lang == "zh" else ", ").join(labels) or gettext(NO_FIELDS),
        }
        counter = kind is Kind.REQUEST and notification.urgent
        subject = gettext(COUNTER_SUBJECT if counter else SUBJECTS[kind]) % values
        text = gettext(COUNTER_TEXT if counter else TEXTS[kind]) % values
        return Message(subject=subject, text=text, link=f"{self.public_url}{LINKS[kind]}")
