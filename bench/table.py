"""The benches' measure / value / target table, printed as text."""

from __future__ import annotations


def print_measures(rows: list[tuple[str, str, str]], value_width: int = 10) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>{value_width}}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>{value_width}}  {target}")
