from __future__ import annotations

from django.http import Http404


def store_index(request):
    raise Http404


def catalog_detail(request, catalog_slug):
    raise Http404


def package_detail(request, catalog_slug, package_slug):
    raise Http404
