"""SQL that seeds the large-data list benchmark; prints it for psql or sqlite3.

Usage: seed.py postgres|sqlite. The shape: 300,000 users in 50 gyms (gym 1 has
6,000 members, its owner is user 1 with auth0_id 'bench|1'), 20 classes and 2,000
sessions per gym over 500 days (300 past), 10 participations per user (attended
in the past, registered ahead) = 3,000,000, plus a deep history for user 1 (1,200
attendances) and one crowded session (session 2, ~930 participants), 200 events
per gym.
"""

import sys

USERS, GYMS, BIG_GYM_MEMBERS = 300_000, 50, 6_000
CLASSES, SESSIONS, EVENTS = 20, 2_000, 200
PER_USER = 10

backend = sys.argv[1]
pg = backend == "postgres"


def series(n, name="i"):
    """Rows 1..n named `name`."""
    if pg:
        return f"generate_series(1, {n}) AS s({name})"
    return f"(WITH RECURSIVE s({name}) AS (SELECT 1 UNION ALL SELECT {name} + 1 FROM s WHERE {name} < {n}) SELECT {name} FROM s) AS s"


def minutes_from_now(expr):
    """A timestamp `expr` minutes from now, as each backend stores it."""
    if pg:
        return f"(date_trunc('second', now()) + ({expr}) * interval '1 minute')"
    return f"strftime('%Y-%m-%dT%H:%M:%SZ', 'now', ({expr}) || ' minutes')"


NOW = minutes_from_now("0")
USER_ID = "(CAST(i AS BIGINT) * 7919 + 1000)"  # unique, below 2^53, not sequential
GYM_OF = f"(CASE WHEN i <= {BIG_GYM_MEMBERS} THEN 1 ELSE 2 + (i % {GYMS - 1}) END)"
# Session k (0-based) of gym g starts 6 h after session k-1, the first 300 days ago.
START = f"{minutes_from_now(f'(k - 1) * 360 - 300 * 1440')}"

print("BEGIN;")
print(f"INSERT INTO users (id, auth0_id, email, name, qr_secret, created_at, updated_at) "
      f"SELECT {USER_ID}, 'bench|' || i, 'u' || i || '@bench.test', 'User ' || i, '0000000' || (i % 10), {NOW}, {NOW} FROM {series(USERS)};")
print(f"INSERT INTO gyms (id, name, timezone, address, created_at) SELECT i, 'Gym ' || i, 'UTC', NULL, {NOW} FROM {series(GYMS)};")
print(f"INSERT INTO memberships (gym_id, user_id, role, joined_at) "
      f"SELECT {GYM_OF}, {USER_ID}, CASE WHEN i = 1 THEN 'owner' ELSE 'member' END, {NOW} FROM {series(USERS)};")
print(f"INSERT INTO classes (id, gym_id, name, description, duration_minutes, max_capacity, category, instructor_id, active, created_at) "
      f"SELECT i, (i - 1) / {CLASSES} + 1, 'Class ' || i, NULL, 60, 1000, NULL, NULL, TRUE, {NOW} FROM {series(GYMS * CLASSES)};")
# Session id (g - 1) * SESSIONS + k, k in 1..SESSIONS.
print(f"INSERT INTO sessions (id, gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, registered_count, created_at) "
      f"SELECT i, g, (g - 1) * {CLASSES} + ((k - 1) % {CLASSES}) + 1, {START}, {minutes_from_now(f'(k - 1) * 360 - 300 * 1440 + 60')}, "
      f"'scheduled', NULL, NULL, 1000, 0, {NOW} "
      f"FROM (SELECT i, (i - 1) / {SESSIONS} + 1 AS g, (i - 1) % {SESSIONS} + 1 AS k FROM {series(GYMS * SESSIONS)}) AS t;")
print(f"INSERT INTO events (gym_id, title, description, start_time, end_time, location, max_participants, created_by, created_at) "
      f"SELECT g, 'Event ' || i, NULL, {minutes_from_now('(k - 1) * 3600 - 300 * 1440')}, {minutes_from_now('(k - 1) * 3600 - 300 * 1440 + 120')}, NULL, NULL, NULL, {NOW} "
      f"FROM (SELECT i, (i - 1) / {EVENTS} + 1 AS g, (i - 1) % {EVENTS} + 1 AS k FROM {series(GYMS * EVENTS)}) AS t;")
# Ten participations per user (user 1 gets its own history below).
print(f"INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at) "
      f"SELECT u.g, s.id, u.uid, CASE WHEN s.start_time < {NOW} THEN 'attended' ELSE 'registered' END, "
      f"CASE WHEN s.start_time < {NOW} THEN s.start_time ELSE NULL END, {NOW} "
      f"FROM (SELECT {USER_ID} AS uid, {GYM_OF} AS g, i, j FROM {series(USERS)} CROSS JOIN {series(PER_USER, 'j').replace('AS s(j)', 'AS t(j)').replace(') AS s', ') AS t')} WHERE i > 1) AS u "
      f"JOIN sessions s ON s.id = (u.g - 1) * {SESSIONS} + ((u.i * {PER_USER} + u.j) % {SESSIONS}) + 1;")
print(f"INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at) "
      f"SELECT 1, s.id, 8919, 'attended', s.start_time, {NOW} FROM sessions s WHERE s.gym_id = 1 AND s.id <= 1200;")
print(f"INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at) "
      f"SELECT 1, 2, {USER_ID}, 'attended', (SELECT start_time FROM sessions WHERE id = 2), {NOW} FROM {series(BIG_GYM_MEMBERS)} "
      f"WHERE i BETWEEN 2 AND 901 ON CONFLICT (gym_id, session_id, member_id) DO NOTHING;")
print("UPDATE sessions SET registered_count = (SELECT COUNT(*) FROM participations p "
      "WHERE p.session_id = sessions.id AND p.status IN ('registered', 'attended'));")
if pg:
    print("SELECT setval(pg_get_serial_sequence('gyms', 'id'), (SELECT MAX(id) FROM gyms));")
    print("SELECT setval(pg_get_serial_sequence('classes', 'id'), (SELECT MAX(id) FROM classes));")
    print("SELECT setval(pg_get_serial_sequence('sessions', 'id'), (SELECT MAX(id) FROM sessions));")
print("COMMIT;")
print("ANALYZE;")
