"""The dashboard on the admin index, which Django's admin site renders without our context."""

from __future__ import annotations

from django import template

from payments.dashboard import Dashboard, staff_dashboard

register = template.Library()


@register.simple_tag
def dashboard() -> Dashboard:
    return staff_dashboard()
