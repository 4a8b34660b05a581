"""Outbound clients share one TLS context, and it still verifies certificates."""

from __future__ import annotations

import ssl

from clipwatch.outbound import http_client, tls_context


async def test_clients_share_one_verifying_context() -> None:
    async with http_client(timeout=1.0) as first, http_client() as second:
        contexts = {
            id(client._transport._pool._ssl_context)  # type: ignore[attr-defined]
            for client in (first, second)
        }
    assert contexts == {id(tls_context())}
    assert tls_context().verify_mode == ssl.CERT_REQUIRED
    assert tls_context().check_hostname
    assert tls_context().cert_store_stats()["x509_ca"] > 0
