"""Connecting to Temporal: one call that works on a laptop, a cluster and Temporal Cloud.

:func:`connect` reads the standard Temporal environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, profiles in the config TOML) through
:mod:`temporalio.envconfig`, falls back to ``localhost:7233``, and installs :class:`TemporalMLPlugin`
so pydantic models cross the boundary intact.

:func:`wait_result` and :func:`reconnecting` keep a client waiting through a server restart: a client
reconnects by itself on its next call, so calls that fail because the server is briefly unreachable
are simply retried (with backoff, for up to ``give_up_after`` seconds of continuous outage).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from temporalio.client import Client, Plugin, WorkflowHandle
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode

from temporal_ml.plugin import TemporalMLPlugin

__all__ = [
    "connect", "connect_config", "DEFAULT_ADDRESS", "wait_result", "reconnecting", "is_unreachable",
    "python_logging_runtime", "workflow_input",
]

DEFAULT_ADDRESS = "localhost:7233"
#: How long a continuous outage may last before :func:`wait_result` gives up (seconds).
RECONNECT_SECONDS = 600.0

log = logging.getLogger(__name__)
T = TypeVar("T")


def connect_config(
    address: str | None = None,
    *,
    namespace: str | None = None,
    profile: str | None = None,
) -> dict[str, Any]:
    """The keyword arguments :func:`connect` passes to ``Client.connect`` (without plugins).

    Precedence: explicit arguments, then the environment / config file profile, then defaults.
    """
    config: dict[str, Any] = dict(ClientConfigProfile.load(profile=profile).to_client_connect_config())
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.setdefault("namespace", "default")
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return config


_RUNTIME: Runtime | None = None


def python_logging_runtime() -> Runtime:
    """The Temporal runtime :func:`connect` uses by default: like the SDK's, except that the log lines
    of its Rust core (e.g. a warning when the server is unreachable) go to Python logging (logger
    ``temporalio.core``) instead of straight to stdout, so a program's stdout stays its own (a
    starter's ``--json`` result), and logging configuration applies to them."""
    global _RUNTIME
    if _RUNTIME is None:
        forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
        _RUNTIME = Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"), forwarding=forwarding)))
    return _RUNTIME


async def connect(
    address: str | None = None,
    *,
    namespace: str | None = None,
    profile: str | None = None,
    plugins: Sequence[Plugin] = (),
    **kwargs: Any,
) -> Client:
    """Connect a Temporal client configured for temporal-ml.

    Args:
        address: ``host:port``; overrides ``TEMPORAL_ADDRESS`` and the config file.
        namespace: overrides ``TEMPORAL_NAMESPACE``.
        profile: envconfig profile name (``TEMPORAL_PROFILE`` by default).
        plugins: extra client plugins; a :class:`TemporalMLPlugin` is added unless one is given.
        **kwargs: passed to ``temporalio.client.Client.connect`` (e.g. ``tls``, ``api_key``, or a
            ``runtime``; the default is :func:`python_logging_runtime`).
    """
    config = connect_config(address, namespace=namespace, profile=profile)
    config.update(kwargs)
    config.setdefault("runtime", python_logging_runtime())
    all_plugins = list(plugins)
    if not any(isinstance(p, TemporalMLPlugin) for p in all_plugins):
        all_plugins.insert(0, TemporalMLPlugin())
    return await Client.connect(plugins=all_plugins, **config)


def is_unreachable(err: BaseException) -> bool:
    """Whether ``err`` says the server could not be reached (down, restarting, network), as opposed
    to an answer from it (not found, invalid argument, a failed workflow...)."""
    if not isinstance(err, RPCError):
        return False
    if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return True
    text = str(err).lower()
    return err.status in (RPCStatusCode.UNKNOWN, RPCStatusCode.CANCELLED) and (
        "transport" in text or "connect" in text or "connection" in text)


async def reconnecting(
    call: Callable[[], Awaitable[T]],
    *,
    give_up_after: float = RECONNECT_SECONDS,
    on_disconnect: Callable[[str], None] | None = None,
) -> T:
    """Run ``call()`` again while it fails because the server is unreachable (a restart, a network
    blip), backing off up to 5 s between tries; other errors propagate at once.

    Args:
        call: makes the request (called again for each try).
        give_up_after: seconds of continuous outage after which the last error is raised.
        on_disconnect: called with a one-line message when the server is lost and when it is back.
    """
    delay, down_since = 0.5, None
    while True:
        try:
            result = await call()
        except RPCError as err:
            if not is_unreachable(err):
                raise
            now = time.monotonic()
            if down_since is None:
                down_since = now
                message = f"lost the Temporal server ({err}); reconnecting"
                (on_disconnect or log.warning)(message)
            elif now - down_since > give_up_after:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
            continue
        if down_since is not None and on_disconnect is not None:
            on_disconnect(f"reconnected to the Temporal server after {time.monotonic() - down_since:.0f} s")
        return result


async def wait_result(
    handle: WorkflowHandle[Any, T],
    *,
    give_up_after: float = RECONNECT_SECONDS,
    on_disconnect: Callable[[str], None] | None = None,
) -> T:
    """``await handle.result()`` that survives server restarts (see :func:`reconnecting`).

    The handle should not pin a run id (``client.get_workflow_handle(id)`` or the handle returned by
    ``start_workflow``), so that the result of a run that continued as new is followed.
    """
    return await reconnecting(handle.result, give_up_after=give_up_after, on_disconnect=on_disconnect)


async def workflow_input(client: Client, handle: WorkflowHandle[Any, Any],
                         input_type: type[Any]) -> Any:
    """The input the workflow's current run was started with (from its first history event), or
    ``None`` when it cannot be decoded as ``input_type``."""
    async for event in handle.fetch_history_events():
        attrs = event.workflow_execution_started_event_attributes
        payloads = list(attrs.input.payloads)
        if not payloads:
            return None
        try:
            decoded = await client.data_converter.decode(payloads[:1], [input_type])
        except Exception:  # noqa: BLE001 - another input type: not comparable
            return None
        value = decoded[0]
        return value if isinstance(value, input_type) else None
    return None
