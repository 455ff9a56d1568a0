"""A stand-in Confluent schema registry for tests (the two endpoints the codec uses)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class StandInRegistry(ThreadingHTTPServer):
    """A stand-in for a Confluent schema registry: only the two endpoints the codec uses.

    Not the real product; it implements their documented request and answer
    shapes so the client's HTTP, caching and framing are exercised for real.
    """

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.schemas: list[str] = []
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: StandInRegistry

    def _answer(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.server.requests.append(f"POST {self.path}")
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
            return self._answer(404, {"error_code": 404, "message": "not found"})
        schema = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        if schema not in self.server.schemas:
            self.server.schemas.append(schema)
        return self._answer(200, {"id": self.server.schemas.index(schema) + 1})

    def do_GET(self) -> None:
        self.server.requests.append(f"GET {self.path}")
        prefix = "/schemas/ids/"
        if self.path.startswith(prefix) and self.path[len(prefix):].isdigit():
            index = int(self.path[len(prefix):]) - 1
            if 0 <= index < len(self.server.schemas):
                return self._answer(200, {"schema": self.server.schemas[index]})
        return self._answer(404, {"error_code": 40403, "message": "Schema not found"})

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[StandInRegistry]:
    server = StandInRegistry()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
