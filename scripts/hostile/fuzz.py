"""A hostile pass over every documented route: junk and extreme values in every
path id, query parameter, header and body field, wrong JSON shapes, another gym's
ids, and bursts of identical concurrent requests. Counts answers by status and
fails on any 5xx, dropped connection or non-JSON error body.

Usage: fuzz.py BASE_URL OWNER_TOKEN GYM OTHER_GYM OTHER_SESSION [SEED]
"""

import collections
import concurrent.futures
import http.client
import json
import os
import random
import sys
import urllib.parse

BASE, TOKEN, GYM, OTHER_GYM, OTHER_SESSION = sys.argv[1:6]
rng = random.Random(int(sys.argv[6]) if len(sys.argv) > 6 else 1)
url = urllib.parse.urlparse(BASE)

JUNK_SCALARS = [None, True, False, 0, -1, 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0,
                1e308, "", " ", "\u0000", "x" * 70_000, "é" * 300, "😀" * 100, "0", "-1", "1e3", "null",
                "9999-12-31T23:59:59-01:00", "0000-01-01T00:00:00Z", "2026-02-30T00:00:00Z", "U1_00000000",
                "member", "owner", "admin", "'; DROP TABLE users; --", "<script>", [], {}, [None, None], {"a": [1]},
                "Europe/Madrid", "../../etc/passwd", "24:00", "09:00", "2026-13-01", "2026-02-01", [1, 3], [0, 8],
                [1] * 10_000, 10_080, 8_760]
JUNK_IDS = ["0", "-1", "1", "9223372036854775807", "9223372036854775808", "-9223372036854775809", "abc", "1.5",
            "%00", "%F0%9F%98%80", "1e3", "0x10", "+1", "%20", "99999999999999999999999999", OTHER_SESSION]
JUNK_QUERY = ["", "skip=-1", "limit=0", "limit=501", "skip=abc", "limit=1e3", "skip=9223372036854775807",
              "skip=99999999999999999999", "start_date=0000-01-01", "start_date=9999-12-31&end_date=9999-12-31",
              "end_date=-0001-01-01", "start_date=2026-01-01&end_date=2027-01-01", "role=king", "role=",
              "start_date=%00", "limit=%F0%9F%98%80", "skip=1&skip=2", "a=" + "b" * 5000,
              "tz=gym", "tz=utc", "tz=Europe/Madrid", "tz=", "tz=gym&tz=utc", "tz=%00",
              "from=0000-01-01", "to=9999-12-31", "from=2026-01-01&to=2025-01-01", "from=%00", "from=2026-02-30",
              "after=-1", "after=abc", "after=99999999999999999999", "after=9223372036854775807", "after=0"]
GYM_HEADERS = [GYM, OTHER_GYM, "0", "-1", "+1", "1 2", "abc", "1.5", "1e3", "0x10", "", "9" * 30, GYM + "\t"]
AUTHS = [f"Bearer {TOKEN}", "Bearer", "Bearer " + "a" * 100_000, "Basic dXNlcjpwYXNz", "bearer " + TOKEN,
         "Bearer a.b.c", "Bearer " + TOKEN[:-2], ""]
LANGS = ["es", "es-ES,es;q=0.9", "en", "*", "", "x" * 500, ";;;,,,"]

ROUTES = [
    ("GET", "/api/v1/users/me"), ("PATCH", "/api/v1/users/me"), ("GET", "/api/v1/users/me/gyms"),
    ("POST", "/api/v1/gyms"), ("GET", "/api/v1/gyms/current"), ("GET", "/api/v1/members"),
    ("POST", "/api/v1/members"), ("PATCH", "/api/v1/members/{id}"), ("DELETE", "/api/v1/members/{id}"),
    ("GET", "/api/v1/users/{id}"), ("GET", "/api/v1/schedule/classes"), ("POST", "/api/v1/schedule/classes"),
    ("GET", "/api/v1/schedule/classes/{id}"), ("PATCH", "/api/v1/schedule/classes/{id}"),
    ("DELETE", "/api/v1/schedule/classes/{id}"), ("GET", "/api/v1/schedule/sessions"),
    ("POST", "/api/v1/schedule/sessions"), ("GET", "/api/v1/schedule/sessions/{id}"),
    ("POST", "/api/v1/schedule/sessions/{id}/cancel"), ("POST", "/api/v1/schedule/sessions/{id}/register"),
    ("DELETE", "/api/v1/schedule/sessions/{id}/register"), ("GET", "/api/v1/schedule/sessions/{id}/participants"),
    ("GET", "/api/v1/events"), ("POST", "/api/v1/events"), ("GET", "/api/v1/events/{id}"),
    ("PATCH", "/api/v1/events/{id}"), ("DELETE", "/api/v1/events/{id}"), ("GET", "/api/v1/attendance/my-qr"),
    ("POST", "/api/v1/attendance/my-qr/rotate"), ("POST", "/api/v1/attendance/check-in"),
    ("GET", "/api/v1/attendance/me/last"), ("GET", "/api/v1/attendance/me/history"),
    ("GET", "/api/v1/users/me/dashboard-summary"), ("GET", "/health"), ("GET", "/ready"), ("GET", "/metrics"),
    ("GET", "/openapi.json"), ("GET", "/docs"),
    # Issue 19.
    ("PATCH", "/api/v1/gyms/current"), ("GET", "/api/v1/schedule/sessions/{id}/waitlist"),
    ("GET", "/api/v1/schedule/classes/{id}/recurrences"), ("POST", "/api/v1/schedule/classes/{id}/recurrences"),
    ("DELETE", "/api/v1/schedule/classes/{id}/recurrences/{id}"), ("GET", "/api/v1/attendance/calendar"),
    ("POST", "/api/v1/attendance/calendar/rotate"), ("GET", "/api/v1/attendance/refusals"),
    ("GET", "/api/v1/changes"), ("GET", "/api/v1/reports/classes"), ("GET", "/api/v1/reports/members/{id}"),
    ("GET", "/api/v1/gyms/current/occupancy"), ("GET", "/api/v1/calendar/{id}.ics"), ("GET", "/api/v1/calendar/{id}"),
    # Issue 20.
    ("POST", "/api/v1/webhooks"), ("GET", "/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/{id}"), ("GET", "/api/v1/webhooks/{id}/deliveries"),
    ("POST", "/api/v1/webhooks/{id}/deliveries/{id}/replay"), ("POST", "/api/v1/webhooks/{id}/rotate-secret"),
    # Issue 21.
    ("POST", "/api/v1/plans"), ("GET", "/api/v1/plans"), ("GET", "/api/v1/plans/{id}"), ("PATCH", "/api/v1/plans/{id}"),
    ("DELETE", "/api/v1/plans/{id}"), ("POST", "/api/v1/members/{id}/passes"), ("GET", "/api/v1/members/{id}/passes"),
    ("POST", "/api/v1/members/{id}/passes/{id}/freeze"), ("POST", "/api/v1/members/{id}/passes/{id}/cancel"),
    ("POST", "/api/v1/members/{id}/passes/{id}/adjust"), ("GET", "/api/v1/members/{id}/ledger"),
    ("POST", "/api/v1/integrations/payments"), ("POST", "/api/v1/integrations/payments/{id}/events"),
    ("GET", "/api/v1/reports/passes"),
]
FIELDS = ["name", "phone", "timezone", "address", "user_id", "role", "description", "duration_minutes",
          "max_capacity", "category", "instructor_id", "active", "class_id", "start_time", "end_time", "trainer_id",
          "room", "title", "location", "max_participants", "qr_code", "session_id",
          # Issue 19.
          "booking_opens_hours", "booking_closes_minutes", "waitlist_cutoff_minutes", "max_waitlists_per_member",
          "waitlist", "weekdays", "local_start_time", "starts_on", "until",
          # Issue 20.
          "qr_mode", "url", "events",
          # Issue 21.
          "kind", "credits", "valid_days", "weekly_limit", "categories", "plan_id", "from", "reason", "event_id",
          "booking_requires_pass", "cancel_cutoff_minutes"]

# Idempotency-Key values (issue 19): repeated ones (replays and reuse for other
# requests), quoted, at and past the length bound, blank, control and Latin-1 bytes.
KEYS = ["k1", "k1", "k2", "\"k1\"", "", " ", "\"\"", "x" * 255, "x" * 256, "a\tb", "caf\xe9", "\"a\"b\"",
        "k" * 4000]

# During a database outage drill, 503 database_unavailable is the contract's answer.
ALLOW_503 = os.environ.get("ALLOW_503") == "1"
stats = collections.Counter()
problems = []


def body():
    shape = rng.random()
    if shape < 0.1:
        return json.dumps(rng.choice(JUNK_SCALARS)).encode()
    if shape < 0.15:
        return rng.choice([b"{not json", b"", b"\xff\xfe", b"[" * 5000, b'{"a":' * 3000])
    obj = {f: rng.choice(JUNK_SCALARS) for f in rng.sample(FIELDS, rng.randint(0, 8))}
    return json.dumps(obj).encode()


def one(method, path, headers, payload):
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.request(method, path, body=payload, headers=headers)
        res = conn.getresponse()
        data = res.read()
    except Exception as e:  # noqa: BLE001 - every failure to answer is a finding
        return ("dropped", f"{method} {path[:200]}: {e!r}")
    finally:
        conn.close()
    if res.status == 503 and ALLOW_503 and b'"database_unavailable"' in data:
        return (res.status, None)
    if res.status >= 500:
        return (res.status, f"{method} {path[:200]} -> {res.status} {data[:200]!r}")
    # A HEAD answer has no body by definition (RFC 9110).
    if method != "HEAD" and (res.status >= 400 and path.startswith("/api/") or res.status in (404, 405, 413)):
        try:
            parsed = json.loads(data)
            assert isinstance(parsed.get("detail"), str) and isinstance(parsed.get("code"), str)
        except Exception:  # noqa: BLE001
            return (res.status, f"{method} {path[:200]} -> {res.status} non-contract body {data[:200]!r}")
    return (res.status, None)


def case():
    method, template = rng.choice(ROUTES)
    path = template.replace("{id}", rng.choice(JUNK_IDS))
    if rng.random() < 0.6:
        path += "?" + "&".join(rng.sample(JUNK_QUERY, rng.randint(1, 3)))
    headers = {"Authorization": rng.choice(AUTHS) if rng.random() < 0.3 else f"Bearer {TOKEN}"}
    if rng.random() < 0.9:
        headers["X-Gym-ID"] = rng.choice(GYM_HEADERS) if rng.random() < 0.4 else GYM
    if rng.random() < 0.3:
        headers["Accept-Language"] = rng.choice(LANGS)
    if rng.random() < 0.2:
        headers["Content-Type"] = rng.choice(["text/plain", "application/xml", "application/json; charset=latin1", ""])
    if rng.random() < 0.3:
        headers["Idempotency-Key"] = rng.choice(KEYS) if rng.random() < 0.7 else f"fuzz-{rng.randint(0, 50)}"
    if rng.random() < 0.05:
        method = rng.choice(["PUT", "OPTIONS", "HEAD", "FROB", "TRACE"])
    payload = body() if method in ("POST", "PATCH", "DELETE", "PUT") or rng.random() < 0.1 else None
    return method, path, headers, payload


cases = [case() for _ in range(int(sys.argv[7]) if len(sys.argv) > 7 else 3000)]
with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
    for status, problem in pool.map(lambda c: one(*c), cases):
        stats[status] += 1
        if problem:
            problems.append(problem)
    # Bursts of identical concurrent requests.
    for method, template in ROUTES:
        path = template.replace("{id}", rng.choice(JUNK_IDS[:4]))
        payload = body() if method != "GET" else None
        burst = [(method, path, {"Authorization": f"Bearer {TOKEN}", "X-Gym-ID": GYM}, payload)] * 16
        # The same burst with one key: the work once, every other answer replayed or 409.
        keyed = {"Authorization": f"Bearer {TOKEN}", "X-Gym-ID": GYM, "Idempotency-Key": f"burst-{method}-{path}"[:255]}
        burst += [(method, path, keyed, payload)] * 16
        for status, problem in pool.map(lambda c: one(*c), burst):
            stats[status] += 1
            if problem:
                problems.append(problem)

total = sum(stats.values())
print(f"hostile pass: {total} requests; by status: {dict(sorted(stats.items(), key=lambda kv: str(kv[0])))}")
for p in problems[:30]:
    print("PROBLEM:", p)
print(f"5xx or dropped or off-contract: {len(problems)}")
sys.exit(1 if problems else 0)
