"""Search attributes from workflow code, on servers that may not define ours.

:func:`registered_search_attributes` asks the ``registered_search_attributes`` activity (on the
workflow's own task queue; :func:`temporal_ml.create_worker` registers it on every workflow worker)
once per workflow run which of our search attributes the namespace defines; :func:`tag`
upserts only those (and :func:`child_search_attributes` keeps only those for a child), so a run on a
server set up without them still works, untagged, with a warning saying how to register them.

It is a regular activity since ``SEARCH_ATTRIBUTES_ACTIVITY_PATCH``: a local activity's marker can be
recorded in one workflow task while the code after it runs in the next, and such a history does not
replay (the SDK then delivers the result earlier, so commands come out in another order: a restarted
worker failed the run's workflow tasks forever). Histories from before replay with the local activity.
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

__all__ = ["registered_search_attributes", "tag", "child_search_attributes", "SEARCH_ATTRIBUTES_PATCH",
           "SEARCH_ATTRIBUTES_ACTIVITY_PATCH"]

#: ``workflow.patched`` id of the check. Histories recorded before it replay without it (tag all).
SEARCH_ATTRIBUTES_PATCH = "tml-search-attributes-v1"
#: ``workflow.patched`` id: the check is a regular activity (a local one before).
SEARCH_ATTRIBUTES_ACTIVITY_PATCH = "tml-search-attributes-activity-v1"
#: How long the check waits for a worker with the activity before tagging everything.
_PROBE_WAIT = timedelta(seconds=10)
_HOW = "register them with `temporal-ml setup` (or `temporal operator search-attribute create`)"


async def registered_search_attributes() -> frozenset[str] | None:
    """Our search attributes defined on this namespace; ``None`` if unknown (tag everything).

    Unknown means no worker on the workflow's task queue has the activity (``create_worker`` adds it
    to every worker with workflows; ``SnapshotActivities.activities()`` has it too): the check waits
    10 seconds for one, then tags everything. Or a history recorded before this check existed.
    """
    if not workflow.patched(SEARCH_ATTRIBUTES_PATCH):
        return None
    try:
        names: list[str]
        if workflow.patched(SEARCH_ATTRIBUTES_ACTIVITY_PATCH):
            names = await workflow.execute_activity(
                REGISTERED_SEARCH_ATTRIBUTES, result_type=list[str], schedule_to_start_timeout=_PROBE_WAIT,
                start_to_close_timeout=timedelta(seconds=10), retry_policy=RetryPolicy(maximum_attempts=2),
            )
        else:
            names = await workflow.execute_local_activity(
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
