"""Engine and `podgate check` throughput. Prints JSON; not a test.

    python bench/engine_bench.py [--objects 2000] [--manifests 10000] [--runs 5]

Figures are medians over several runs, with a baseline measured in the same
run (the machine is shared and noisy, so ratios are what to compare). The
engine figures are CPU time of this process (time.process_time), which other
load on the machine does not inflate the way it inflates wall time:

* engine: microseconds per object for evaluate() with all five policies and
  both mutations, on a generated mix of Pods and Deployments. Two baselines:
  one deep copy of the same object with marshal (the reference every earlier
  figure was given against), and a floor: the least work any engine bound
  by #2's contract must do for that object (see `floor`).
* check: manifests per second for the whole offline pipeline (read files,
  split, parse YAML, evaluate, render JSON) over 10,000 generated manifests;
  the parse share is the time of parsing alone over the pipeline's time.
"""

from __future__ import annotations

import argparse
import json
import marshal
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from policies.config import load_config
from policies.copies import deep_copy
from policies.engine import evaluate
from policies.images import parse_image
from policies.model import NetworkPolicyInfo, StaticContext
from policies.quantity import parse_quantity
from webhook.cli.check import Report, bulk_gc, check_documents
from webhook.cli.inputs import read_inputs
from webhook.cli.report import to_json

DIGEST = "sha256:" + "5e" * 32
LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def container(rng: random.Random, name: str) -> dict[str, Any]:
    c: dict[str, Any] = {"name": name, "image": rng.choice([f"nginx@{DIGEST}", "nginx:1.27"])}
    if rng.random() < 0.6:
        c["resources"] = {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "1Gi"},
        }
    if rng.random() < 0.6:
        c["livenessProbe"] = {"httpGet": {"path": "/healthz", "port": 8080}}
        c["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": 8080}}
    if rng.random() < 0.5:
        c["securityContext"] = {"runAsNonRoot": True, "allowPrivilegeEscalation": False}
    c["ports"] = [{"containerPort": 8080, "name": "http"}]
    c["env"] = [{"name": f"VAR_{i}", "value": str(i)} for i in range(rng.randint(0, 6))]
    return c


def pod_spec(rng: random.Random) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [container(rng, f"c{i}") for i in range(rng.randint(1, 3))],
    }
    if rng.random() < 0.3:
        spec["initContainers"] = [container(rng, "init")]
    if rng.random() < 0.5:
        spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001}
    return spec


def generate(count: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    objects: list[dict[str, Any]] = []
    for i in range(count):
        labels = {"app": f"app-{i % 50}", "tier": rng.choice(["front", "back"])}
        metadata = {"name": f"obj-{i}", "namespace": f"ns-{i % 10}", "labels": labels}
        if i % 2:
            objects.append(
                {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec(rng)}
            )
        else:
            objects.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": metadata,
                    "spec": {
                        "replicas": 2,
                        "selector": {"matchLabels": labels},
                        "template": {"metadata": {"labels": labels}, "spec": pod_spec(rng)},
                    },
                }
            )
    return objects


def context() -> StaticContext:
    policies = tuple(
        NetworkPolicyInfo(
            f"ns-{n}", f"np-{k}", {"matchLabels": {"app": f"app-{k}"}}, frozenset({"Ingress"})
        )
        for n in range(10)
        for k in range(0, 50, 2)
    )
    return StaticContext(policies=policies)


def marshal_copy(obj: dict[str, Any]) -> Any:
    """The baseline of every earlier figure: one deep copy of the object."""
    return marshal.loads(marshal.dumps(obj, 2))


POD_LISTS = ("containers", "initContainers", "ephemeralContainers")


def floor(obj: dict[str, Any], ctx: StaticContext) -> int:
    """A lower bound for evaluate() on this object, not an engine.

    Only what the contract makes every engine do, each part in its cheapest
    form: copy the pod spec for the mutations (podgate's fastest correct
    copy) and compare the copy with the original (one C-level `==`, which any
    diff must at least do); read each field the five policies read, once,
    parsing the quantities and the image reference as they must be checked;
    match the pod's labels against the NetworkPolicies of its namespace.
    No messages, results, isolation, time budgets or mutation writes.
    """
    template = obj["spec"]["template"] if obj["kind"] == "Deployment" else obj
    spec = template["spec"]
    copied = deep_copy(spec)
    found = int(copied == spec)
    pod_context = spec.get("securityContext") or {}
    for key in POD_LISTS:
        for container in spec.get(key) or ():
            resources = container.get("resources") or {}
            for section in ("requests", "limits"):
                for value in (resources.get(section) or {}).values():
                    parse_quantity(value)
                    found += 1
            found += "livenessProbe" in container and "readinessProbe" in container
            own = container.get("securityContext") or {}
            found += own.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True
            found += own.get("runAsUser", pod_context.get("runAsUser")) != 0
            found += parse_image(container.get("image", "")).pinned
    labels = template["metadata"].get("labels") or {}
    for netpol in ctx.network_policies(obj["metadata"]["namespace"]):
        selector = netpol.selector
        found += not isinstance(selector, Exception) and selector.matches(labels)
    return found


def per_object_us(objects: list[dict[str, Any]], fn: Callable[[dict[str, Any]], object]) -> float:
    """CPU time of this process per object: on a shared machine, wall time also
    counts the time other processes held the core."""
    start = time.process_time()
    for obj in objects:
        fn(obj)
    return (time.process_time() - start) / len(objects) * 1e6


def bench_engine(count: int, runs: int) -> dict[str, Any]:
    """Both paths, the validating path alone and the two baselines, measured
    in turns within each run, so that a slow spell of the shared machine
    weighs on all of them alike; ratios are taken within each run."""
    objects = generate(count)
    config, ctx = load_config(), context()
    per_object_us(objects, lambda o: evaluate(o, ctx, config))  # warm caches
    engine: list[float] = []
    validate: list[float] = []
    copy: list[float] = []
    least: list[float] = []
    for _ in range(runs):
        engine.append(per_object_us(objects, lambda o: evaluate(o, ctx, config)))
        validate.append(per_object_us(objects, lambda o: evaluate(o, ctx, config, mutate=False)))
        copy.append(per_object_us(objects, marshal_copy))
        least.append(per_object_us(objects, lambda o: floor(o, ctx)))
    ratios = [e / c for e, c in zip(engine, copy, strict=True)]
    over_floor = [e / f for e, f in zip(engine, least, strict=True)]
    return {
        "objects": count,
        "runs": runs,
        "engine_us_per_object_median": round(statistics.median(engine), 1),
        "engine_us_per_object_min": round(min(engine), 1),
        "validate_only_us_per_object_median": round(statistics.median(validate), 1),
        "baseline_deep_copy_us_per_object_median": round(statistics.median(copy), 1),
        "engine_over_copy_ratio_median": round(statistics.median(ratios), 2),
        "floor_us_per_object_median": round(statistics.median(least), 1),
        "engine_over_floor_ratio_median": round(statistics.median(over_floor), 2),
        "target_us_per_object": 50,
    }


def write_manifests(folder: Path, count: int, per_file: int = 100) -> None:
    objects = generate(count, seed=11)
    for start in range(0, count, per_file):
        chunk = objects[start : start + per_file]
        text = yaml.safe_dump_all(chunk, sort_keys=False)
        (folder / f"m{start // per_file:04d}.yaml").write_text(text)


def bench_check(count: int, runs: int) -> dict[str, Any]:
    """The offline pipeline, phase by phase, in CPU time of this process; and the
    CLI end to end in wall time (interpreter start-up and imports included)."""
    config = load_config()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_manifests(folder, count)

        def pipeline() -> tuple[float, float, float]:
            with bulk_gc():  # as `podgate check` runs
                start = time.process_time()
                inputs = read_inputs([str(folder)])
                parsed = time.process_time()
                checked = check_documents(inputs.documents, config)
                evaluated = time.process_time()
                to_json(Report(checked, inputs.unreadable), config)
                return parsed - start, evaluated - parsed, time.process_time() - evaluated

        pipeline()
        phases = [pipeline() for _ in range(runs)]
        totals = [sum(p) for p in phases]
        cli = []
        for _ in range(max(1, runs // 2)):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "webhook.cli", "check", "-o", "json", str(folder)],
                stdout=subprocess.DEVNULL,
                check=False,
            )
            cli.append(time.perf_counter() - start)
    median = statistics.median(totals)
    return {
        "manifests": count,
        "runs": runs,
        "yaml_parser": f"{LOADER.__name__} + podgate's constructor",
        "in_process_manifests_per_s_median": round(count / median),
        "cli_manifests_per_s_median_wall": round(count / statistics.median(cli)),
        "us_per_manifest": {
            "read_and_parse": round(statistics.median(p[0] for p in phases) / count * 1e6, 1),
            "evaluate": round(statistics.median(p[1] for p in phases) / count * 1e6, 1),
            "render_json": round(statistics.median(p[2] for p in phases) / count * 1e6, 1),
        },
        "parse_share_of_pipeline": round(statistics.median(p[0] for p in phases) / median, 2),
        "target_manifests_per_s": 1500,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--manifests", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(
        json.dumps(
            {
                "engine": bench_engine(args.objects, args.runs),
                "check": bench_check(args.manifests, args.runs),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
