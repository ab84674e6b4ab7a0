"""One TLS context for every vendor client of the process: building one reads the CA bundle
(70 ms on a quiet machine, 0.3 s at load), and every table's or step's client would build its
own: seconds of an idle hourly run."""

import ssl
from functools import cache

import httpx


@cache
def tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once."""
    return httpx.create_ssl_context()
