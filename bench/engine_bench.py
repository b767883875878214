"""Engine and `podgate check` throughput. Prints JSON; not a test.

    python bench/engine_bench.py [--objects 2000] [--manifests 10000] [--runs 5]

Figures are medians over several runs, with a baseline measured in the same
run (the machine is shared and noisy, so ratios are what to compare). The
engine figures are CPU time of this process (time.process_time), which other
load on the machine does not inflate the way it inflates wall time:

* engine: microseconds per object for evaluate() with all five policies and
  both mutations, on a generated mix of Pods and Deployments; the baseline is
  one deep copy of the same object (the least any mutating engine must do).
* check: manifests per second for the whole offline pipeline (read files,
  split, parse YAML, evaluate, render JSON) over 10,000 generated manifests;
  the parse share is the time of parsing alone over the pipeline's time.
"""

from __future__ import annotations

import argparse
import json
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
from policies.engine import _json_copy, evaluate
from policies.model import NetworkPolicyInfo, StaticContext
from webhook.check import Report, bulk_gc, check_documents
from webhook.manifests import read_inputs
from webhook.report import to_json

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


def per_object_us(objects: list[dict[str, Any]], fn: Callable[[dict[str, Any]], object]) -> float:
    """CPU time of this process per object: on a shared machine, wall time also
    counts the time other processes held the core."""
    start = time.process_time()
    for obj in objects:
        fn(obj)
    return (time.process_time() - start) / len(objects) * 1e6


def bench_engine(count: int, runs: int) -> dict[str, Any]:
    """Both paths, the validating path alone and the baseline copy, measured in
    turns within each run, so that a slow spell of the shared machine weighs
    on all three alike; the ratio to the baseline is taken within each run."""
    objects = generate(count)
    config, ctx = load_config(), context()
    per_object_us(objects, lambda o: evaluate(o, ctx, config))  # warm caches
    engine: list[float] = []
    validate: list[float] = []
    copy: list[float] = []
    for _ in range(runs):
        engine.append(per_object_us(objects, lambda o: evaluate(o, ctx, config)))
        validate.append(per_object_us(objects, lambda o: evaluate(o, ctx, config, mutate=False)))
        copy.append(per_object_us(objects, _json_copy))
    ratios = [e / c for e, c in zip(engine, copy, strict=True)]
    return {
        "objects": count,
        "runs": runs,
        "engine_us_per_object_median": round(statistics.median(engine), 1),
        "engine_us_per_object_min": round(min(engine), 1),
        "validate_only_us_per_object_median": round(statistics.median(validate), 1),
        "baseline_deep_copy_us_per_object_median": round(statistics.median(copy), 1),
        "engine_over_copy_ratio_median": round(statistics.median(ratios), 2),
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
