"""Staff HTML never carries script into a customer's page, however it was stored."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse

from catalog.models import Catalog, Package
from storefront.cache import catalog_changed
from tests.factories import priced_package

pytestmark = pytest.mark.django_db

HOSTILE = (
    "<p>Fast servers<script>alert('script')</script></p>"
    '<img src="x.png" onerror="alert(\'onerror\')">'
    "<a href=\"javascript:alert('link')\">details</a>"
    "<p onclick=\"alert('click')\">Kept text</p>"
)


def assert_harmless(html: str) -> None:
    assert "<script>" not in html
    assert "alert(" not in html
    assert "onerror" not in html
    assert "onclick" not in html
    assert "javascript:" not in html


def package_html(client, package) -> str:
    url = reverse("storefront:package", args=[package.catalog.slug, package.slug])
    return client.get(url).content.decode()


def test_a_description_saved_through_the_model_renders_without_script(client, catalog):
    package = priced_package(catalog=catalog, description=HOSTILE)

    html = package_html(client, package)

    assert_harmless(html)
    assert "<p>Fast servers</p>" in html
    assert "<p>Kept text</p>" in html
    assert ">details</a>" in html


def test_a_description_written_around_the_model_is_sanitized_on_output(client, catalog):
    package = priced_package(catalog=catalog)
    # Raw SQL, as an import script might do: even QuerySet.update() would clean it.
    with connection.cursor() as cursor:
        for table, pk in (
            (Package._meta.db_table, package.pk),
            (Catalog._meta.db_table, catalog.pk),
        ):
            cursor.execute(f"UPDATE {table} SET description = %s WHERE id = %s", [HOSTILE, pk])
    catalog_changed()
    assert Package.objects.values_list("description", flat=True).get(pk=package.pk) == HOSTILE

    package_page = package_html(client, package)
    catalog_page = client.get(reverse("storefront:catalog", args=[catalog.slug])).content.decode()
    index = client.get(reverse("storefront:index")).content.decode()

    for html in (package_page, catalog_page, index):
        assert_harmless(html)
    assert "<p>Kept text</p>" in package_page
    assert "<p>Kept text</p>" in catalog_page


def test_names_and_short_descriptions_are_escaped(client, catalog):
    package = priced_package(
        catalog=catalog,
        name="<script>alert('name')</script>",
        slug="scripted",
        short_description='"><script>alert(1)</script>',
    )

    html = package_html(client, package)

    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#x27;name&#x27;)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
