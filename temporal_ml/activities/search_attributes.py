"""The ``registered_search_attributes`` activity: which temporal-ml search attributes exist.

A workflow that upserts a search attribute the namespace does not define fails its workflow task on
every attempt (a self-hosted cluster or Temporal Cloud namespace set up without ``temporal-ml
setup``). Workflows therefore ask this activity once, at start, on their own task queue (every
worker made by ``create_worker`` with workflows registers it), which of ours are registered
(the answer is recorded in their history, so replays agree), and tag only those.
"""

from __future__ import annotations

import time

from temporalio import activity
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import GetSearchAttributesRequest

from temporal_ml.activities.messages import REGISTERED_SEARCH_ATTRIBUTES
from temporal_ml.devserver import SEARCH_ATTRIBUTES

__all__ = ["registered_search_attributes", "OURS"]

#: Our search attributes (name -> Temporal type); ``temporal-ml setup`` and the dev server register them.
OURS = SEARCH_ATTRIBUTES
_CACHE_SECONDS = 60.0
_cache: dict[str, tuple[float, list[str]]] = {}


@activity.defn(name=REGISTERED_SEARCH_ATTRIBUTES)
async def registered_search_attributes() -> list[str]:
    """The names of our search attributes registered on this worker's namespace (cached a minute)."""
    client = activity.client()
    namespace = client.namespace
    key = f"{client.service_client.config.target_host}/{namespace}"
    hit = _cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < _CACHE_SECONDS:
        return hit[1]
    try:
        resp = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace))
        names = set(resp.custom_attributes)
    except Exception:  # noqa: BLE001 - no operator API here (permissions, Cloud): the visibility API
        names = set((await client.workflow_service.get_search_attributes(GetSearchAttributesRequest())).keys)
    found = sorted(n for n in OURS if n in names)
    _cache[key] = (time.monotonic(), found)
    return found
