"""A small HTTP client for the lab's Compute API (urllib only: nothing to install).
Each response records how long the API took, because the seed's argument is about the
API's response time. It asks for microversion ``MICROVERSION`` (2.47): the lab's code
reads a server's flavor as the flavor itself (``flavor["original_name"]``), which Nova
shows from 2.47 (before, a link to it)."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from orchestrator import rundir

__all__ = ["ApiClient", "ApiError", "Response", "MICROVERSION"]

MICROVERSION = "2.47"


class ApiError(RuntimeError):
    """The API answered with an error (Nova's shape: ``{"badRequest": {...}}``)."""

    def __init__(self, status: int, body: Any):
        detail = next(iter(body.values())) if isinstance(body, dict) and body else body
        message = detail.get("message") if isinstance(detail, dict) else str(detail)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body
        self.message = message


@dataclass
class Response:
    status: int
    body: Any
    elapsed: float          # seconds from sending the request to the full answer
    headers: dict[str, str]


class ApiClient:
    """``token``: the lab's secret, sent as ``X-Auth-Token`` (Keystone's header) on every
    request; the lab's API refuses requests without it (401). ``microversion``: sent as
    ``OpenStack-API-Version: compute X.Y`` (None: no header, so Nova's 2.1)."""

    def __init__(self, base_url: str, timeout: float = 30.0, token: str | None = None,
                 microversion: str | None = MICROVERSION):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.token = token
        self.microversion = microversion

    @classmethod
    def for_lab(cls, run_dir: str | os.PathLike, timeout: float = 30.0) -> ApiClient:
        """The client of the lab in ``run_dir``: its API's URL and its secret."""
        return cls(rundir.read(run_dir)["endpoints"]["api"], timeout, rundir.secret(run_dir))

    def request(self, method: str, path: str, body: Any = None, *,
                raw: bytes | None = None, check: bool = True,
                microversion: str | None = None) -> Response:
        """One request; ``microversion`` asks for another than this client's."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        if microversion or self.microversion:
            headers["OpenStack-API-Version"] = f"compute {microversion or self.microversion}"
        req = urllib.request.Request(f"{self.base_url}/v2.1{path}", data=data, method=method,
                                     headers=headers)
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, payload, headers = resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as err:
            with err:       # its response holds the socket: closed now, not at some GC
                status, payload, headers = err.code, err.read(), dict(err.headers)
        elapsed = time.perf_counter() - start
        try:
            parsed = json.loads(payload) if payload else None
        except ValueError:
            parsed = payload.decode("utf-8", "replace")
        if check and status >= 400:
            raise ApiError(status, parsed)
        return Response(status, parsed, elapsed, headers)

    def get(self, path: str) -> Any:
        return self.request("GET", path).body

    def post(self, path: str, body: Any) -> Response:
        return self.request("POST", path, body)

    def delete(self, path: str) -> Response:
        return self.request("DELETE", path)
