"""Health and readiness, on the server's own port, for load balancers and orchestrators.

- ``GET /healthz``: 200 ``{"status": "ok"}`` while the process serves (liveness:
  restart it when this fails).
- ``GET /readyz``: 200 ``{"status": "ready"}``, or 503 ``{"status": "unavailable",
  "reasons": [...]}`` while the server drains or a dependency it was told to use
  (the event broker) is unreachable (readiness: send no new clients meanwhile).

Neither needs credentials, and neither says more than that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from websockets.http11 import Request, Response

from .handshake import Admission, Routes, json_response

__all__ = ["Check", "install"]

# A readiness check: why the server should get no new clients now, or None.
Check = Callable[[], str | None]


def install(routes: Routes, checks: Sequence[Check] = ()) -> None:
    """Answer ``/healthz`` and ``/readyz`` (see the module docstring) on ``routes``."""

    def healthz(request: Request, admission: Admission) -> Response:
        return json_response(200, {"status": "ok"})

    def readyz(request: Request, admission: Admission) -> Response:
        reasons = [reason for reason in (check() for check in checks) if reason is not None]
        if reasons:
            return json_response(503, {"status": "unavailable", "reasons": reasons})
        return json_response(200, {"status": "ready"})

    routes.add("/healthz", healthz)
    routes.add("/readyz", readyz)
