"""Admin forms of provider instances."""

from __future__ import annotations

from django import forms


class ProviderInstanceForm(forms.ModelForm):
    """An instance's form whose secret fields are write-only.

    A secret is never rendered, not even after a validation error. Left
    empty on an instance that has one, the stored secret is kept; typed in,
    it replaces it. The admin lists the fields in `secret_fields`.
    """

    secret_fields: tuple[str, ...] = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.stored_secrets = {}
        for name in self.secret_fields:
            if name not in self.fields:
                continue
            field = self.fields[name]
            field.widget = forms.PasswordInput(
                render_value=False, attrs={"autocomplete": "new-password"}
            )
            # Out of `initial`, the secret cannot reach the page, and an empty
            # field does not count as a change in the history.
            self.initial.pop(name, None)
            stored = getattr(self.instance, name, "") if self.instance.pk else ""
            if stored:
                self.stored_secrets[name] = stored
                field.required = False
                field.help_text = (
                    f"{field.help_text} A secret is stored and never shown: "
                    "leave this empty to keep it, or type a new one to replace it."
                ).strip()

    def clean(self):
        cleaned_data = super().clean()
        for name, stored in self.stored_secrets.items():
            if not cleaned_data.get(name) and not self.has_error(name):
                cleaned_data[name] = stored
        return cleaned_data
