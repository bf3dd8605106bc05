"""Security headers on every answer, the API's and the dashboard's alike. ApiMiddleware adds
them as it sends each answer's start (`headers_for`), so answers made before any route (the
caps, the direct submit path) get them too, without a middleware layer of their own.

- No page of ours may be framed (clickjacking): `frame-ancestors 'none'` and, for older
  browsers, `X-Frame-Options: DENY`.
- `X-Content-Type-Options: nosniff`: a job's JSON is never run as a script or a page.
- `Referrer-Policy: same-origin`: job ids in dashboard URLs do not leak to other sites. Not
  `no-referrer`: under it a browser sends `Origin: null` with every form post, and the
  dashboard refuses posts whose Origin is not its own (its CSRF check).
- The dashboard's pages may load only what it serves itself, and run no inline script (it
  has none: dashboard.js is a file). JSON answers may load nothing at all. The API docs
  (/docs, /redoc) start Swagger UI and ReDoc from an inline script (FastAPI's pages), so
  they only forbid framing.
"""

from __future__ import annotations

COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
DASHBOARD_CSP = (
    b"default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    b"form-action 'self'; frame-ancestors 'none'"
)
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = b"frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")


def policy_for(path: str) -> bytes:
    if path == "/dashboard" or path.startswith("/dashboard/"):
        return DASHBOARD_CSP
    if path.startswith(DOCS_PATHS):
        return DOCS_CSP
    return API_CSP


def headers_for(path: str) -> list[tuple[bytes, bytes]]:
    """The security headers an answer on `path` carries (built once per kind of page)."""
    return _HEADERS[policy_for(path)]


_HEADERS = {
    policy: [*COMMON, (b"content-security-policy", policy)]
    for policy in (DASHBOARD_CSP, API_CSP, DOCS_CSP)
}
