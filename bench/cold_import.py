"""Cold import of every function's handler, against the boto3 floor, in one interleaved run.

A function is imported the way Lambda does it: a fresh interpreter with the handler folder and the
layer's library on the path. Everything above the floor (`import boto3`, which every function pays) is
what the function's own imports cost, so a cross-context import (the Stripe SDK in the commands API,
Powertools on the ingest path) shows up as a number.
"""

from __future__ import annotations

from typing import Any

from bench.measure import fresh_interpreter_ms, median

FUNCTIONS = (
    "ingest",
    "processor",
    "read_api",
    "commands_api",
    "gateway",
    "backfill",
    "catchup",
    "signals",
    "retrain",
    "rescore",
    "reconcile",
    "dunning",
    "dunning_start",
    "register",
)
FLOOR = "import boto3"


def handler_import(name: str) -> str:
    return f"import sys; sys.path[:0] = ['layers/core', 'functions/{name}']\nimport handler"


def run(runs: int = 7) -> dict[str, Any]:
    codes = {"floor": FLOOR, **{name: handler_import(name) for name in FUNCTIONS}}
    times: dict[str, list[float]] = {name: [] for name in codes}
    for _ in range(runs):  # interleaved, so machine noise hits every function alike
        for name, code in codes.items():
            times[name] += fresh_interpreter_ms(code, 1)
    floor = median(times["floor"])
    result: dict[str, Any] = {"floor_ms": round(floor, 1), "runs": runs}
    for name in FUNCTIONS:
        ours = median(times[name])
        result[name] = {
            "ms": round(ours, 1),
            "over_floor_ms": round(ours - floor, 1),
            "over_floor_ratio": round(ours / floor, 3),
        }
    return result
