"""Outbound HTTP clients (Twitch, Discord, an alert's webhook) share one TLS context.

httpx builds a new `ssl.SSLContext` for every client it makes, loading certifi's CA bundle
each time (~12 ms of CPU); an app's lifespan makes several and the tests make thousands of
apps. The context is built once, the way httpx builds it (`SSL_CERT_FILE` / `SSL_CERT_DIR`
honoured), and is safe to share: clients only wrap sockets with it.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()


def http_client(**options: Any) -> httpx.AsyncClient:
    """An `httpx.AsyncClient` with `options`, verifying TLS with the shared context."""
    return httpx.AsyncClient(verify=tls_context(), **options)
