"""Times each list route on its first page and on a deep page; prints a table.

Usage: measure.py BASE_URL TOKEN LABEL. Each figure is the median and 95th
percentile of N sequential requests on one keep-alive connection; deep pages vary
their `skip` per request, so the cached lists (classes, events) are read from the
database like the others.
"""

import datetime
import http.client
import statistics
import sys
import time
import urllib.parse

BASE, TOKEN, LABEL = sys.argv[1], sys.argv[2], sys.argv[3]
N = 60
url = urllib.parse.urlparse(BASE)
conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
today = datetime.date.today()
window = f"start_date={today - datetime.timedelta(days=31)}&end_date={today + datetime.timedelta(days=31)}"

ROUTES = [
    # (name, path, first-page query, deep skip base)
    ("GET /members (6,000 members)", "/api/v1/members", "", 5800),
    ("GET /schedule/classes (20)", "/api/v1/schedule/classes", "", 0),
    ("GET /schedule/sessions (62 days, ~248)", "/api/v1/schedule/sessions", window, 180),
    ("GET /events (62 days, ~25)", "/api/v1/events", window, 0),
    ("GET /schedule/sessions/2/participants (~930)", "/api/v1/schedule/sessions/2/participants", "", 850),
    ("GET /attendance/me/history (1,200)", "/api/v1/attendance/me/history", "", 1100),
]


def get(path):
    conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}", "X-Gym-ID": "1"})
    start = time.perf_counter()
    res = conn.getresponse()
    body = res.read()
    elapsed = (time.perf_counter() - start) * 1000
    if res.status != 200:
        raise SystemExit(f"{path}: {res.status} {body[:200]!r}")
    return elapsed


def sample(make_path):
    get(make_path(0))  # warm the connection and any plan cache
    times = sorted(get(make_path(k)) for k in range(N))
    return statistics.median(times), times[int(len(times) * 0.95) - 1]


print(f"\n{LABEL}: median / p95 ms over {N} requests, limit=100")
print(f"{'route':48} {'first page':>16} {'deep page':>16}")
for name, path, query, deep in ROUTES:
    sep = "&" if query else ""
    first = sample(lambda k, p=path, q=query: f"{p}?{q}{sep}limit=100&skip={k % 2}")
    deep_fig = sample(lambda k, p=path, q=query, d=deep: f"{p}?{q}{sep}limit=100&skip={d + k % 40}")
    print(f"{name:48} {first[0]:7.2f} / {first[1]:6.2f} {deep_fig[0]:7.2f} / {deep_fig[1]:6.2f}")
