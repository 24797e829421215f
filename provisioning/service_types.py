"""The kinds of service a package sells; a plugin declares which of them it can set up."""

from __future__ import annotations

from django.db import models


class ServiceType(models.TextChoices):
    MEET = "meet", "Web meeting"
    LIVE = "live", "Live streaming"
    VIDEO = "video", "On-demand video"
    WEBINAR = "webinar", "Webinar"
    WEBCAST = "webcast", "Webcast"
    SIMULCAST = "simulcast", "Simulcast"
    PHONE = "phone", "Phone conference"
    AUDIO = "audio", "Audio conference"
    AUDCAST = "audcast", "Audio broadcast"
    EXTENSIBLE = "extensible", "Extensible (any other service)"
