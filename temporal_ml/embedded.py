"""A self-contained run: an embedded Temporal dev server and in-process workers, gone when it ends.

This is what ``--embedded`` means for ``temporal-ml sweep start`` and the bundled examples: nothing
to start first, nothing left running after (the server's database lives in a temporary directory;
snapshots, checkpoints and metrics go to the workers' store, which stays).

Example:
    >>> async def main():                                       # doctest: +SKIP
    ...     async with embedded_run(lambda client: [my_worker(client)]) as client:
    ...         return await client.execute_workflow(...)

:func:`connect_or_embed` is what a starter with an ``--embedded`` flag calls: the embedded run, or a
connection to the configured server (``TEMPORAL_ADDRESS`` etc.) where the workers run elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence

from temporalio.client import Client
from temporalio.worker import Worker

from temporal_ml.client import connect
from temporal_ml.devserver import DevServer

__all__ = ["embedded_run", "connect_or_embed", "free_port"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def embedded_run(make_workers: Callable[[Client], Sequence[Worker]], *,
                       say: Callable[[str], None] | None = None,
                       verbose: bool = False) -> AsyncIterator[Client]:
    """Start a headless dev server on a free port and the workers ``make_workers`` builds, yield a
    connected client, and stop both on exit.

    Args:
        make_workers: builds the in-process workers from the connected client.
        say: where to tell the server's address (e.g. ``print`` to stderr).
        verbose: keep the SDK's worker logs (by default a failing activity's one-line error is not
            repeated as a logged traceback).
    """
    if not verbose:
        logging.getLogger("temporalio").setLevel(logging.CRITICAL)
    data_dir = tempfile.mkdtemp(prefix="temporal-ml-server-")  # removed at exit: the server goes with it
    server = DevServer(port=free_port(), headless=True, data_dir=data_dir)
    await asyncio.to_thread(server.start)
    if say is not None:
        say(f"embedded Temporal server at {server.address}")
    try:
        client = await connect(server.address)
        async with contextlib.AsyncExitStack() as stack:
            for worker in make_workers(client):
                await stack.enter_async_context(worker)
            yield client
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.asynccontextmanager
async def connect_or_embed(make_workers: Callable[[Client], Sequence[Worker]], *, embedded: bool,
                           store: str | None = None, say: Callable[[str], None] | None = None,
                           verbose: bool = False) -> AsyncIterator[Client]:
    """A connected client: with ``embedded``, an :func:`embedded_run` of ``make_workers``' workers
    (and a line saying where they store snapshots, checkpoints and metrics); without, a connection to
    the configured server, whose workers run elsewhere (no server there: one line saying how to start
    one, or to run with ``--embedded``).

    Example:
        >>> def workers(client):                                            # doctest: +SKIP
        ...     return [build_worker(client, spec, task_queue="mine")]
        >>> async with connect_or_embed(workers, embedded=args.embedded,     # doctest: +SKIP
        ...                             store=spec.store, say=print) as client:
        ...     result = await client.execute_workflow(MyTraining.run, inp, id="r1", task_queue="mine")

    Args:
        make_workers: builds the in-process workers (called only when ``embedded``).
        embedded: start a server and the workers here, gone on exit.
        store: the workers' store, said when ``embedded``.
        say: where to say the server's address and the store (e.g. a print to stderr).
        verbose: keep the SDK's worker logs (see :func:`embedded_run`).

    Raises:
        temporal_ml.failures.ServerUnreachable: not ``embedded`` and no server at the address.
    """
    if not embedded:
        from temporal_ml.failures import connect_or_explain

        yield await connect_or_explain(embedded_hint=True)
        return
    async with embedded_run(make_workers, say=say, verbose=verbose) as client:
        if store is not None and say is not None:
            say(f"storage in {store} (snapshots, checkpoints, metrics; "
                "set TEMPORAL_ML_STORE or TEMPORAL_ML_HOME to change)")
        yield client
