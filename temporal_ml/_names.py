"""Validation of names that become path components (run ids, snapshot ids, split names).

Anything that ends up in a storage path goes through :func:`check_name`, so no user input can make a
path escape its store root.
"""

from __future__ import annotations

import re

from temporal_ml.errors import ConfigError

__all__ = ["check_name", "NAME_PATTERN"]

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,199}$")


def check_name(value: str, what: str = "name") -> str:
    """Return ``value`` if it is a safe single path component, else raise :class:`ConfigError`.

    Safe means: 1-200 characters of letters, digits, ``.``, ``_``, ``=`` and ``-``, starting with a
    letter or digit, and not containing ``..``.
    """
    if not isinstance(value, str) or not NAME_PATTERN.match(value) or ".." in value:
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-200 letters, digits, '.', '_', '=' or '-', "
            "starting with a letter or digit (no '/', no '..')"
        )
    return value
