"""A moto S3 server in this process, over real HTTP, that counts the requests it serves."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from moto.server import DomainDispatcherApplication, ThreadedMotoServer, create_backend_app
from werkzeug.serving import make_server


class CountingMotoServer(ThreadedMotoServer):
    """``ThreadedMotoServer`` whose WSGI app counts requests by HTTP method."""

    def __init__(self) -> None:
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        # S3 evaluates a conditional write (If-Match, If-None-Match) and stores
        # it as one step; moto's threaded server checks, then stores, so two
        # racing writers can both pass the check.  Conditional writes go one at
        # a time here, as they do at S3.
        self._conditional = threading.Lock()

    def _server_entry(self) -> None:
        app = DomainDispatcherApplication(create_backend_app)

        def counting(
            environ: dict[str, Any], start_response: Callable[..., Any]
        ) -> Iterable[bytes]:
            with self._count_lock:
                self.counts[environ.get("REQUEST_METHOD", "?")] += 1
            if "HTTP_IF_MATCH" in environ or "HTTP_IF_NONE_MATCH" in environ:
                with self._conditional:
                    return list(app(environ, start_response))
            return app(environ, start_response)

        self._server = make_server(self._ip_address, self._port, counting, True)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def endpoint(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"

    def total(self) -> int:
        with self._count_lock:
            return sum(self.counts.values())

    def reset(self) -> None:
        with self._count_lock:
            self.counts.clear()


def fake_aws_env() -> None:
    """Credentials and region for boto3 that point nowhere real."""
    for k, v in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        os.environ.setdefault(k, v)


def make_bucket(endpoint: str, name: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
