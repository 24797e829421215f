"""Field types and validators shared by the catalog's models."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import nh3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.images import get_image_dimensions
from django.db import models
from django.utils.deconstruct import deconstructible

if TYPE_CHECKING:
    from django.db.models.expressions import Combinable
    from djmoney.money import Money

    # djmoney's MoneyField subclasses DecimalField, so django-stubs would type
    # its values as Decimal; they are Money. Only the type checker sees this
    # class: at run time it is djmoney's own, so migrations do not change.
    _ST = TypeVar("_ST", contravariant=True)
    _GT = TypeVar("_GT", covariant=True)

    class MoneyField(models.DecimalField[_ST, _GT]):
        _pyi_private_set_type: Money | Decimal | Combinable  # type: ignore[assignment]
        _pyi_private_get_type: Money  # type: ignore[assignment]  # Money, not Decimal

        def __init__(self, *args: Any, **kwargs: Any) -> None: ...

else:
    from djmoney.models.fields import MoneyField

__all__ = ["MoneyField"]

# Tags and attributes staff may use in descriptions. Anything else (script,
# style, iframes, event handlers, javascript: URLs) is stripped before the
# text is stored, so no page ever has to trust it.
ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "em", "h2", "h3", "h4",
    "hr", "i", "li", "ol", "p", "pre", "small", "span", "strong", "sub",
    "sup", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(value: str) -> str:
    if not value:
        return ""
    return nh3.clean(
        value,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


class SanitizedHTMLField(models.TextField):
    """HTML text that is cleaned against the allowlist on validation and save."""

    def to_python(self, value):
        return sanitize_html(super().to_python(value) or "")

    def pre_save(self, model_instance, add):
        value = sanitize_html(getattr(model_instance, self.attname) or "")
        setattr(model_instance, self.attname, value)
        return value


@deconstructible
class IconValidator:
    """An icon must be a real raster image, small in bytes and in pixels."""

    def __call__(self, file) -> None:
        max_bytes = settings.ICON_MAX_BYTES
        max_pixels = settings.ICON_MAX_PIXELS
        if file.size > max_bytes:
            raise ValidationError(
                "The icon is %(size)d KB; icons may be at most %(max)d KB.",
                code="icon_too_large",
                params={"size": file.size // 1024, "max": max_bytes // 1024},
            )
        width, height = get_image_dimensions(file)
        if width is None or height is None:
            raise ValidationError("The icon is not an image.", code="icon_not_image")
        if width > max_pixels or height > max_pixels:
            raise ValidationError(
                "The icon is %(w)d×%(h)d pixels; icons may be at most %(max)d×%(max)d.",
                code="icon_too_wide",
                params={"w": width, "h": height, "max": max_pixels},
            )

    def __eq__(self, other) -> bool:
        return isinstance(other, IconValidator)


KEY_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
MAX_KEY_VALUE_ENTRIES = 100
MAX_VALUE_LENGTH = 2000


def validate_key_values(value) -> None:
    """Package settings and metadata are flat maps of simple values."""
    if not isinstance(value, dict):
        raise ValidationError("Enter key/value pairs, not a list or a single value.")
    if len(value) > MAX_KEY_VALUE_ENTRIES:
        raise ValidationError(f"At most {MAX_KEY_VALUE_ENTRIES} entries are allowed.")
    for key, item in value.items():
        if not KEY_PATTERN.match(str(key)):
            raise ValidationError(
                "“%(key)s” is not a valid key: start with a letter, then use letters, "
                "digits, “_”, “.” or “-” (at most 64 characters).",
                params={"key": key},
            )
        if not isinstance(item, (str, int, float, bool)) or item is None:
            raise ValidationError(
                "The value of “%(key)s” must be text, a number or true/false.",
                params={"key": key},
            )
        if isinstance(item, str) and len(item) > MAX_VALUE_LENGTH:
            raise ValidationError(
                "The value of “%(key)s” is longer than %(max)d characters.",
                params={"key": key, "max": MAX_VALUE_LENGTH},
            )
