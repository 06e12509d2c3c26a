"""Typed exceptions for the Loyverse API client.

Every failure the client can meet becomes one of these, with two flags callers decide on:
``retryable`` (sending the same request again may succeed) and ``ambiguous`` (a write may
have been applied although we got no success answer). Nothing here ever holds the access
token or request headers: only the method, the path (never a query string) and what the
server said.
"""

from __future__ import annotations

from typing import Any

# Requests that change state: a failure after sending them leaves their effect unknown.
_WRITE_METHODS = frozenset({"POST", "DELETE", "PUT", "PATCH"})

_EXCERPT_CHARS = 200


def excerpt(text: str | bytes, limit: int = _EXCERPT_CHARS) -> str:
    """A short one-line excerpt of a response body, for error messages."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "…"


class LoyverseError(Exception):
    """A request to the Loyverse API failed.

    ``status`` is the HTTP status (None when no response arrived), ``code`` the Loyverse
    error code (``errors[0].code``, or a client-side code such as ``TIMEOUT``), ``details``
    and ``field`` the server's explanation, ``method`` and ``path`` the request (the path
    never includes the query string).
    """

    retryable: bool = False

    def __init__(
        self,
        status: int | None = None,
        code: str | None = None,
        details: str | None = None,
        field: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.details = details
        self.field = field
        self.method = method.upper() if method else method
        self.path = path
        super().__init__(self._message())

    @property
    def ambiguous(self) -> bool:
        """True when the request may have been applied even though it failed."""
        return False

    def _message(self) -> str:
        parts = [f"{self.method or '?'} {self.path or '?'}"]
        parts.append(f"-> {self.status}" if self.status is not None else "-> no response")
        if self.code:
            parts.append(self.code)
        text = " ".join(parts)
        if self.details:
            text += f": {self.details}"
        if self.field:
            text += f" (field {self.field})"
        return text

    def __str__(self) -> str:
        return self._message()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._message()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Keeps exceptions picklable (multiprocessing) despite the keyword-style __init__.
        return (_rebuild, (type(self), self.__dict__.copy()))


def _rebuild(cls: type[LoyverseError], state: dict[str, Any]) -> LoyverseError:
    exc = cls.__new__(cls)
    exc.__dict__.update(state)
    Exception.__init__(exc, exc._message())
    return exc


class ValidationError(LoyverseError):
    """400: the request was rejected as invalid (INVALID_VALUE, MISSING_REQUIRED_PARAMETER, ...)."""


class InvalidCursor(ValidationError):
    """400 INVALID_CURSOR: the pagination cursor was not accepted."""


class Unauthorized(LoyverseError):
    """401: the token is missing, malformed, expired or revoked."""


class PaymentRequired(LoyverseError):
    """402: the subscription lapsed or a plan limit was hit."""


class Forbidden(LoyverseError):
    """403: the token lacks the permission or scope."""


class NotFound(LoyverseError):
    """404: unknown id (or an id that was deleted)."""


class RateLimited(LoyverseError):
    """429 RATE_LIMITED. ``retry_after`` is the server's Retry-After in seconds, if any.

    A rate-limited request was not applied, so it is safe to send again.
    """

    retryable = True

    def __init__(self, *args: Any, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(*args, **kwargs)

    def _message(self) -> str:
        text = super()._message()
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:g}s)"
        return text


class ServerError(LoyverseError):
    """5xx: the server failed. A write that got this may or may not have been applied."""

    retryable = True

    @property
    def ambiguous(self) -> bool:
        return self.method in _WRITE_METHODS


class TransportFailure(LoyverseError):
    """No usable HTTP response: timeout, refused or dropped connection.

    ``sent`` is False only when we know the request never left (connection refused, connect
    timeout, no pooled connection); then even a write is unambiguous.
    """

    retryable = True

    def __init__(self, *args: Any, sent: bool = True, **kwargs: Any) -> None:
        self.sent = sent
        super().__init__(*args, **kwargs)

    @property
    def ambiguous(self) -> bool:
        return self.sent and self.method in _WRITE_METHODS


class MalformedResponse(LoyverseError):
    """The body was not JSON, or not the shape the endpoint should return.

    ``expected`` says what we wanted and ``excerpt`` shows the start of what came. A write
    that got a 2xx with a malformed body was applied but its result is unknown, so it
    counts as ambiguous (a safe create then looks the object up).

    ``garbled`` is True when the body was not readable at all (not JSON, truncated, empty,
    undecodable): that is transport-like damage, worth sending the request again later,
    unlike a well-formed answer of the wrong shape. The client itself does not retry it.
    """

    def __init__(
        self,
        *args: Any,
        expected: str = "",
        excerpt: str = "",
        garbled: bool = False,
        **kwargs: Any,
    ) -> None:
        self.expected = expected
        self.excerpt = excerpt
        self.garbled = garbled
        kwargs.setdefault("code", "MALFORMED_RESPONSE")
        if "details" not in kwargs:
            kwargs["details"] = f"expected {expected}; got {excerpt!r}"
        super().__init__(*args, **kwargs)

    @property
    def ambiguous(self) -> bool:
        return (
            self.method in _WRITE_METHODS and self.status is not None and 200 <= self.status < 300
        )


class RepeatedCursor(LoyverseError):
    """The server sent a pagination cursor it had already sent: following it would loop."""

    def __init__(self, *args: Any, cursor: str = "", page: int = 0, **kwargs: Any) -> None:
        self.cursor = cursor
        self.page = page
        kwargs.setdefault("code", "REPEATED_CURSOR")
        kwargs.setdefault("details", f"cursor {cursor!r} repeated at page {page}")
        super().__init__(*args, **kwargs)


_VALIDATION_CODES = frozenset(
    {
        "BAD_REQUEST",
        "INVALID_VALUE",
        "INCORRECT_VALUE_TYPE",
        "MISSING_REQUIRED_PARAMETER",
        "CONFLICTING_PARAMETERS",
        "INVALID_RANGE",
        "UNSUPPORTED_MEDIA_TYPE",
    }
)

_BY_CODE: dict[str, type[LoyverseError]] = {
    "INVALID_CURSOR": InvalidCursor,
    "UNAUTHORIZED": Unauthorized,
    "PAYMENT_REQUIRED": PaymentRequired,
    "FORBIDDEN": Forbidden,
    "NOT_FOUND": NotFound,
    **dict.fromkeys(_VALIDATION_CODES, ValidationError),
}

_BY_STATUS: dict[int, type[LoyverseError]] = {
    400: ValidationError,
    401: Unauthorized,
    402: PaymentRequired,
    403: Forbidden,
    404: NotFound,
}


def parse_error_body(body: Any) -> tuple[str | None, str | None, str | None]:
    """(code, details, field) from ``{"errors":[{code, details, field}]}``; tolerant of others."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return (_str_or_none(first.get("code")), _str_or_none(first.get("details")),
                    _str_or_none(first.get("field")))  # fmt: skip
        # Other shapes seen from proxies and frameworks: {"error": "..."} / {"message": "..."}.
        for key in ("error", "message", "detail"):
            if isinstance(body.get(key), str):
                return None, body[key], None
    return None, None, None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def from_response(
    status: int,
    body: Any,
    raw_text: str,
    *,
    method: str,
    path: str,
    retry_after: float | None = None,
) -> LoyverseError:
    """The typed exception for an HTTP error response.

    The status decides for 429 and 5xx (they drive retries); otherwise the Loyverse code
    decides, then the status.
    """
    code, details, field = parse_error_body(body)
    if details is None and code is None and raw_text.strip():
        details = excerpt(raw_text)
    common: dict[str, Any] = {
        "status": status,
        "code": code,
        "details": details,
        "field": field,
        "method": method,
        "path": path,
    }
    if status == 429:
        common["code"] = code or "RATE_LIMITED"
        return RateLimited(retry_after=retry_after, **common)
    if status >= 500:
        return ServerError(**common)
    cls = _BY_CODE.get(code or "") or _BY_STATUS.get(status) or LoyverseError
    return cls(**common)


#: Errors about the account (token, plan, permissions) rather than the request or its answer.
ACCOUNT_ERRORS = (Unauthorized, Forbidden, PaymentRequired)


def transport_like(exc: LoyverseError) -> bool:
    """Worth the same request again later, or the account's problem: not the data's
    (429, 5xx, no response, an unreadable body, 401/402/403)."""
    return bool(
        exc.retryable or exc.status is None or getattr(exc, "garbled", False)
        or isinstance(exc, ACCOUNT_ERRORS)
    )
