"""Benchmark plan and apply of a 50-model template on a converged Lago emulator.

Generates one metric with 50 models x 2 token types and one package plan with
a price for each of the 100 combinations, applies it to a fresh in-process
emulator, then measures on the converged instance:

- ``plan``: read Lago and compute the diff (what ``tokbill-sync plan`` does);
- ``apply`` (no-op): plan, then apply nothing, since nothing differs;
- ``apply`` (1 price): change one of the 100 prices and apply it.

For each: the requests made, by method and resource, and the median wall
time over the repetitions. Run: ``.venv/bin/python scripts/bench_sync.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tokbill.emulator import EmulatorServer
from tokbill.lago import LagoClient
from tokbill.sync import ApplyResult, Plan, apply_plan, make_plan, read_state
from tokbill.template import TemplateSet, load_templates

MODELS = 50


def template_text(models: int, bump: int | None = None) -> str:
    """The template: ``models`` x input/output prices; ``bump`` raises one."""
    names = [f"model-{i:02d}" for i in range(models)]
    lines = [
        "version: 1",
        "billable_metrics:",
        "  - code: llm_tokens",
        "    name: LLM tokens",
        "    aggregation_type: sum_agg",
        "    field_name: tokens",
        "    filters:",
        f"      model: [{', '.join(names)}]",
        "      type: [input, output]",
        "plans:",
        "  - code: bench",
        "    name: Bench",
        "    interval: monthly",
        "    amount_cents: 0",
        "    amount_currency: USD",
        "    pay_in_advance: false",
        "    charges:",
        "      - billable_metric: llm_tokens",
        "        charge_model: package",
        "        package_size: 1000",
        "        free_units: 0",
        "        price_by: [model, type]",
        "        prices:",
    ]
    for index, name in enumerate(names):
        input_price = f"0.{index + 1:03d}" if index != bump else f"0.{index + 1:03d}5"
        lines.append(f'          {name}: {{input: "{input_price}", output: "0.2"}}')
    return "\n".join(lines) + "\n"


def measure(
    server: EmulatorServer, action: Callable[[], object], repeat: int
) -> tuple[Counter[str], float]:
    """Requests of one run (by kind) and the median seconds over ``repeat``."""
    seconds = []
    kinds: Counter[str] = Counter()
    for _ in range(repeat):
        server.requests.reset()
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
        kinds = Counter(_kind(e.method, e.path) for e in server.requests.entries())
    return kinds, statistics.median(seconds)


def _kind(method: str, path: str) -> str:
    # Segments alternate resource and code: /plans/bench/charges/llm_tokens.
    segments = path.removeprefix("/api/v1/").split("/")
    shown = [s if i % 2 == 0 else "{code}" for i, s in enumerate(segments)]
    return f"{method} /{'/'.join(shown)}"


def _plan(client: LagoClient, templates: TemplateSet) -> Plan:
    return make_plan(templates, read_state(client, templates))


def _apply(client: LagoClient, templates: TemplateSet) -> ApplyResult:
    return apply_plan(client, _plan(client, templates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=MODELS)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmulatorServer() as server:
        base, bumped = Path(tmp, "base.yaml"), Path(tmp, "bumped.yaml")
        base.write_text(template_text(args.models))
        bumped.write_text(template_text(args.models, bump=args.models // 2))
        templates, changed = load_templates([base]), load_templates([bumped])
        with LagoClient(server.api_url, "bench") as client:
            rows = [
                (
                    "first apply (creates)",
                    *measure(server, lambda: _apply(client, templates), 1),
                )
            ]
            rows.append(
                (
                    "plan (converged)",
                    *measure(server, lambda: _plan(client, templates), args.repeat),
                )
            )
            rows.append(
                (
                    "apply (converged, no-op)",
                    *measure(server, lambda: _apply(client, templates), args.repeat),
                )
            )
            rows.append(
                (
                    "apply (1 price changed)",
                    *measure(server, lambda: _apply(client, changed), 1),
                )
            )
    _print_table(args.models, rows)


def _print_table(models: int, rows: list[tuple[str, Counter[str], float]]) -> None:
    print(
        f"Template: 1 metric, 1 plan, {models} models x 2 types = "
        f"{models * 2} prices; emulator in-process, real HTTP."
    )
    print(f"{'operation':<26} {'seconds':>8} {'requests':>8} {'writes':>6}  by kind")
    for name, kinds, seconds in rows:
        total = sum(kinds.values())
        write_count = sum(n for k, n in kinds.items() if not k.startswith("GET"))
        detail = ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
        print(f"{name:<26} {seconds:>8.3f} {total:>8} {write_count:>6}  {detail}")


if __name__ == "__main__":
    main()
