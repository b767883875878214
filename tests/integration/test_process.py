"""`podgate serve` as the process a kubelet runs: signals, workers, the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration import reviews as rv
from tests.integration.harness import metric, start_process, tls_context
from tests.webhook.fakes import wait_for


def test_sigterm_readiness_off_in_flight_finishes_exit_0(tmp_path: Path) -> None:
    proc = start_process(
        tmp_path, "--shutdown-delay", "1.0", "--grace-period", "5", "--deadline", "5"
    )
    try:
        slow = rv.deployment("web", "shop", annotations={"test.podgate.dev/sleep": "1.5"})
        result: dict[str, Any] = {}

        def in_flight() -> None:
            with proc.client() as client:
                resp = client.post("/validate", json=rv.review(slow, uid="in-flight"))
                result["status"] = resp.status_code
                result["body"] = resp.json()

        thread = threading.Thread(target=in_flight)
        thread.start()
        time.sleep(0.3)  # the request is being evaluated
        sent = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: proc.side_get("/readyz").status_code == 503, timeout=2)
        assert "shutting down" in proc.side_get("/readyz").text
        # during the shutdown delay new requests are still served, and each
        # answer closes its connection: the API server keeps connections to a
        # pod open after it leaves the Service, so it must reconnect elsewhere
        with proc.client() as client:
            resp = client.post("/validate", json=rv.review(rv.deployment()))
            assert resp.status_code == 200
            assert resp.headers.get("connection") == "close"
        thread.join(10)
        assert result["status"] == 200
        assert result["body"]["response"]["uid"] == "in-flight"
        assert result["body"]["response"]["allowed"] is True
        code = proc.proc.wait(10)
        assert code == 0, proc.log()
        assert time.monotonic() - sent < 5.0
        assert '"shutting down: readiness off, draining"' in proc.log()
    finally:
        proc.stop()


@pytest.mark.parametrize(
    "annotation", [{"test.podgate.dev/sleep": "30"}, {"test.podgate.dev/spin": "1"}]
)
def test_the_deadline_interrupts_a_policy_that_does_not_return(
    tmp_path: Path, annotation: dict[str, str]
) -> None:
    # `serve` evaluates on the event loop: the alarm must stop a sleeping or
    # spinning policy, answer by the failure actions, and free the loop
    proc = start_process(tmp_path, "--deadline", "0.5")
    try:
        stuck = rv.deployment("web", "shop", annotations=annotation)
        policy = "slow" if "test.podgate.dev/sleep" in annotation else "spin"
        with proc.client() as client:
            started = time.monotonic()
            resp = client.post("/validate", json=rv.review(stuck, uid="stuck")).json()
            took = time.monotonic() - started
            assert took < 2.0, took
            assert resp["response"]["uid"] == "stuck"
            assert resp["response"]["allowed"] is False  # its action is deny, and so its failure
            assert (
                f"- {policy}: podgate could not evaluate it: the evaluation did not finish "
                f"within the 0.5s deadline; {policy} was running (failure_action: deny)"
            ) in resp["response"]["status"]["message"].splitlines()
            # nothing carries over to the next request: it is judged in full, at once
            fine = client.post("/validate", json=rv.review(rv.deployment(), uid="next")).json()
            assert fine["response"] == {"uid": "next", "allowed": True}
            dry = rv.review(stuck, uid="again", dry_run=True)
            again = client.post("/validate", json=dry).json()["response"]
            assert again["allowed"] is False, "the same object, judged again the same way"
        text = proc.side_get("/metrics").text
        assert metric(text, "podgate_admission_errors_total", reason="deadline") == 2
        assert metric(text, "podgate_policy_errors_total", policy=policy) >= 2
        # interrupted, not left running: a policy spinning on a thread would
        # keep burning a core after its request was answered
        before = _cpu_seconds(proc.proc.pid)
        time.sleep(1.0)
        assert _cpu_seconds(proc.proc.pid) - before < 0.5
        assert proc.proc.poll() is None, proc.log()
    finally:
        proc.stop()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow
def test_two_workers_share_the_port_and_aggregate_metrics(tmp_path: Path) -> None:
    proc = start_process(tmp_path, "--workers", "2", "--shutdown-delay", "0.2")
    try:
        pids: set[str] = set()
        with proc.client() as client:
            for i in range(40):
                # a new connection each time so both workers get some
                resp = client.post(
                    "/validate",
                    json=rv.review(rv.deployment(), uid=f"w-{i}"),
                    headers={"Connection": "close"},
                )
                assert resp.status_code == 200
                assert resp.json()["response"]["uid"] == f"w-{i}"

        def counted() -> bool:
            # each worker adds its admissions to the shared files twice a second
            text = proc.side_get("/metrics").text
            return metric(text, "podgate_admission_requests_total", webhook="validate") == 40

        wait_for(counted, timeout=5)
        text = proc.side_get("/metrics").text
        assert metric(text, "podgate_certificate_expiry_timestamp_seconds") > time.time()
        assert metric(text, "podgate_admission_duration_seconds_count", webhook="validate") == 40
        assert metric(text, "podgate_admission_requests_in_flight", webhook="validate") == 0
        # in multiprocess mode each worker writes its own file
        for line in proc.log().splitlines():
            if "Started server process" in line:
                pids.add(line)
        assert len(pids) == 2, proc.log()
        assert proc.side_get("/readyz").status_code == 200
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(15) == 0, proc.log()
        assert "worker exited with" not in proc.log()  # each worker ended cleanly too
    finally:
        proc.stop()


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webhook.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_usage_errors_exit_2(tmp_path: Path) -> None:
    # ports of their own: a busy default port would be the error reported
    no_certs = _serve("--no-cluster", "--port", "0", "--metrics-port", "0")
    assert no_certs.returncode == 2
    assert "--cert/--key, --self-signed or --manage-certs" in no_certs.stderr
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("policies: {require-resources: {action: maybe}}\n")
    broken = _serve(
        "--self-signed", "--cert-dir", str(tmp_path), "--config", str(bad_config),
        "--port", "0", "--metrics-port", "0",
    )  # fmt: skip
    assert broken.returncode == 2
    assert "policies.require-resources.action" in broken.stderr


def test_webhooks_remove_needs_a_name() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "webhook.cli", "webhooks", "remove"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--validating-webhook" in out.stderr


def test_self_signed_files_and_sans(tmp_path: Path) -> None:
    proc = start_process(tmp_path)
    try:
        for name in ("ca.crt", "tls.crt", "tls.key"):
            assert (proc.cert_dir / name).exists()
        assert oct((proc.cert_dir / "tls.key").stat().st_mode & 0o777) == "0o600"
        # the certificate is valid for 127.0.0.1 as well as localhost
        with httpx.Client(verify=tls_context(proc.cert_dir / "ca.crt")) as client:
            resp = client.get(f"https://127.0.0.1:{proc.port}/policies")
            assert resp.status_code == 200
    finally:
        proc.stop()
