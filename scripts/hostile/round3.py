"""Hostile pass, round three (issue 16): request framing, content encodings, repeated
headers, token claims at the limits of their types, and every writing route raced
against the removal of the member it concerns. Seeds its own gym through the API
with tokens it signs (HS256, the server's AUTH_JWT_SECRET).

Counts answers by status; fails on any 5xx, dropped connection, answer outside the
contract, or an invariant broken after a race (a removed member holding a place, a
session whose registered_count is not its rows).

Usage: round3.py BASE_URL SECRET [ROUNDS]
"""

import base64
import collections
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import random
import socket
import sys
import time
import urllib.parse

BASE, SECRET = sys.argv[1], sys.argv[2].encode()
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
url = urllib.parse.urlparse(BASE)
rng = random.Random(3)
stats = collections.Counter()
problems = []


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(claims, header=None):
    head = b64(json.dumps(header or {"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(SECRET, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def token(sub, **extra):
    claims = {"sub": sub, "exp": int(time.time()) + 3600, "scope": "resource:read resource:write"}
    claims.update(extra)
    return sign(claims)


def request(method, path, tok=None, gym=None, body=None, headers=()):
    """One request; headers may repeat. Returns (status, json or None, headers)."""
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        if tok is not None:
            conn.putheader("Authorization", f"Bearer {tok}")
        if gym is not None:
            conn.putheader("X-Gym-ID", str(gym))
        for k, v in headers:
            conn.putheader(k, v)
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        res = conn.getresponse()
        raw = res.read()
        hdrs = {k.lower(): v for k, v in res.getheaders()}
    except Exception as e:  # noqa: BLE001 - a dropped answer is a finding
        stats["dropped"] += 1
        problems.append(f"{method} {path}: dropped {e!r}")
        return None, None, {}
    finally:
        conn.close()
    stats[res.status] += 1
    parsed = None
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        pass
    check(f"{method} {path}", res.status, parsed, hdrs, raw)
    return res.status, parsed, hdrs


def check(what, status, parsed, hdrs, raw=b""):
    if status >= 500:
        problems.append(f"{what} -> {status} {raw[:200]!r}")
    if status >= 400:
        if not (isinstance(parsed, dict) and isinstance(parsed.get("detail"), str) and isinstance(parsed.get("code"), str)):
            problems.append(f"{what} -> {status} off-contract body {raw[:200]!r}")
        if "x-request-id" not in hdrs:
            problems.append(f"{what} -> {status} without X-Request-ID")


def expect(what, got, status, code=None):
    if got[0] != status or (code and (got[1] or {}).get("code") != code):
        problems.append(f"{what}: expected {status} {code or ''}, got {got[0]} {got[1]}")


# ---------------------------------------------------------------- seeding
def user(sub):
    tok = token(sub)
    st, me, _ = request("GET", "/api/v1/users/me", tok)
    assert st == 200, (st, me)
    return {"id": me["id"], "token": tok}


RUN = f"r3-{int(time.time())}-{rng.randrange(1 << 30)}"
owner = user(f"{RUN}-owner")
st, gym, _ = request("POST", "/api/v1/gyms", owner["token"], body={"name": "Round three"})
assert st == 201, (st, gym)
GYM = gym["id"]


def member(role="member"):
    u = user(f"{RUN}-{role}-{rng.randrange(1 << 40)}")
    expect("add member", request("POST", "/api/v1/members", owner["token"], GYM, {"user_id": u["id"], "role": role})[:2], 201)
    return u


st, klass, _ = request("POST", "/api/v1/schedule/classes", owner["token"], GYM,
                       {"name": "Race", "duration_minutes": 30, "max_capacity": 1000})
CLASS = klass["id"]


def session(minutes_from_now):
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + minutes_from_now * 60))
    st, s, _ = request("POST", "/api/v1/schedule/sessions", owner["token"], GYM, {"class_id": CLASS, "start_time": start})
    assert st == 201, (st, s)
    return s["id"]


# ---------------------------------------------------------------- framing
def raw_exchange(data, half_close=False):
    s = socket.create_connection((url.hostname, url.port), timeout=10)
    try:
        try:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except OSError:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)
    finally:
        s.close()


def first_response(raw):
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return None, None, {}
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", len(rest)))
    try:
        parsed = json.loads(rest[:n]) if n else None
    except ValueError:
        parsed = None
    return status, parsed, hdrs


def framing():
    tok = owner["token"]
    head = (f"POST /api/v1/schedule/classes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
            f"X-Gym-ID: {GYM}\r\nContent-Type: application/json\r\n")
    chunked = head + "Transfer-Encoding: chunked\r\n\r\n"
    ok_body = b'{"name": "Framed", "duration_minutes": 30, "max_capacity": 5}'
    cases = [
        # (request bytes, half-close, statuses the contract allows)
        ((chunked + "zz\r\n{}\r\n0\r\n\r\n").encode(), False, {400}),
        ((chunked + "-5\r\n{}\r\n0\r\n\r\n").encode(), False, {400}),
        ((chunked + "ffffffffffffffffffff\r\n{}\r\n0\r\n\r\n").encode(), False, {400, 413}),
        ((chunked + "3\r\n{}xyz\r\n0\r\n\r\n").encode(), False, {400}),
        ((chunked + "2\r\n{}").encode(), True, {400}),
        ((chunked).encode() + b"%x\r\n" % len(ok_body) + ok_body + b"\r\n0\r\n\r\n", False, {201}),
        ((chunked).encode() + b"%x;ext=1\r\n" % len(ok_body) + ok_body + b"\r\n0\r\nX-Trailer: 1\r\n\r\n", False, {201}),
        ((head + "Content-Length: 100\r\n\r\n").encode() + b'{"name": ', True, {400}),
        ((head + "Content-Length: 5\r\n\r\n").encode() + b'{"name": "x"}', False, {422}),
        ((head + "Content-Length: 99999999999999999999\r\n\r\n").encode(), True, {400, 413}),
        ((head + "Content-Length: 10\r\nContent-Length: 11\r\n\r\n").encode() + b"{}", True, {400}),
        ((head + "Transfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n").encode() + b"{}", True, {400}),
        ((head + "Transfer-Encoding: gzip, chunked\r\n\r\n").encode() + b"2\r\n{}\r\n0\r\n\r\n", False, {400, 415, 501}),
    ]
    for data, half, allowed in cases:
        for _ in range(3):
            status, parsed, hdrs = first_response(raw_exchange(data, half))
            stats[status] += 1
            what = f"framing {data[-40:]!r}"
            if status not in allowed:
                problems.append(f"{what}: {status} not in {allowed}: {parsed}")
            # Requests our code answers are in the contract's form; actix's own
            # refusals of a malformed head (empty 400) are documented in the README.
            if status and status >= 400 and parsed is not None:
                check(what, status, parsed, hdrs)


# ---------------------------------------------------------------- encodings
def zstd_bomb(n):
    frame = bytearray(b"\x28\xb5\x2f\xfd\x00\x38")
    blocks = (n - len(frame)) // 4
    for i in range(blocks):
        h = (128 * 1024) << 3 | 1 << 1 | (1 if i + 1 == blocks else 0)
        frame += h.to_bytes(4, "little")[:3] + b" "
    return bytes(frame)


def encodings():
    import gzip
    import zlib
    plain = json.dumps({"name": "Encoded"}).encode()
    bodies = {
        "gzip": gzip.compress(b" " * 50_000_000, 9),
        "deflate": zlib.compress(b" " * 50_000_000, 9),
        "zstd": zstd_bomb(16 * 1024),
        "br": b"\x1b" * 64,
        "GZIP": gzip.compress(plain),
        "identity, gzip": gzip.compress(plain),
        "compress": plain,
        "x-made-up": plain,
        "": plain,
        "identity": plain,
        "Identity": plain,
    }
    u = user(f"{RUN}-encoder")
    for enc, body in bodies.items():
        for _ in range(3):
            got = request("POST", "/api/v1/gyms", u["token"], body=body, headers=[("Content-Encoding", enc)])
            want = 201 if enc.strip().lower() in ("", "identity") else 415
            expect(f"Content-Encoding {enc!r}", got[:2], want, None if want == 201 else "unsupported_content_encoding")


# ---------------------------------------------------------------- repeated headers
def repeated_headers():
    m = member()
    tok = m["token"]
    cases = [
        ([("Authorization", f"Bearer {tok}"), ("Authorization", f"Bearer {tok}")], GYM, 401, "invalid_token"),
        ([("Authorization", f"Bearer {tok}"), ("Authorization", "Bearer junk")], GYM, 401, "invalid_token"),
        ([("Authorization", f"Bearer {tok}"), ("Authorization", "")], GYM, 401, "invalid_token"),
        ([("Authorization", f"Bearer {tok}"), ("X-Gym-ID", str(GYM))], GYM, 400, "invalid_gym_id"),
        ([("Authorization", f"Bearer {tok}"), ("X-Gym-ID", "1")], GYM, 400, "invalid_gym_id"),
        ([("Authorization", f"Bearer {tok}"), ("X-Gym-ID", "")], GYM, 400, "invalid_gym_id"),
        ([("Authorization", f"Bearer {tok}"), ("Accept-Language", "es"), ("Accept-Language", "en")], GYM, 200, None),
        ([("Authorization", f"Bearer {tok}"), ("X-Request-ID", "a"), ("X-Request-ID", "b")], GYM, 200, None),
    ]
    for hdrs, gym, status, code in cases:
        for method, path in [("GET", "/api/v1/gyms/current"), ("POST", "/api/v1/schedule/sessions/1/register")]:
            if status == 200 and method == "POST":
                continue
            got = request(method, path, None, gym, None, hdrs)
            expect(f"{method} {path} with {[k for k, _ in hdrs]}", got[:2], status, code)


# ---------------------------------------------------------------- claims at their limits
def claims():
    now = int(time.time())
    valid = [2**64 - 1, 2**64 - 30, 2**64 - 31, 2**63, 2**63 - 1, 2**53 + 1, now + 60]
    invalid = [0, 1, now - 3600, -1, -(2**63), 2**64, 10**30, 1.5e19, "9999999999", None, [], {}, True, 1e308]
    for exp in valid:
        t = sign({"sub": f"{RUN}-exp-{exp}", "exp": exp})
        answers = [request("GET", "/api/v1/users/me", t)[0] for _ in range(3)]
        if answers != [200] * 3:
            problems.append(f"exp {exp}: {answers}, want 200 every time")
    for exp in invalid:
        t = sign({"sub": f"{RUN}-exp-bad", "exp": exp})
        answers = [request("GET", "/api/v1/users/me", t)[0] for _ in range(3)]
        if answers != [401] * 3:
            problems.append(f"exp {exp!r}: {answers}, want 401 every time")
    for nbf, want in [(2**64 - 1, 401), (2**63, 401), (now + 3600, 401), (0, 200), (now - 10, 200), (-1, 401),
                      ("x", 401), (1e308, 401)]:
        t = sign({"sub": f"{RUN}-nbf", "exp": now + 600, "nbf": nbf})
        answers = [request("GET", "/api/v1/users/me", t)[0] for _ in range(3)]
        if answers != [want] * 3:
            problems.append(f"nbf {nbf!r}: {answers}, want {want} every time")
    for extra in [{"sub": "x" * 20_000}, {"sub": ""}, {"sub": 5}, {"sub": None}, {"scope": 5}, {"permissions": "x"},
                  {"permissions": [1, 2]}, {"email": "\u0000"}, {"name": ["a"]}, {"iat": 2**64}, {"aud": 2**64}]:
        t = sign({"sub": f"{RUN}-claim", "exp": now + 600, **extra})
        answers = [request("GET", "/api/v1/users/me", t)[0] for _ in range(3)]
        if len(set(answers)) != 1 or answers[0] not in (200, 401):
            problems.append(f"claims {list(extra)}: {answers}")


# ---------------------------------------------------------------- writes raced against a removal
def participants(sid):
    st, rows, _ = request("GET", f"/api/v1/schedule/sessions/{sid}/participants?limit=500", owner["token"], GYM)
    return rows if st == 200 else []


def invariants(sid, removed):
    rows = participants(sid)
    holding = [r for r in rows if r["member_id"] == removed and r["status"] in ("registered", "attended")]
    st, s, _ = request("GET", f"/api/v1/schedule/sessions/{sid}", owner["token"], GYM)
    counted = sum(1 for r in rows if r["status"] in ("registered", "attended"))
    if holding and any(r["status"] == "registered" for r in holding):
        problems.append(f"session {sid}: removed member {removed} still holds a place: {holding}")
    if st == 200 and s["registered_count"] != counted:
        problems.append(f"session {sid}: registered_count {s['registered_count']} but {counted} rows hold places")


def races():
    soon = session(5)
    for round_ in range(ROUNDS):
        later = session(24 * 60 + round_)
        victim = member(rng.choice(["member", "trainer"]))
        st, qr, _ = request("GET", "/api/v1/attendance/my-qr", victim["token"], GYM)
        if round_ % 2:
            request("POST", f"/api/v1/schedule/sessions/{later}/register", victim["token"], GYM)
        writes = [
            ("POST", f"/api/v1/schedule/sessions/{later}/register", victim["token"], None),
            ("DELETE", f"/api/v1/schedule/sessions/{later}/register", victim["token"], None),
            ("POST", "/api/v1/attendance/check-in", owner["token"], {"qr_code": qr["qr_code"], "session_id": soon}),
            ("POST", "/api/v1/attendance/check-in", owner["token"], {"qr_code": qr["qr_code"]}),
            ("POST", "/api/v1/attendance/my-qr/rotate", victim["token"], None),
            ("PATCH", "/api/v1/users/me", victim["token"], {"name": "Racer"}),
            ("PATCH", f"/api/v1/members/{victim['id']}", owner["token"], {"role": "trainer"}),
            ("POST", "/api/v1/schedule/classes", owner["token"],
             {"name": "Taught", "duration_minutes": 30, "max_capacity": 5, "instructor_id": victim["id"]}),
            ("POST", "/api/v1/schedule/sessions", owner["token"],
             {"class_id": CLASS, "start_time": "2030-01-01T10:00:00Z", "trainer_id": victim["id"]}),
        ]
        method, path, tok, body = writes[round_ % len(writes)]
        removal = ("DELETE", f"/api/v1/members/{victim['id']}", owner["token"], None)
        if round_ % 3 == 0:
            removal = ("DELETE", f"/api/v1/members/{victim['id']}", victim["token"], None)  # leaving
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futs = [pool.submit(request, m, p, t, GYM, b) for m, p, t, b in [(method, path, tok, body)] * 3 + [removal]]
            answers = [f.result()[:2] for f in futs]
        if answers[-1][0] != 204:
            problems.append(f"round {round_}: removal answered {answers[-1]}")
        for sid in (later, soon):
            invariants(sid, victim["id"])
        st, _, _ = request("GET", f"/api/v1/users/{victim['id']}", owner["token"], GYM)
        if st != 404:
            problems.append(f"round {round_}: removed member {victim['id']} still visible ({st})")


def report(label):
    """Prints the answers by status and the problems, and exits failing on any."""
    print(f"{label}: {sum(stats.values())} requests; by status: {dict(sorted(stats.items(), key=lambda kv: str(kv[0])))}")
    for p in problems[:40]:
        print("PROBLEM:", p)
    print(f"problems: {len(problems)}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":  # passes.py imports the client, the seeded gym and the report only
    for name, step in [("framing", framing), ("encodings", encodings), ("repeated headers", repeated_headers),
                       ("claims", claims), ("races", races)]:
        before = sum(stats.values())
        step()
        print(f"round3 {name}: {sum(stats.values()) - before} requests")
    report("round3")
