"""The bases of every value that crosses a Temporal boundary, and validation errors as one line."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)


class _Frozen(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="strings", frozen=True, extra="forbid")


class BoundaryModel(BaseModel):
    """Base of workflow input models: input that reaches a workflow invalid fails it at once.

    Outside workflows these models validate like any pydantic model (``ValidationError``). When one
    is validated inside a workflow (decoding a start request sent as raw JSON, by another SDK or by
    ``temporal workflow start``; or built by workflow code), a validation error becomes a
    non-retryable ``ApplicationError`` of type ``ValidationError`` with a one-line message, which
    fails the workflow instead of failing its workflow task forever.
    """

    model_config = ConfigDict(ser_json_inf_nan="strings")

    @model_validator(mode="wrap")
    @classmethod
    def _fail_workflow_when_invalid(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        try:
            return handler(data)
        except ValidationError as exc:
            if not _in_workflow():
                raise
            from temporalio.exceptions import ApplicationError

            raise ApplicationError(
                f"invalid {cls.__name__}: {one_line(exc)}", type="ValidationError", non_retryable=True
            ) from None


def one_line(exc: ValidationError, limit: int = 5) -> str:
    """A pydantic validation error as one short line: ``loc: message; ...``."""
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "input"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _in_workflow() -> bool:
    """Whether this runs in workflow code (including payload decoding in the workflow sandbox)."""
    from temporalio import workflow

    return workflow.in_workflow() or workflow.unsafe.in_sandbox()
