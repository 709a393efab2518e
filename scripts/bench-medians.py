"""Medians of `make bench` runs: reads the loadtest's ROW lines on stdin, prints one
table row per backend and scenario with the median of each figure and every run's
req/s. Usage: bench-medians.py RUNS < rows."""

import statistics
import sys

COLUMNS = ["req/s", "P50 ms", "P99 ms", "errors", "server µs/req", "PostgreSQL µs/req", "Redis µs/req",
           "generator µs/req", "statements/req", "Redis round trips/req", "check-ins per batch"]

rows = {}
for line in sys.stdin:
    parts = line.rstrip("\n").split("\t")
    if parts[0] != "ROW" or len(parts) != 4 + len(COLUMNS):
        continue
    backend, scenario, commit = parts[1:4]
    rows.setdefault((backend, scenario, commit), []).append(parts[4:])


def median(values):
    numbers = [float(v) for v in values if v != "-"]
    return statistics.median(numbers) if numbers else None


def show(value, column):
    if value is None:
        return "—"
    if column in ("P50 ms", "P99 ms", "statements/req", "Redis round trips/req"):
        return f"{value:.2f}"
    if column == "check-ins per batch":
        return f"{value:.1f}"
    return f"{value:.0f}"


print()
print(f"Medians of {sys.argv[1] if len(sys.argv) > 1 else '?'} runs:")
print("| backend | scenario | commit | " + " | ".join(COLUMNS) + " | req/s of each run |")
print("|---|---|---|" + "---:|" * len(COLUMNS) + "---|")
for (backend, scenario, commit), runs in rows.items():
    figures = [show(median([r[i] for r in runs]), c) for i, c in enumerate(COLUMNS)]
    each = " / ".join(r[0] for r in runs)
    print(f"| {backend} | {scenario} | {commit} | " + " | ".join(figures) + f" | {each} |")
