"""The app: POST /validate, POST /mutate, GET /policies.

The admission routes are thin: check the content type, read the body under
a cap, parse the review, hand it to the route's handler, encode the answer in the
version it came in; bad input gets a 4xx with a metav1 Status naming the
reason. `admit` holds that logic once, independent of the framework.

`create_app` returns the FastAPI app wrapped in `AdmissionFastPath`, a
raw-ASGI front that serves the two admission routes itself and passes
everything else to FastAPI. The FastAPI middleware stack (error handling,
exception handlers, exit stacks, body limits; a coroutine frame each per
ASGI message) costs as much as an evaluation, and these two routes need
none of it. FastAPI still declares them, so the app is complete on its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, NamedTuple

from fastapi import FastAPI
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from webhook.server.admission import BadReview, http_error, parse_review
from webhook.server.handlers import Handler, Mutator, Validator
from webhook.telemetry import metrics
from webhook.telemetry.logs import ADMISSION_LOGGER, log_line
from webhook.telemetry.tracing import AdmissionSpan

MAX_BODY = 8 * 1024 * 1024
# Past the cap the rest of the body is read and discarded up to this size, so
# the client gets to read the 413 instead of a reset connection.
DRAIN_LIMIT = 4 * MAX_BODY
JSON = "application/json"
# With and without a trailing slash: a `webhook.url` or clientConfig path
# written `/validate/` must not get a redirect, which the API server does not follow.
ROUTES: Mapping[str, str] = {
    "/validate": "validate",
    "/mutate": "mutate",
    "/validate/": "validate",
    "/mutate/": "mutate",
}


class Reply(NamedTuple):
    status: int
    body: bytes
    close: bool = False  # the body was not read whole, or the server drains: do not reuse


class TooLarge(Exception):
    def __init__(self, size: int, drained: bool) -> None:
        super().__init__(size)
        self.size, self.drained = size, drained


async def read_body(
    header: Callable[[str], str | None], chunks: AsyncIterator[bytes], cap: int
) -> bytes:
    declared = header("content-length")
    if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT:
        raise TooLarge(int(declared), drained=False)
    kept: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > DRAIN_LIMIT:
            raise TooLarge(size, drained=False)
        if size <= cap:
            kept.append(chunk)
    if size > cap:
        raise TooLarge(size, drained=True)
    return b"".join(kept)


class RefusalLog:
    """A warning line for refused requests, at most one per interval.

    The operator must be able to see why the API server's calls are refused
    (a wrong CA, a proxy changing the content type), but a client sending
    garbage in a loop must not flood the log: the requests refused between
    two lines are counted in the next one, and every one in the metrics.
    """

    def __init__(self, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.interval_s, self.clock = interval_s, clock
        self._last = -interval_s
        self._unlogged = 0

    def refused(self, webhook: str, code: int, message: str) -> None:
        self._unlogged += 1
        now = self.clock()
        if now - self._last < self.interval_s:
            return
        fields = {"webhook": webhook, "status": code, "reason": message}
        if self._unlogged > 1:
            fields["refused_since_last_line"] = self._unlogged
        log_line(_log, logging.WARNING, "refused a request", fields)
        self._last, self._unlogged = now, 0


_log = logging.getLogger(ADMISSION_LOGGER)
REFUSALS = RefusalLog()


def _refuse(
    webhook: str,
    code: int,
    message: str,
    *,
    close: bool = False,
    span: AdmissionSpan | None = None,
) -> Reply:
    metrics.INVALID_REQUESTS.labels(webhook, str(code)).inc()
    if span is not None:
        span.refused(code, message)
    REFUSALS.refused(webhook, code, message)
    return Reply(code, http_error(code, message), close)


async def admit(
    handler: Handler,
    header: Callable[[str], str | None],
    chunks: AsyncIterator[bytes],
    max_body: int,
    draining: Callable[[], bool],
) -> Reply:
    """One admission request, from headers and body chunks to the reply."""
    started = time.perf_counter()
    webhook = handler.webhook
    tracer = handler.tracer
    span = tracer.start(webhook, header) if tracer is not None else None
    with metrics.pending.lock:
        in_flight = metrics.in_flight(webhook)
        in_flight.inc()
    try:
        content_type = header("content-type") or ""
        if content_type.partition(";")[0].strip().lower() != JSON:
            return _refuse(
                webhook,
                415,
                f"content type must be {JSON}, got {content_type or 'none'!r}",
                span=span,
            )
        try:
            body = await read_body(header, chunks, max_body)
        except TooLarge as exc:
            return _refuse(
                webhook,
                413,
                f"request body of {exc.size} bytes is over the {max_body}-byte limit",
                close=not exc.drained,
                span=span,
            )
        try:
            review = parse_review(body)
            response = handler.review(review.request, started, span)
        except BadReview as exc:
            return _refuse(webhook, 400, str(exc), span=span)
        return Reply(200, response.encode(review.api_version), draining())
    finally:
        with metrics.pending.lock:
            in_flight.dec()
        if span is not None:
            span.end()


class Handlers(NamedTuple):
    """The two webhooks' handlers, and whether the server is draining (its
    answers then close their connection, so the API server reconnects to
    another replica before this one stops)."""

    validator: Validator
    mutator: Mutator
    draining: Callable[[], bool] = lambda: False

    def of(self, webhook: str) -> Handler:
        return self.validator if webhook == "validate" else self.mutator


class AdmissionFastPath:
    """Serves POST /validate and /mutate as raw ASGI; anything else goes to `app`."""

    def __init__(self, app: FastAPI, handlers: Handlers, max_body: int) -> None:
        self.app, self.handlers, self.max_body = app, handlers, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        webhook = ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if webhook is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message: Message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        handlers = self.handlers
        try:
            reply = await admit(
                handlers.of(webhook), headers.get, chunks(), self.max_body, handlers.draining
            )
        except ClientDisconnect:
            return  # nobody is listening; nothing to answer
        response_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(reply.body)).encode()),
        ]
        if reply.close:
            response_headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": response_headers})  # fmt: skip
        await send({"type": "http.response.body", "body": reply.body})


def create_fastapi(handlers: Handlers, *, max_body: int = MAX_BODY) -> FastAPI:
    app = FastAPI(
        title="podgate",
        description="Kubernetes admission policies in plain, typed Python.",
        docs_url=None,
        redoc_url=None,
    )

    async def route(handler: Handler, request: Request) -> Response:
        try:
            reply = await admit(
                handler, request.headers.get, request.stream(), max_body, handlers.draining
            )
        except ClientDisconnect:
            return Response(status_code=400)
        headers = {"Connection": "close"} if reply.close else None
        return Response(reply.body, status_code=reply.status, media_type=JSON, headers=headers)

    async def validate(request: Request) -> Response:
        return await route(handlers.validator, request)

    async def mutate(request: Request) -> Response:
        return await route(handlers.mutator, request)

    app.add_route("/validate", validate, methods=["POST"], include_in_schema=False)
    app.add_route("/mutate", mutate, methods=["POST"], include_in_schema=False)

    @app.get("/policies")
    def policies() -> dict[str, Any]:
        """The policies and mutations in force, their actions and parameters."""
        config = handlers.validator.config.current
        return {
            "config": config.source,
            "enforcement": str(config.enforcement),
            "failure_action": str(config.raw.failure_action),
            "unsynced_action": str(config.unsynced_action),
            "cluster_state": str(handlers.validator.context.cluster_state),
            "policies": config.describe(),
        }

    return app


def create_app(handlers: Handlers, *, max_body: int = MAX_BODY) -> AdmissionFastPath:
    return AdmissionFastPath(create_fastapi(handlers, max_body=max_body), handlers, max_body)
