"""Host bytes of the tensor files of a checkpoint, as :class:`~temporal_ml.storage._ckpt_io.Payload`.

A synchronous save writes CPU tensors from their own memory (:func:`direct_payload`, zero copy); an
asynchronous save first copies every tensor into reusable host buffers (:class:`Staging`) so that the
caller may change its tensors as soon as the copy is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporal_ml.errors import require
from temporal_ml.storage import _ckpt_io, _safetensors
from temporal_ml.storage._ckpt_io import Payload

__all__ = ["direct_payload", "Staging"]

_SPLIT_BYTES = 8 * 1024 * 1024  # staging copies of bigger tensors are split across threads
_INLINE_COPY_BYTES = 1024 * 1024  # below this, staging copies run in the caller thread only


def direct_payload(plan: _safetensors.FilePlan) -> Payload:
    """Payload that reads CPU tensors in place (zero copy); others are copied to the host first."""
    uint8 = require("torch", "torch").uint8
    payload = Payload([memoryview(plan.header)])
    for spec, tensor in plan.entries:
        if spec.nbytes:
            array = _contiguous_host(tensor).reshape(-1).view(uint8).numpy()
            payload.chunks.append(memoryview(array))
            payload.keepalive.append(array)
    return payload


def _contiguous_host(tensor: Any) -> Any:
    if tensor.device.type != "cpu":
        tensor = tensor.to("cpu")
    tensor = tensor.resolve_conj().resolve_neg()
    return tensor if tensor.is_contiguous() else tensor.contiguous()


class Staging:
    """Host buffers that asynchronous saves copy tensors into, kept and reused between saves.

    One flat ``uint8`` buffer per file holds the data section exactly as it will be written, so the
    background writer issues one write per file. Reusing the buffers avoids paying page faults (or
    ``cudaHostAlloc`` for pinned memory) on every save.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, Any] = {}

    def clear(self) -> None:
        self._buffers.clear()

    def stage(self, plans: Mapping[str, _safetensors.FilePlan]) -> dict[str, Payload]:
        """Copy every tensor of ``plans`` into the staging buffers; returns when the copies are done."""
        torch = require("torch", "torch")
        cpu_jobs: list[tuple[Any, Any]] = []
        devices: set[Any] = set()
        payloads = {}
        with torch.no_grad():
            for name, plan in plans.items():
                buffer = self._buffer(name, plan)
                for spec, src in plan.entries:
                    if not spec.nbytes:
                        continue
                    dst = buffer[spec.begin : spec.end].view(src.dtype).view(src.shape)
                    src = src.resolve_conj().resolve_neg()
                    if src.device.type == "cpu":
                        cpu_jobs.extend(_split_copy(dst, src))
                    elif src.device.type == "cuda":
                        dst.copy_(src, non_blocking=True)
                        devices.add(src.device)
                    else:
                        dst.copy_(src)
                payloads[name] = Payload([memoryview(plan.header), memoryview(buffer.numpy())])
            _copy_in_parallel(cpu_jobs)
            for device in devices:
                torch.cuda.synchronize(device)
        return payloads

    def _buffer(self, name: str, plan: _safetensors.FilePlan) -> Any:
        torch = require("torch", "torch")
        pin = any(t.device.type == "cuda" for _, t in plan.entries)
        buffer = self._buffers.get(name)
        if buffer is None or buffer.numel() < plan.data_bytes or (pin and not buffer.is_pinned()):
            buffer = torch.empty(max(plan.data_bytes, 1), dtype=torch.uint8, pin_memory=pin)
            self._buffers[name] = buffer
        return buffer[: plan.data_bytes]


def _split_copy(dst: Any, src: Any) -> list[tuple[Any, Any]]:
    """Cut a large contiguous copy into pieces that threads can share."""
    nbytes = src.numel() * src.element_size()
    if nbytes <= _SPLIT_BYTES or not src.is_contiguous():
        return [(dst, src)]
    flat_dst, flat_src = dst.reshape(-1), src.reshape(-1)
    step = max(1, _SPLIT_BYTES // src.element_size())
    return [(flat_dst[i : i + step], flat_src[i : i + step]) for i in range(0, src.numel(), step)]


def _copy_in_parallel(jobs: list[tuple[Any, Any]]) -> None:
    """Run ``dst.copy_(src)`` jobs on up to ``WORKERS`` threads, balanced by bytes."""
    sizes = [src.numel() * src.element_size() for _, src in jobs]
    workers = min(len(jobs), _ckpt_io.WORKERS)
    if workers <= 1 or sum(sizes) < _INLINE_COPY_BYTES:
        _copy_jobs(jobs)
        return
    bins: list[list[tuple[Any, Any]]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for size, job in sorted(zip(sizes, jobs, strict=True), key=lambda sj: -sj[0]):
        i = loads.index(min(loads))
        bins[i].append(job)
        loads[i] += size
    futures = [_ckpt_io.pool().submit(_copy_jobs, b) for b in bins[1:]]
    _copy_jobs(bins[0])
    for f in futures:
        f.result()


def _copy_jobs(jobs: list[tuple[Any, Any]]) -> None:
    for dst, src in jobs:
        dst.copy_(src)
