"""Submitting pages as a browser would: a form's own fields, some changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    attrs: dict
    pairs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def action(self) -> str:
        """Where the browser posts it: its action, or the page itself when it has none."""
        return self.attrs.get("action") or ""

    def names(self) -> set[str]:
        return {name for name, _ in self.pairs}


class FormFields(HTMLParser):
    """The (name, value) pairs a browser submits for each form of a page, buttons aside."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.select: dict | None = None
        self.options: list[tuple[str, bool]] = []
        self.option: dict | None = None
        self.textarea: dict | None = None
        self.text = ""

    @property
    def pairs(self) -> list[tuple[str, str]]:
        assert self.form is not None
        return self.form.pairs

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.form = Form(attrs)
            self.forms.append(self.form)
        elif self.form is None or "disabled" in attrs:
            return
        elif tag == "input" and "name" in attrs:
            kind = attrs.get("type", "text")
            if kind in {"submit", "button", "reset", "image", "file"}:
                return
            if kind in {"checkbox", "radio"} and "checked" not in attrs:
                return
            default = "on" if kind in {"checkbox", "radio"} else ""
            self.pairs.append((attrs["name"], attrs.get("value", default)))
        elif tag == "select" and "name" in attrs:
            self.select, self.options = attrs, []
        elif tag == "option" and self.select is not None:
            self.option, self.text = attrs, ""
        elif tag == "textarea" and "name" in attrs:
            self.textarea, self.text = attrs, ""

    def handle_data(self, data):
        if self.option is not None or self.textarea is not None:
            self.text += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "option" and self.option is not None:
            value = self.option.get("value", self.text.strip())
            self.options.append((value, "selected" in self.option))
            self.option = None
        elif tag == "select" and self.select is not None:
            chosen = [value for value, selected in self.options if selected]
            if not chosen and "multiple" not in self.select and self.options:
                chosen = [self.options[0][0]]
            self.pairs.extend((self.select["name"], value) for value in chosen)
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            # Browsers drop the line break that follows <textarea>.
            self.pairs.append((self.textarea["name"], self.text.removeprefix("\n")))
            self.textarea = None


def find_form(html: str, *, form_id: str = "", having: str = "") -> Form:
    """The page's form with this id, or the one with a field named `having`."""
    parser = FormFields()
    parser.feed(html)
    found = [
        form
        for form in parser.forms
        if (not form_id or form.attrs.get("id") == form_id)
        and (not having or having in form.names())
    ]
    assert len(found) == 1, f"{len(found)} forms match id={form_id!r} having={having!r}"
    return found[0]


def page_data(response, form_id: str) -> dict[str, list[str]]:
    data: dict[str, list[str]] = {}
    for name, value in find_form(response.content.decode(), form_id=form_id).pairs:
        data.setdefault(name, []).append(value)
    return data


def submit(client, url: str, changes: dict | None = None, *, form_id: str, **extra):
    """Open the page, change some fields (None removes one) and post it back."""
    page = client.get(url)
    assert page.status_code == 200
    data = page_data(page, form_id)
    for name, value in (changes or {}).items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    return client.post(url, {**data, **extra})
