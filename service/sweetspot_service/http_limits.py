"""A bound on request-line + header bytes, enforced while they arrive (431, then close).

uvicorn's httptools protocol reads headers of any size: a 300 MB ``Authorization`` header
was read in full (the process grew by about 900 MB and kept it) before the key was checked.
With httptools installed, ``http_protocol`` returns ``BoundedHttpToolsProtocol``, which counts
the bytes of each request until its headers are complete; otherwise uvicorn's h11 protocol,
whose ``h11_max_incomplete_event_size`` is the same bound (it answers 400 and closes).
This module is the one place that reaches into uvicorn's protocol classes.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from typing import Any

logger = logging.getLogger(__name__)
_DEFAULT = 64 * 2**10


def http_protocol() -> type[Any] | str:
    """The ``http`` argument for ``uvicorn.Config``; pass the bound as
    ``h11_max_incomplete_event_size``."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._max_header_bytes = self.config.h11_max_incomplete_event_size or _DEFAULT
            self._header_bytes = 0  # bytes received while the headers are incomplete
            self._parsed_bytes = 0  # bytes of the request line and headers parsed so far
            self._in_headers = True
            self._refused = False

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if self._in_headers:
                self._header_bytes += len(data)
            super().data_received(data)
            if self._in_headers and self._header_bytes > self._max_header_bytes:
                self._refuse()

        # Headers that arrive in one read complete inside ``feed_data``, before the count
        # above is checked: the parser's own callbacks count them too (finding: 70-120 KB
        # of headers in one read passed a 64 KB bound).
        def on_url(self, url: bytes) -> None:
            self._parsed_bytes += len(url) + 16  # method, version, spaces and CRLF
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._parsed_bytes += len(name) + len(value) + 4  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            if self._parsed_bytes > self._max_header_bytes:
                self._refuse()  # the app never sees this request
                return
            self._in_headers, self._header_bytes = False, 0
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            if not self._refused:
                super().on_body(body)

        def on_message_complete(self) -> None:
            if self._refused:
                return
            super().on_message_complete()
            self._in_headers, self._parsed_bytes = True, 0

        def _refuse(self) -> None:
            self._refused = True
            if self.transport.is_closing():
                return
            logger.warning("request headers over %d bytes: 431", self._max_header_bytes)
            detail = (
                f"request line and headers exceed {self._max_header_bytes} bytes "
                "(max_header_bytes): send smaller headers"
            )
            body = json.dumps({"detail": detail}).encode()
            head = (
                "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                "content-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode() + body)
            self.transport.close()

    return BoundedHttpToolsProtocol
