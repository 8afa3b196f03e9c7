"""The small variant of `make bench`'s cold-import measure: every handler imports on its own, laid out as
Lambda lays it out (the function folder plus the layer's library), so the measure cannot rot."""

from __future__ import annotations

from bench import cold_import


def test_every_function_imports_standalone_and_is_measured() -> None:
    result = cold_import.run(runs=1)
    assert result["floor_ms"] > 0
    assert {name: result[name]["ms"] > 0 for name in cold_import.FUNCTIONS} == dict.fromkeys(
        cold_import.FUNCTIONS, True
    )
