"""Connecting to Temporal: one call that works on a laptop, a cluster and Temporal Cloud.

:func:`connect` reads the standard Temporal environment configuration (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_API_KEY``, TLS settings, profiles in the config TOML) through
:mod:`temporalio.envconfig`, falls back to ``localhost:7233``, and installs :class:`TemporalMLPlugin`
so pydantic models cross the boundary intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.client import Client, Plugin
from temporalio.envconfig import ClientConfigProfile

from temporal_ml.plugin import TemporalMLPlugin

__all__ = ["connect", "connect_config", "DEFAULT_ADDRESS"]

DEFAULT_ADDRESS = "localhost:7233"


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
        **kwargs: passed to ``temporalio.client.Client.connect`` (e.g. ``tls``, ``api_key``).
    """
    config = connect_config(address, namespace=namespace, profile=profile)
    config.update(kwargs)
    all_plugins = list(plugins)
    if not any(isinstance(p, TemporalMLPlugin) for p in all_plugins):
        all_plugins.insert(0, TemporalMLPlugin())
    return await Client.connect(plugins=all_plugins, **config)
