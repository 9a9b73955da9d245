"""Reading a workflow's history in tests: the attempts of one kind of activity."""

from __future__ import annotations

from typing import Any


async def activity_attempts(handle: Any, activity_type: str) -> list[int]:
    """The attempt number of each start of ``activity_type`` activities, in order (a workflow also
    runs other activities, e.g. the search-attribute check)."""
    kinds: dict[int, str] = {}
    attempts = []
    async for e in handle.fetch_history_events():
        if e.HasField("activity_task_scheduled_event_attributes"):
            kinds[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        elif e.HasField("activity_task_started_event_attributes"):
            started = e.activity_task_started_event_attributes
            if kinds.get(started.scheduled_event_id) == activity_type:
                attempts.append(started.attempt)
    return attempts
