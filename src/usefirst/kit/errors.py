"""Errors as classes with a stable code and HTTP status, rendered by one handler in api/."""

from __future__ import annotations


class UsefirstError(Exception):
    status_code = 400
    code = "bad_request"
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.message = message or self.default_message
        self.field = field
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """HTTP headers that belong with this error (e.g. Retry-After)."""
        return {}

    def to_body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class AuthenticationRequired(UsefirstError):
    status_code = 401
    code = "unauthenticated"
    default_message = "A valid API key is required (Authorization: Bearer <key>)."


class TooManyFailedAttempts(UsefirstError):
    """Too many failed authentications from one client address: wait ``retry_after_seconds``."""

    status_code = 429
    code = "too_many_failed_attempts"
    default_message = "Too many failed authentication attempts from this address; retry later."

    def __init__(self, *, retry_after_seconds: int, message: str | None = None) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class PermissionDenied(UsefirstError):
    status_code = 403
    code = "forbidden"
    default_message = "This key is not allowed to do that."


class NotFound(UsefirstError):
    status_code = 404
    code = "not_found"
    default_message = "No such object."


class ValidationFailed(UsefirstError):
    status_code = 422
    code = "validation_error"
    default_message = "The request is not valid."


class Conflict(UsefirstError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "This Idempotency-Key was already used with a different request."


class InvariantViolated(UsefirstError):
    """An internal assertion that must never fail; kept on in production (TigerBeetle style)."""

    status_code = 500
    code = "invariant_violated"
    default_message = "An internal invariant was violated; nothing was committed."


class PayloadTooLarge(UsefirstError):
    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is larger than this endpoint accepts."


class InternalError(UsefirstError):
    """Anything unexpected: answered in the one error shape, saying nothing of the cause."""

    status_code = 500
    code = "internal_error"
    default_message = "An internal error occurred; nothing was committed. Try again later."
