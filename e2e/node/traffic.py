"""A steady stream of writes through podgate, each answer checked.

Three kinds of request go round, several at a time, through the real API
server with the in-cluster podgate registered `failurePolicy: Fail`:

- a dry-run CREATE of a Pod that passes only once podgate's defaults are in
  (no cpu request): admitted with the default injected, or it is lost (the
  mutating webhook, `Ignore`, was skipped, or the validating one failed);
- a dry-run CREATE of a Pod that breaks the policies: refused with podgate's
  own message, or it is lost (an API server error names no policy);
- an UPDATE of a real Deployment (an annotation): admitted, or it is lost.

Lost means the answer was not podgate's verdict: a webhook call that failed,
timed out or was refused, whatever the reason.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

GOOD_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "stream-good-", "labels": {"app": "stream"}},
    "spec": {
        "securityContext": {"runAsUser": 10001},
        "containers": [
            {
                "name": "web",
                "image": "registry.example.com/stream@sha256:" + "ab" * 32,
                "resources": {"requests": {"memory": "32Mi"}, "limits": {"memory": "32Mi"}},
                "livenessProbe": {"tcpSocket": {"port": 8080}},
                "readinessProbe": {"tcpSocket": {"port": 8080}},
            }
        ],
    },
}
BAD_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "stream-bad-", "labels": {"app": "stream"}},
    "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
}


@dataclass
class Tally:
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    ok: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.ok.values()) + sum(self.lost.values())

    def summary(self) -> dict[str, Any]:
        seconds = (self.ended or time.monotonic()) - self.started
        ordered = sorted(self.latencies)
        return {
            "requests": self.total,
            "seconds": round(seconds, 1),
            "per_second": round(self.total / seconds, 1) if seconds else 0.0,
            "admitted_or_refused_by_podgate": dict(self.ok),
            "lost": sum(self.lost.values()),
            "lost_by_kind": dict(self.lost),
            "lost_examples": self.examples[:5],
            "latency_ms": {
                "p50": round(statistics.median(ordered) * 1000, 1) if ordered else None,
                "p99": round(ordered[int(len(ordered) * 0.99)] * 1000, 1) if ordered else None,
                "max": round(ordered[-1] * 1000, 1) if ordered else None,
            },
        }


class Stream:
    """`workers` threads, each sending about `rate / workers` requests a second."""

    def __init__(self, namespace: str, deployment: str, rate: float = 8.0, workers: int = 4):
        self.namespace, self.deployment = namespace, deployment
        self.rate, self.workers = rate, workers
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.tally = Tally()

    def __enter__(self) -> Stream:
        self.tally = Tally()
        self._stop.clear()
        for n in range(self.workers):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads.clear()
        self.tally.ended = time.monotonic()

    def _run(self, worker: int) -> None:
        connect: Any = config.new_client_from_config  # untyped in the kubernetes package
        api = connect(config_file=os.environ["KUBECONFIG"])
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        period = self.workers / self.rate
        kinds = ("good-pod", "bad-pod", "deployment-update")
        n = worker
        next_at = time.monotonic()
        while not self._stop.is_set():
            kind = kinds[n % len(kinds)]
            n += 1
            t0 = time.monotonic()
            verdict = self._send(kind, core, apps, n)
            elapsed = time.monotonic() - t0
            with self._lock:
                self.tally.latencies.append(elapsed)
                if verdict is None:
                    self.tally.ok[kind] += 1
                else:
                    self.tally.lost[kind] += 1
                    self.tally.examples.append(f"{kind}: {verdict}")
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _send(self, kind: str, core: Any, apps: Any, n: int) -> str | None:
        """None when podgate's verdict came back; else what came instead."""
        try:
            if kind == "deployment-update":
                patch = {"metadata": {"annotations": {"podgate-e2e/tick": str(n)}}}
                apps.patch_namespaced_deployment(
                    self.deployment, self.namespace, patch, _request_timeout=30
                )
                return None
            body = GOOD_POD if kind == "good-pod" else BAD_POD
            response = core.create_namespaced_pod(
                self.namespace, body, dry_run="All", _preload_content=False, _request_timeout=30
            )
            pod = json.loads(response.data)
            if kind == "bad-pod":
                return "admitted"
            cpu = pod["spec"]["containers"][0]["resources"]["requests"].get("cpu")
            return None if cpu == "100m" else f"admitted without podgate's defaults (cpu={cpu})"
        except ApiException as exc:
            text = str(exc.body or "")
            if kind == "bad-pod" and exc.status == 403 and "podgate policy rule" in text:
                return None
            return f"{exc.status}: {_message(text)}"
        except Exception as exc:  # a timeout or a broken connection: lost as well
            return f"{type(exc).__name__}: {exc}"


def _message(body: str) -> str:
    try:
        return str(json.loads(body).get("message", body))[:300]
    except ValueError:
        return body[:300]
