"""Search attributes from workflow code, on servers that may not define ours.

:func:`registered_search_attributes` asks the worker's ``registered_search_attributes`` local
activity once per workflow run which of our search attributes the namespace defines; :func:`tag`
upserts only those (and :func:`child_search_attributes` keeps only those for a child), so a run on a
server set up without them still works, untagged, with a warning saying how to register them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from temporal_ml.activities.messages import REGISTERED_SEARCH_ATTRIBUTES

__all__ = ["registered_search_attributes", "tag", "child_search_attributes", "SEARCH_ATTRIBUTES_PATCH"]

#: ``workflow.patched`` id of the check. Histories recorded before it replay without it (tag all).
SEARCH_ATTRIBUTES_PATCH = "tml-search-attributes-v1"
_HOW = "register them with `temporal-ml setup` (or `temporal operator search-attribute create`)"


async def registered_search_attributes() -> frozenset[str] | None:
    """Our search attributes defined on this namespace; ``None`` if unknown (tag everything).

    Unknown means a worker without the local activity (it is registered with
    ``SnapshotActivities.activities()``) or a history recorded before this check existed. Register
    it on every worker that runs these workflows, or on none: a run recorded by a worker with it
    does not replay on a worker without it, and vice versa.
    """
    if not workflow.patched(SEARCH_ATTRIBUTES_PATCH):
        return None
    try:
        names: list[str] = await workflow.execute_local_activity(
            REGISTERED_SEARCH_ATTRIBUTES, result_type=list[str],
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=2),
        )
    except ValueError:  # not registered on this worker (the SDK checks before scheduling it)
        workflow.logger.warning("%s is not registered on this worker (register "
                                "SnapshotActivities(...).activities() on every workflow worker); "
                                "tagging as if all search attributes were registered",
                                REGISTERED_SEARCH_ATTRIBUTES)
        return None
    except ActivityError as err:
        workflow.logger.warning("could not list the registered search attributes (%s); tagging "
                                "as if all were registered", err.cause or err)
        return None
    return frozenset(names)


def _name(update: Any) -> str:
    return str(update.key.name)


def tag(registered: frozenset[str] | None, updates: Sequence[SearchAttributeUpdate],
        memo: dict[str, Any] | None = None) -> None:
    """Upsert the ``updates`` whose attributes are registered (all if ``registered`` is ``None``),
    and the memo; a warning names the ones left out and how to register them."""
    keep = [u for u in updates if registered is None or _name(u) in registered]
    missing = sorted(_name(u) for u in updates if u not in keep)
    if missing:
        workflow.logger.warning("search attributes %s are not registered on this namespace, so this "
                                "run is not tagged with them: %s", ", ".join(missing), _HOW)
    if keep:
        workflow.upsert_search_attributes(keep)
    if memo is not None or missing:
        workflow.upsert_memo({**(memo or {}), **({"untagged": missing} if missing else {})})


def child_search_attributes(registered: frozenset[str] | None,
                            pairs: Sequence[SearchAttributePair[Any]]) -> TypedSearchAttributes | None:
    """The ``pairs`` a child may be started with (those registered; ``None`` if none)."""
    keep = [p for p in pairs if registered is None or p.key.name in registered]
    return TypedSearchAttributes(keep) if keep else None
