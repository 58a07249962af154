"""Errors raised by the Sweetspot client.

SweetspotError
├── APIConnectionError        the service could not be reached (after retries)
│   └── APITimeoutError       no answer within the configured timeout
├── APIResponseValidationError  a 2xx answer whose body is not the expected JSON (a proxy's
│                             page, another service); carries ``response``
└── APIStatusError            the service answered 4xx/5xx; carries ``response``
    ├── BadRequestError       400/413/422: the request must be fixed, retrying won't help
    ├── AuthenticationError   401/403: missing or wrong API key, or a read-only key
    ├── NotFoundError         404: no such run (create it first)
    ├── ConflictError         409: idempotency key reused with a different body, run exists
    ├── RateLimitError        429: overloaded even after retries
    └── ServiceUnavailableError 5xx: not ready, or failing, even after retries
"""

from __future__ import annotations

import httpx


class SweetspotError(Exception):
    """Base class of every error this package raises."""


class APIConnectionError(SweetspotError):
    def __init__(self, message: str, *, request: httpx.Request) -> None:
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    pass


class APIResponseValidationError(SweetspotError):
    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response
        self.request = response.request
        self.status_code = response.status_code


class APIStatusError(SweetspotError):
    def __init__(self, message: str, *, response: httpx.Response) -> None:
        super().__init__(message)
        self.response = response
        self.request = response.request
        self.status_code = response.status_code


class BadRequestError(APIStatusError):
    pass


class AuthenticationError(APIStatusError):
    pass


class ConflictError(APIStatusError):
    pass


class NotFoundError(APIStatusError):
    pass


class RateLimitError(APIStatusError):
    pass


class ServiceUnavailableError(APIStatusError):
    pass


def status_error(response: httpx.Response) -> APIStatusError:
    """The exception for a non-2xx ``response``, with the service's ``detail`` as message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail", response.text) if isinstance(body, dict) else response.text
    request = response.request
    message = f"{response.status_code} from {request.method} {request.url.path}: {detail}"
    code = response.status_code
    cls: type[APIStatusError]
    if code in (401, 403):
        cls = AuthenticationError
    elif code == 404:
        cls = NotFoundError
    elif code == 409:
        cls = ConflictError
    elif code == 429:
        cls = RateLimitError
    elif code >= 500:
        cls = ServiceUnavailableError
    elif 400 <= code < 500:
        cls = BadRequestError
    else:
        cls = APIStatusError
    return cls(message, response=response)
