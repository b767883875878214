"""A lean client of the API server for load: raw HTTP/1.1 over keep-alive TLS.

The load generator shares the machine's two cores with the API server, etcd
and the webhook it measures, so it must cost as little as it can: one TLS
connection per concurrent writer, requests written by hand, answers read to
their end and checked only for their status. The kubernetes client would
spend more CPU per request than the API server does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml


@dataclass(frozen=True)
class Api:
    """Where the API server is and how to reach it as the kubeconfig's user."""

    host: str
    port: int
    context: ssl.SSLContext

    async def open(self) -> Conn:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.context, server_hostname=self.host
        )
        return Conn(reader, writer, self.host)

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """One request on a connection of its own (scrapes, probes, clean-up)."""

        async def once() -> tuple[int, bytes]:
            conn = await self.open()
            try:
                return await conn.request(method, path, body)
            finally:
                conn.close()

        return asyncio.run(once())

    def get(self, path: str) -> tuple[int, bytes]:
        return self.call("GET", path)


@contextlib.contextmanager
def from_kubeconfig(path: str) -> Iterator[Api]:
    """An Api for the current context of a kubeconfig with client-certificate
    data (what e2e/cluster.sh writes); the key lives in a private temporary
    directory only while the Api is in use."""
    config: dict[str, Any] = yaml.safe_load(Path(path).read_text())
    current = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == current)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    url = urlsplit(cluster["server"])
    with tempfile.TemporaryDirectory(prefix="podgate-bench-client-") as directory:
        cert, key = Path(directory, "client.crt"), Path(directory, "client.key")
        cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64decode(user["client-key-data"]))
        tls = ssl.create_default_context(
            cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
        )
        tls.load_cert_chain(cert, key)
        yield Api(url.hostname or "127.0.0.1", url.port or 443, tls)


class Conn:
    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: application/json\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status_and_headers = await self.reader.readuntil(b"\r\n\r\n")
        lines = status_and_headers.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            return status, await self._chunked()
        return status, await self.reader.readexactly(int(headers.get(b"content-length", b"0")))

    async def _chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self.reader.readuntil(b"\r\n")  # no trailers are sent
                return b"".join(parts)
            parts.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)

    def close(self) -> None:
        self.writer.close()
