"""Hostile pass over plans, passes, the ledger and payment events (issue 21), with
real ids: extreme and malformed values in every field of every pass route, another
gym's ids, signed payment events at the edges of their signature and clock, and
identical writes raced on one pass. Seeds its own gym through the API with tokens it
signs (HS256, the server's AUTH_JWT_SECRET).

Fails on any 5xx, dropped connection or answer outside the contract, and on a ledger
that no longer explains its passes: every pack's `credits_left` must equal the
balance of its last ledger entry and never be below zero, and a payment event
retried at once must grant one pass.

Usage: passes.py BASE_URL SECRET
"""

import concurrent.futures
import hashlib
import hmac
import json
import time

import round3  # its client, token signer and contract checks, and the gym it seeds

request, expect, problems = round3.request, round3.expect, round3.problems
owner, GYM, member = round3.owner, round3.GYM, round3.member

JUNK = [None, True, 0, -1, 1, 2**31, -(2**31) - 1, 2**63, 1.5, "", " ", "\u0000", "x" * 70_000, "😀" * 300,
        [], {}, ["yoga"] * 10_000, "2026-02-30", "0000-01-01", "9999-12-31", "-0001-01-01", "2026-13-01"]
PLAN_FIELDS = ["name", "kind", "credits", "valid_days", "weekly_limit", "categories", "active"]
DATES = ["2026-02-30", "0000-01-01", "9999-12-31", "-0001-01-01", "2026-1-1", "", "2026-12-06T00:00:00Z", None, 5,
         "2026-12-10", "2026-12-09"]


def admin(method, path, body=None, gym=GYM):
    return request(method, path, owner["token"], gym, body)


def sign(secret, body, t=None):
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


# ---------------------------------------------------------------- plans
pack = admin("POST", "/api/v1/plans", {"name": "Pack", "kind": "pack", "credits": 2, "valid_days": 30})
expect("plan", pack[:2], 201)
PLAN = pack[1]["id"]
for field in PLAN_FIELDS:
    for value in JUNK:
        body = {"name": "P", "kind": "pack", "credits": 3, "valid_days": 30, field: value}
        st, out, _ = admin("POST", "/api/v1/plans", body)
        if st not in (201, 400, 413, 422):
            problems.append(f"POST /plans {field}={str(value)[:40]} -> {st}")
        st, out, _ = admin("PATCH", f"/api/v1/plans/{PLAN}", {field: value})
        if st not in (200, 400, 409, 413, 422):
            problems.append(f"PATCH /plans {field}={str(value)[:40]} -> {st}")
for ident in ["0", "-1", "9223372036854775807", "9223372036854775808", "abc", "1.5"]:
    for method in ("GET", "PATCH", "DELETE"):
        st, _, _ = admin(method, f"/api/v1/plans/{ident}", {"name": "x"} if method == "PATCH" else None)
        if st not in (404, 400, 422):
            problems.append(f"{method} /plans/{ident} -> {st}")

# ---------------------------------------------------------------- passes
ana = member()
# The junk above may have changed or retired the plan: sell from a plan of its own.
PLAN = admin("POST", "/api/v1/plans", {"name": "Pack", "kind": "pack", "credits": 2, "valid_days": 30})[1]["id"]
sold = admin("POST", f"/api/v1/members/{ana['id']}/passes", {"plan_id": PLAN})
expect("sell", sold[:2], 201)
PASS = sold[1]["id"]
for value in JUNK + DATES:
    for field in ("plan_id", "starts_on"):
        body = {"plan_id": PLAN, field: value}
        st, _, _ = admin("POST", f"/api/v1/members/{ana['id']}/passes", body)
        if st not in (201, 400, 404, 409, 413, 422):
            problems.append(f"POST passes {field}={str(value)[:40]} -> {st}")
for frm in DATES:
    for until in DATES[-4:]:
        st, _, _ = admin("POST", f"/api/v1/members/{ana['id']}/passes/{PASS}/freeze", {"from": frm, "until": until})
        if st not in (200, 400, 409, 422):
            problems.append(f"freeze {frm}..{until} -> {st}")
for credits in [0, 1, -1, -3, 2**31 - 1, -(2**31), 2**31, 1.5, "1", None, 10_000, -10_000]:
    for reason in ["why", "", " ", "x" * 70_000, None, 5, "\u0000"]:
        st, _, _ = admin("POST", f"/api/v1/members/{ana['id']}/passes/{PASS}/adjust",
                         {"credits": credits, "reason": reason})
        if st not in (200, 400, 409, 413, 422):
            problems.append(f"adjust {credits} {str(reason)[:20]} -> {st}")
# Another gym's member and pass, unknown ids, and the member themself where staff is asked.
other_owner = round3.user(f"{round3.RUN}-passes-other")
st, other_gym, _ = request("POST", "/api/v1/gyms", other_owner["token"], body={"name": "Other passes"})
OTHER = other_gym["id"]
for path in [f"/api/v1/members/{ana['id']}/passes", f"/api/v1/members/{ana['id']}/ledger"]:
    expect(f"GET {path} from another gym", request("GET", path, other_owner["token"], OTHER)[:2], 404)
for path in [f"/api/v1/members/{ana['id']}/passes/{PASS}/cancel", f"/api/v1/members/{ana['id']}/passes/{PASS}/adjust"]:
    st, _, _ = request("POST", path, other_owner["token"], OTHER, {"credits": 1, "reason": "x"})
    if st not in (403, 404):
        problems.append(f"POST {path} from another gym -> {st}")
for ident in ["0", "-1", "9223372036854775807", "9223372036854775808", "abc"]:
    for path in [f"/api/v1/members/{ident}/passes", f"/api/v1/members/{ana['id']}/passes/{ident}/freeze",
                 f"/api/v1/members/{ident}/ledger?limit=0", f"/api/v1/members/{ana['id']}/passes/{ident}/adjust"]:
        method = "GET" if "freeze" not in path and "adjust" not in path else "POST"
        st, _, _ = admin(method, path, {"credits": 1, "reason": "x", "from": "2026-12-10", "until": "2026-12-11"})
        if st not in (400, 404, 422):
            problems.append(f"{method} {path} -> {st}")
expect("member sells", request("POST", f"/api/v1/members/{ana['id']}/passes", ana["token"], GYM,
                               {"plan_id": PLAN})[:2], 403)
for q in ["from=2026-01-01&to=2025-01-01", "from=0000-01-01&to=9999-12-31", "from=abc", "to=2026-02-30", "",
          "from=2026-01-01&to=2026-12-31&from=2026-02-01"]:
    st, _, _ = admin("GET", f"/api/v1/reports/passes?{q}")
    if st not in (200, 400, 422):
        problems.append(f"reports/passes?{q} -> {st}")

# Adjustments raced on one pass of 2 credits: each acknowledged one counts once, and
# one that would leave fewer than none is refused (422, as documented).
fresh = admin("POST", f"/api/v1/members/{ana['id']}/passes", {"plan_id": PLAN})[1]
moves = [-1] * 8 + [1] * 8
with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
    raced = list(pool.map(lambda c: admin("POST", f"/api/v1/members/{ana['id']}/passes/{fresh['id']}/adjust",
                                          {"credits": c, "reason": "race"})[0], moves))
if any(st not in (200, 422) for st in raced) or any(st != 200 for st, c in zip(raced, moves) if c > 0):
    problems.append(f"raced adjustments -> {raced}")
expected = 2 + sum(c for st, c in zip(raced, moves) if st == 200)
after = [p for p in admin("GET", f"/api/v1/members/{ana['id']}/passes?limit=500")[1] if p["id"] == fresh["id"]]
if [p["credits_left"] for p in after] != [expected]:
    problems.append(f"after the race the pass holds {after}, the acknowledged adjustments {expected}")

# ---------------------------------------------------------------- payment events
secret = admin("POST", "/api/v1/integrations/payments")[1]["secret"]
event = json.dumps({"event_id": f"{round3.RUN}-pay", "user_id": ana["id"], "plan_id": PLAN}).encode()
path = f"/api/v1/integrations/payments/{GYM}/events"
signed = [("X-GymAPI-Signature", sign(secret, event))]
with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
    granted = list(pool.map(lambda _: request("POST", path, body=event, headers=signed)[0], range(20)))
if any(st not in (200, 201) for st in granted) or granted.count(201) > 1:
    problems.append(f"a payment event retried at once -> {granted}")
for header in [sign(secret, event, int(time.time()) - 330), sign(secret, event, int(time.time()) + 330),
               sign("wrong", event), "t=abc,v1=00", "", "t=1", "v1=" + "0" * 64, "t=99999999999999999999,v1=00",
               sign(secret, event).replace("v1=", "v1=0"), "t=" + str(int(time.time())) + ",v1=" + "é" * 64]:
    st, _, _ = request("POST", path, body=event, headers=[("X-GymAPI-Signature", header)])
    if st != 401:
        problems.append(f"payment event signed {header[:40]!r} -> {st}")
for body in [b"{", b"[]", b"null", json.dumps({"event_id": "", "user_id": ana["id"], "plan_id": PLAN}).encode(),
             json.dumps({"event_id": "x" * 70_000, "user_id": ana["id"], "plan_id": PLAN}).encode(),
             json.dumps({"event_id": "e", "user_id": 2**63, "plan_id": PLAN}).encode(),
             json.dumps({"event_id": "e2", "user_id": other_owner["id"], "plan_id": PLAN}).encode(),
             json.dumps({"event_id": "e3", "user_id": ana["id"], "plan_id": -1}).encode()]:
    st, _, _ = request("POST", path, body=body, headers=[("X-GymAPI-Signature", sign(secret, body))])
    if st not in (400, 404, 413, 422):
        problems.append(f"payment event {body[:40]!r} -> {st}")
for gym in ["0", "-1", "abc", str(OTHER), "9223372036854775808"]:
    st, _, _ = request("POST", f"/api/v1/integrations/payments/{gym}/events", body=event, headers=signed)
    if st not in (400, 401, 404, 422):
        problems.append(f"payment event for gym {gym} -> {st}")

# ---------------------------------------------------------------- bookings that take credits
for value in JUNK:
    for field in ("booking_requires_pass", "cancel_cutoff_minutes"):
        st, _, _ = admin("PATCH", "/api/v1/gyms/current", {field: value})
        if st not in (200, 400, 413, 422):
            problems.append(f"PATCH /gyms/current {field}={str(value)[:40]} -> {st}")
expect("require passes", admin("PATCH", "/api/v1/gyms/current",
                               {"booking_requires_pass": True, "cancel_cutoff_minutes": 0})[:2], 200)
one_credit = admin("POST", "/api/v1/plans", {"name": "One", "kind": "pack", "credits": 1, "valid_days": 30})[1]["id"]
bob = member()
bobs = admin("POST", f"/api/v1/members/{bob['id']}/passes", {"plan_id": one_credit})[1]
sid = round3.session(120)
reg = f"/api/v1/schedule/sessions/{sid}/register"
for q in ["dry_run=maybe", "dry_run=1", "dry_run=", "dry_run=TRUE", "dry_run=true&dry_run=false", "dry_run=%00"]:
    st, _, _ = request("POST", f"{reg}?{q}", bob["token"], GYM)
    if st not in (200, 400, 422):
        problems.append(f"register?{q} -> {st}")
with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
    booked = list(pool.map(lambda _: request("POST", reg, bob["token"], GYM)[0], range(16)))
    if booked.count(201) != 1 or any(st not in (201, 409) for st in booked):
        problems.append(f"one member booking at once 16 times -> {booked}")
    left = list(pool.map(lambda _: request("DELETE", reg, bob["token"], GYM)[0], range(16)))
    if left.count(204) != 1 or any(st not in (204, 404, 409) for st in left):
        problems.append(f"one member cancelling at once 16 times -> {left}")
kinds = [e["kind"] for e in request("GET", f"/api/v1/members/{bob['id']}/ledger", bob["token"], GYM)[1]
         if e["pass_id"] == bobs["id"]]
if sorted(kinds) != ["grant", "refund", "use"]:
    problems.append(f"a booking raced and cancelled raced left the ledger {kinds}")

# The same walk-in scanned 16 times at once: one check-in, one credit.
qr = request("GET", "/api/v1/attendance/my-qr", bob["token"], GYM)[1]["qr_code"]
door = round3.session(5)
scan = {"qr_code": qr, "session_id": door}
with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
    scans = list(pool.map(lambda _: admin("POST", "/api/v1/attendance/check-in", scan)[:2], range(16)))
codes = sorted(str((st, (out or {}).get("code"))) for st, out in scans)
if [st for st, _ in scans].count(200) != 1 or any(st != 200 and (out or {}).get("code") != "already_checked_in"
                                                    for st, out in scans):
    problems.append(f"one walk-in scanned 16 times at once -> {codes}")
uses = [e for e in request("GET", f"/api/v1/members/{bob['id']}/ledger", bob["token"], GYM)[1]
        if e["pass_id"] == bobs["id"] and e["kind"] == "use"]
if len(uses) != 2:
    problems.append(f"a booking and a walk-in took {len(uses)} credits")
later = {"qr_code": qr, "session_id": round3.session(6)}
expect("a walk-in without credits left", admin("POST", "/api/v1/attendance/check-in", later)[:2], 400, "no_valid_pass")

# ---------------------------------------------------------------- the ledger explains every pass
st, passes, _ = admin("GET", f"/api/v1/members/{ana['id']}/passes?limit=500")
st2, ledger, _ = admin("GET", f"/api/v1/members/{ana['id']}/ledger?limit=500")
if st != 200 or st2 != 200:
    problems.append(f"passes {st}, ledger {st2}")
else:
    for p in passes:
        if p["kind"] != "pack":
            continue
        entries = sorted((e for e in ledger if e["pass_id"] == p["id"]), key=lambda e: e["seq"])
        if not entries or entries[-1]["balance"] != p["credits_left"] or p["credits_left"] < 0:
            problems.append(f"pass {p['id']}: credits_left {p['credits_left']}, ledger {entries[-1:]}")
        if sum(e["credits"] for e in entries) != p["credits_left"]:
            problems.append(f"pass {p['id']}: its entries sum to {sum(e['credits'] for e in entries)}")
    if sum(1 for p in passes if p["plan_id"] == PLAN) < 3:
        problems.append(f"expected the seeded passes and the paid one, got {len(passes)}")

round3.report("passes")
