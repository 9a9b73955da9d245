"""Canonical JSON and self-checksummed ("sealed") manifests, shared by snapshots and checkpoints.

Both stores commit by writing a manifest last. A sealed manifest is the canonical JSON (sorted keys, no
whitespace, ASCII only) of its body plus one more key, ``manifest_sha256``: the sha256 of the body's
canonical JSON. A reader re-serializes what it parsed and compares bytes, so any changed byte of the
file is detected, including ones that JSON parsing alone would forgive (whitespace, key order).

Each store keeps its own schema checks and error messages; this module holds the byte format and
:func:`unseal`, the one check of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from temporal_ml.storage import _fs

__all__ = [
    "SELF_DIGEST",
    "canonical_json",
    "canonical_bytes",
    "self_digest",
    "seal",
    "is_canonical",
    "unseal",
    "SealBroken",
]

SELF_DIGEST = "manifest_sha256"


def canonical_json(value: Any, *, allow_nan: bool = False) -> str:
    """Serialize ``value`` as canonical JSON: sorted keys, no whitespace, ASCII only.

    Args:
        value: a JSON-serializable value.
        allow_nan: write non-finite floats as ``NaN`` / ``Infinity`` instead of raising
            :class:`ValueError`.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=allow_nan
    )


def canonical_bytes(value: Any, *, allow_nan: bool = False) -> bytes:
    """:func:`canonical_json` as ASCII bytes."""
    return canonical_json(value, allow_nan=allow_nan).encode("ascii")


def self_digest(body: Mapping[str, Any], *, allow_nan: bool = False) -> str:
    """The ``manifest_sha256`` of ``body``: sha256 of its canonical JSON."""
    return _fs.sha256_bytes(canonical_bytes(body, allow_nan=allow_nan))


def seal(body: Mapping[str, Any], *, allow_nan: bool = False) -> bytes:
    """The manifest file of ``body``: canonical JSON of ``body`` plus its :func:`self_digest`."""
    digest = self_digest(body, allow_nan=allow_nan)
    return canonical_bytes({**body, SELF_DIGEST: digest}, allow_nan=allow_nan)


def is_canonical(value: Any, raw: bytes, *, allow_nan: bool = False) -> bool:
    """Whether ``raw`` is exactly the canonical JSON of ``value`` (as parsed from ``raw``)."""
    return canonical_bytes(value, allow_nan=allow_nan) == raw


class SealBroken(ValueError):
    """Why bytes are not a sealed manifest, in a few words (each store names the file)."""


def unseal(raw: bytes, *, allow_nan: bool = False) -> dict[str, Any]:
    """The body of the sealed manifest ``raw`` (its ``manifest_sha256`` checked and removed).

    Raises:
        SealBroken: not valid ASCII JSON, no ``manifest_sha256``, not in canonical form, or a
            checksum mismatch.

    Example:
        >>> unseal(seal({"step": 3}))
        {'step': 3}
    """
    try:
        body = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SealBroken(f"not valid JSON ({exc})") from None
    if not isinstance(body, dict) or not isinstance(checksum := body.pop(SELF_DIGEST, None), str):
        raise SealBroken("no manifest_sha256")
    try:
        digest = self_digest(body, allow_nan=allow_nan)
        canonical = is_canonical({**body, SELF_DIGEST: checksum}, raw, allow_nan=allow_nan)
    except ValueError as exc:  # e.g. NaN where the store's manifests have none
        raise SealBroken(str(exc)) from None
    if not canonical:
        raise SealBroken("not in canonical form")
    if digest != checksum:
        raise SealBroken("checksum mismatch")
    return body
