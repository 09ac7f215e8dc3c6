"""Response rendering that fills clinic settings into domain responses.

endpoints.yml points `nlg.type` here, so `{clinic_phone}` and friends in domain.yml
come from knowledge/clinic.yml (or env overrides) inside the Rasa process itself —
the seek-care messages never depend on the action server.
"""

from __future__ import annotations

from typing import Any

from rasa.core.nlg import TemplatedNaturalLanguageGenerator
from rasa.shared.core.domain import Domain
from rasa.utils.endpoints import EndpointConfig

from bot.settings import clinic_settings


class ClinicNLG(TemplatedNaturalLanguageGenerator):
    def __init__(self, endpoint_config: EndpointConfig | None = None, domain: Domain | None = None) -> None:
        super().__init__((domain or Domain.empty()).responses)
        self.placeholders = clinic_settings().as_placeholders()

    async def generate(self, utter_action: str, tracker: Any, output_channel: str, **kwargs: Any) -> dict | None:
        return await super().generate(utter_action, tracker, output_channel, **{**self.placeholders, **kwargs})
