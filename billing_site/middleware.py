"""Site-wide request guards."""

from __future__ import annotations

from django.http import HttpResponseBadRequest

NUL = "\x00"


def _has_nul(querydict) -> bool:
    return any(
        NUL in key or any(NUL in value for value in values) for key, values in querydict.lists()
    )


class RejectNulBytesMiddleware:
    """Refuse (400) a request with a NUL character in a parameter, a cookie or a file name.

    PostgreSQL cannot store NUL in text, so one in any input would otherwise
    surface as a DataError (a 500) wherever it reaches a query; SQLite would
    store it silently. No form needs the character, so it is refused before
    any view runs and nothing is written.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if (
            _has_nul(request.GET)
            or (request.method == "POST" and (_has_nul(request.POST) or _has_nul_file(request)))
            or any(NUL in key or NUL in value for key, value in request.COOKIES.items())
        ):
            return HttpResponseBadRequest(
                "The request contains a NUL character, which no field accepts.",
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


def _has_nul_file(request) -> bool:
    return any(
        NUL in key or any(NUL in (upload.name or "") for upload in uploads)
        for key, uploads in request.FILES.lists()
    )
