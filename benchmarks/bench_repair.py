"""Output repair side by side on tests/data/repair_corpus.jsonl: ours, json_repair alone, and MemGPT's clean_json.

Each parser gets every raw output of the corpus and is scored against what it should give: a call, "refuse", or
"truncated" (the output was cut off inside the call; no call may be returned, ours raises TruncatedOutputError):

- recovered: the right function with exactly the right arguments (inner thoughts aside);
- wrong call: a returned call that differs from the corpus expectation: not the expected call, or any call where the
  right answer is to refuse or to report a cut. Split into calls to an offered function (the agent would run them)
  and calls to a name the prompt never offered;
- refused: an error. For ours, the cut-off outputs are also checked to raise TruncatedOutputError carrying the
  expected partial call (name, complete arguments, inner thoughts).

"json_repair alone" parses the text with ``json_repair.loads`` and takes ``["function"]`` and ``["params"]`` as they
are. MemGPT's ``clean_json`` (pymemgpt 0.3.25, ``memgpt/local_llm/json_parser.py``) is read the same way, as MemGPT's
own Airoboros wrapper reads it. pymemgpt lives in its own virtualenv, ``.bench/repair/venv``, installed with
``--no-deps`` (created on first run); its parser module is loaded from its file with the two tiny core modules it
imports, because importing the ``memgpt`` package pulls in its whole server stack.

Timing: median of repeated parses of three 2 KB outputs (valid; closing braces cut; single-quoted).

    .venv/bin/python benchmarks/bench_repair.py
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
VENV = ROOT / ".bench" / "repair" / "venv"
PYMEMGPT = "pymemgpt==0.3.25"
TIMING_RUNS = 500

# Runs inside the pymemgpt virtualenv: load json_parser.py alone, parse every text, time the typical outputs.
CLEAN_JSON_DRIVER = r"""
import importlib.util, json, statistics, sys, time, types

root = importlib.util.find_spec("memgpt").submodule_search_locations[0]

def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module

package = types.ModuleType("memgpt")
package.__path__ = [root]
sys.modules["memgpt"] = package
load("memgpt.constants", root + "/constants.py")
load("memgpt.errors", root + "/errors.py")
utils = types.ModuleType("memgpt.utils")
utils.printd = lambda *args, **kwargs: None  # pymemgpt's printd prints only in its debug mode
sys.modules["memgpt.utils"] = utils
parser = load("memgpt.local_llm.json_parser", root + "/local_llm/json_parser.py")

job = json.load(sys.stdin)
results = []
for raw in job["corpus"]:
    try:
        results.append({"ok": parser.clean_json(raw)})
    except Exception as exc:
        results.append({"error": type(exc).__name__})
timings = {}
for label, raw in job["timing"].items():
    spent = []
    for _ in range(job["runs"]):
        start = time.perf_counter()
        try:
            parser.clean_json(raw)
        except Exception:
            pass
        spent.append(time.perf_counter() - start)
    timings[label] = statistics.median(spent)
json.dump({"results": results, "timings": timings, "file": parser.__file__}, sys.stdout, default=repr)
"""


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--venv", type=Path, default=VENV, help="virtualenv with pymemgpt (created if missing)")
    options.add_argument("--shapes", action="store_true", help="also print right answers per failure shape")
    args = options.parse_args()

    functions = json.loads((DATA / "repair_functions.json").read_text())
    corpus = [json.loads(line) for line in (DATA / "repair_corpus.jsonl").read_text().splitlines() if line.strip()]
    timing_texts = typical_outputs()

    columns: dict[str, list[Any]] = {}
    timings: dict[str, dict[str, float]] = {}
    columns["ours"], timings["ours"], cut_reports = run_ours(corpus, functions, timing_texts)
    columns["json_repair alone"], timings["json_repair alone"] = run_json_repair(corpus, timing_texts)
    columns["MemGPT clean_json"], timings["MemGPT clean_json"] = run_clean_json(corpus, timing_texts, args.venv)

    offered = {fn["name"] for fn in functions}
    readable = sum(isinstance(c["expect"], dict) for c in corpus)
    cut = sum(c["expect"] == "truncated" for c in corpus)
    refusals = len(corpus) - readable
    print(
        f"corpus: {len(corpus)} outputs, {readable} with an honest reading, {refusals} to refuse "
        f"({cut} of them cut off inside the call)\n"
    )
    print(
        "| parser | recovered | wrong calls | wrong call (offered function) | wrong call (name never offered) "
        "| correct refusals |"
    )
    print("|---|---|---|---|---|---|")
    per_shape: dict[str, Counter[str]] = {}
    for label, outcomes in columns.items():
        score = Counter()
        for case, outcome in zip(corpus, outcomes, strict=True):
            verdict = judge(case, outcome, offered)
            score[verdict] += 1
            per_shape.setdefault(case["shape"], Counter())[label] += verdict in ("recovered", "refused-right")
        wrong = score["wrong-offered"] + score["wrong-unknown"]
        print(
            f"| {label} | {score['recovered']}/{readable} ({100 * score['recovered'] / readable:.0f}%) | {wrong} "
            f"| {score['wrong-offered']} | {score['wrong-unknown']} | {score['refused-right']}/{refusals} |"
        )
    print(
        f"\nours, the {cut} cut-off outputs: {cut_reports['truncated']} raised TruncatedOutputError, "
        f"{cut_reports['partial']} of them with exactly the expected partial call"
    )
    print("\n| median parse time, 2 KB output | " + " | ".join(timing_texts) + " |")
    print("|---|" + "---|" * len(timing_texts))
    for label, medians in timings.items():
        print(f"| {label} | " + " | ".join(f"{medians[k] * 1000:.3f} ms" for k in timing_texts) + " |")
    print("\n| pathological 1 MB input | ours |\n|---|---|")
    for label, seconds in pathological_times(functions).items():
        print(f"| {label} | {seconds * 1000:.0f} ms |")
    if args.shapes:
        print("\nright answers (the expected call, or a refusal where one is due) per shape:\n")
        print("| shape | cases | " + " | ".join(columns) + " |")
        print("|---|---|" + "---|" * len(columns))
        sizes = Counter(c["shape"] for c in corpus)
        for shape in sorted(per_shape):
            row = " | ".join(str(per_shape[shape][label]) for label in columns)
            print(f"| {shape} | {sizes[shape]} | {row} |")


def judge(case: dict[str, Any], outcome: Any, offered: set[str]) -> str:
    """recovered, refused-right, refused-wrong (missed a readable call), wrong-offered or wrong-unknown."""
    expect = case["expect"]
    if outcome is None:
        return "refused-wrong" if isinstance(expect, dict) else "refused-right"
    name, arguments = outcome
    if isinstance(expect, dict) and (name, arguments) == (expect["name"], expect["arguments"]):
        return "recovered"
    names = offered if case.get("functions") != [] else {name}
    return "wrong-offered" if name in names else "wrong-unknown"


def naive_call(obj: Any) -> tuple[str, dict[str, Any]] | None:
    """Read a parsed object the way MemGPT's wrappers did: obj["function"], obj["params"], thoughts popped."""
    if not isinstance(obj, dict) or not isinstance(obj.get("function"), str) or not isinstance(obj.get("params"), dict):
        return None
    params = dict(obj["params"])
    params.pop("inner_thoughts", None)
    return obj["function"], params


def run_ours(corpus, functions, timing_texts):
    from memgpt_core.errors import ParseError, TruncatedOutputError
    from memgpt_core.repair import parse_function_call

    outcomes = []
    cut_reports: Counter[str] = Counter()
    for case in corpus:
        try:
            call = parse_function_call(case["raw"], case.get("functions", functions))
            outcomes.append((call.name, call.arguments))
        except TruncatedOutputError as exc:
            outcomes.append(None)
            if case["expect"] == "truncated":
                cut_reports["truncated"] += 1
                partial = case["partial"]
                got = (exc.name, exc.arguments, exc.inner_thoughts)
                cut_reports["partial"] += got == (partial["name"], partial["arguments"], partial["inner_thoughts"])
        except ParseError:
            outcomes.append(None)
    medians = {k: median_time(lambda t=t: attempt(parse_function_call, t, functions)) for k, t in timing_texts.items()}
    return outcomes, medians, cut_reports


def run_json_repair(corpus, timing_texts):
    import json_repair

    outcomes = []
    for case in corpus:
        try:
            outcomes.append(naive_call(json_repair.loads(case["raw"])))
        except Exception:  # json_repair alone: whatever it raises is a refusal
            outcomes.append(None)
    medians = {k: median_time(lambda t=t: attempt(json_repair.loads, t)) for k, t in timing_texts.items()}
    return outcomes, medians


def run_clean_json(corpus, timing_texts, venv: Path):
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"setting up {venv} with {PYMEMGPT} (--no-deps) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", PYMEMGPT], check=True)
    job = {"corpus": [c["raw"] for c in corpus], "timing": timing_texts, "runs": TIMING_RUNS}
    done = subprocess.run(
        [str(python), "-c", CLEAN_JSON_DRIVER], input=json.dumps(job), capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.exit(f"running MemGPT's clean_json in {venv} failed:\n{done.stderr}")
    answer = json.loads(done.stdout)
    print(f"MemGPT clean_json loaded from {answer['file']}", file=sys.stderr)
    outcomes = [naive_call(r["ok"]) if "ok" in r else None for r in answer["results"]]
    return outcomes, answer["timings"]


def attempt(parse, *args) -> None:
    with contextlib.suppress(Exception):  # a refusal takes time too; it is timed the same way
        parse(*args)


def median_time(run) -> float:
    spent = []
    for _ in range(TIMING_RUNS):
        start = time.perf_counter()
        run()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent)


def pathological_times(functions) -> dict[str, float]:
    """Time of one parse of 1 MB inputs built to hit the slow corners of tolerant parsing (bounded-time check)."""
    from memgpt_core.repair import parse_function_call

    size = 1 << 20
    head = '{"function": "send_message", "params": {"message": "'
    rng = random.Random(4)
    inputs = {
        "opening braces": "{" * size,
        "opening brackets after a call head": head[:41] + "[" * size,
        "double quotes": '"' * size,
        "an unclosed string": head + "x" * size,
        "quote-comma pairs in a string": head + '", ' * (size // 3),
        "markdown-escaped underscores": "\\_" * (size // 2),
        "escaped backslashes before underscores": "\\\\\\_" * (size // 4),
        "unclosed block comments": '{"a": 1 ' + "/*" * (size // 2),
        "repeated call heads": '{"function": ' * (size // 13),
        "random JSON punctuation": "".join(rng.choice("{}[]\",:' \\/#*`ab1\n") for _ in range(size)),
    }
    times = {}
    for label, raw in inputs.items():
        start = time.perf_counter()
        attempt(parse_function_call, raw, functions)
        times[label] = time.perf_counter() - start
    return times


def typical_outputs() -> dict[str, str]:
    """Three 2 KB answers as a model writes them: valid, closing braces cut, and single-quoted."""
    message = ("I remember you told me about the trip to the mountains last spring, and the lake by the hut. " * 30)[
        :1850
    ]
    valid = json.dumps(
        {
            "function": "send_message",
            "params": {"inner_thoughts": "The user is back; recall the trip.", "message": message},
        },
        indent=2,
    )
    return {"valid": valid, "braces cut": valid[:-4], "single quotes": valid.replace('"', "'")}


if __name__ == "__main__":
    main()
