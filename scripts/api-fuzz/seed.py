"""Seeds a gym that every route of the API can reach; prints shell assignments.

Usage: seed.py BASE_URL GYMAPI_BINARY (AUTH_JWT_SECRET etc. in the environment).
"""

import datetime
import json
import subprocess
import sys
import urllib.request

BASE, BIN = sys.argv[1], sys.argv[2]


def token(sub):
    return subprocess.run([BIN, "token", "--sub", sub], check=True, capture_output=True, text=True).stdout.strip()


def call(method, path, tok, body=None, gym=None):
    req = urllib.request.Request(BASE + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", f"Bearer {tok}")
    req.add_header("Content-Type", "application/json")
    if gym is not None:
        req.add_header("X-Gym-ID", str(gym))
    with urllib.request.urlopen(req) as res:
        return json.loads(res.read() or b"null")


def at(minutes):
    t = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=minutes)
    return t.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


owner = token("api-fuzz-owner")
member_token = token("api-fuzz-member")
gym = call("POST", "/api/v1/gyms", owner, {"name": "Fuzz Gym"})["id"]
member = call("GET", "/api/v1/users/me", member_token)["id"]
call("POST", "/api/v1/members", owner, {"user_id": member, "role": "member"}, gym)
klass = call("POST", "/api/v1/schedule/classes", owner, {"name": "Spin", "duration_minutes": 45, "max_capacity": 20}, gym)["id"]
soon = call("POST", "/api/v1/schedule/sessions", owner, {"class_id": klass, "start_time": at(5)}, gym)["id"]
later = call("POST", "/api/v1/schedule/sessions", owner, {"class_id": klass, "start_time": at(24 * 60)}, gym)["id"]
call("POST", f"/api/v1/schedule/sessions/{later}/register", member_token, gym=gym)
event = call("POST", "/api/v1/events", owner, {"title": "Open day", "start_time": at(60), "end_time": at(120)}, gym)["id"]
print(f"FUZZ_OWNER_TOKEN={owner}")
print(f"FUZZ_MEMBER_TOKEN={member_token}")
print(f"FUZZ_GYM={gym} FUZZ_CLASS={klass} FUZZ_SESSION={later} FUZZ_SOON={soon} FUZZ_EVENT={event} FUZZ_MEMBER={member}")
