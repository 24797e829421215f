"""Who is asking, for the login lockout (django-axes) and the sign-up throttle."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render


def client_ip_address(request) -> str:
    """The visitor's address: REMOTE_ADDR, or behind `TRUSTED_PROXY_COUNT` reverse proxies
    the address the outermost of them saw (each proxy appends to X-Forwarded-For, so the
    entries before that one are whatever the client chose to send)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if proxies and len(forwarded) >= proxies and forwarded[-proxies]:
        return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")


def login_username(request, credentials: dict | None) -> str:
    """The login as typed, case and spaces aside, so "Ann@X" and "ann@x " share one count."""
    value = (credentials or {}).get("username") or request.POST.get("username", "")
    return str(value).strip().lower()


def sign_up_attempt_allowed(request) -> bool:
    """Count one sign-up attempt for the visitor's address; False past the limit.

    Counted in Django's cache (atomic increments): one count per server
    process with the default in-memory cache, shared with a shared cache.
    """
    key = f"sign-up-attempts:{client_ip_address(request)}"
    window = settings.SIGNUP_THROTTLE_MINUTES * 60
    cache.add(key, 0, timeout=window)
    try:
        attempts = cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.set(key, 1, timeout=window)
        attempts = 1
    return attempts <= settings.SIGNUP_THROTTLE_LIMIT


def lockout_response(request, original_response=None, credentials=None):
    """The page a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE).

    It names neither the account nor whether it exists: the same page for
    every login typed, registered or not.
    """
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(request, "registration/locked_out.html", {"minutes": minutes}, status=429)
