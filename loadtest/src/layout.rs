//! The data of `make bench`: who and what is seeded, in SQL (`loadtest seed-sql
//! postgres|sqlite`, piped into `psql` or `sqlite3` by `scripts/bench.sh`), and the
//! ids the scenarios derive from it. One place, so the seed and the scenarios agree.
//!
//! - gym 1, *reads*: 64 members and an owner, 6 classes, 5 events, 40 bookable
//!   sessions tomorrow (read mix, bookings of the mixed day);
//! - gyms 2–51, *spread*: 5,000 members each, 6 sessions inside the check-in window,
//!   70 % of the members booked into one of them (the rest walk in);
//! - gym 52, *hot*: 9,000 members and 30 sessions in the window, scanned one session
//!   after another, each a class of 9,000 at the door (270,000 check-ins: a run at
//!   18,000 a second for 15 s never scans a member into a session twice);
//! - gyms 53–62, *named*: 4,000 members and 6 sessions in the window each, scanned
//!   naming the session, every (member, session) pair once.
//!
//! The first member of each gym is its owner, the desk's staff. A user of index `i`
//! has id `USER_BASE + i`, subject `bench|i` and QR code `U{id}_0000000{i % 10}`.

/// Ids of users are this plus their index (distinct from anything the API creates).
pub const USER_BASE: i64 = 5_000_000_000;

/// A group of gyms seeded alike.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    /// The first gym's id.
    pub first_gym: i64,
    /// How many gyms.
    pub gyms: i64,
    /// Members of each gym (its owner included).
    pub members: i64,
    /// Minutes from now at which each gym's sessions in the window start.
    pub window: &'static [i64],
    /// Tenths of the members booked into a session of the window (the rest walk in).
    pub booked_tenths: i64,
    /// Index of the group's first user minus one.
    pub user_base: i64,
}

const SPREAD_WINDOW: &[i64] = &[-10, -6, -2, 2, 6, 10];
const HOT_WINDOW: &[i64] = &[
    -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
];

/// Gym 1: reads and bookings.
pub const READS: Group = Group { first_gym: 1, gyms: 1, members: 65, window: &[], booked_tenths: 0, user_base: 0 };
/// Gyms 2–51: check-ins without `session_id`, 70 % booked.
pub const SPREAD: Group =
    Group { first_gym: 2, gyms: 50, members: 5_000, window: SPREAD_WINDOW, booked_tenths: 7, user_base: 65 };
/// Gym 52: walk-ins into one session at a time.
pub const HOT: Group =
    Group { first_gym: 52, gyms: 1, members: 9_000, window: HOT_WINDOW, booked_tenths: 0, user_base: 250_065 };
/// Gyms 53–62: check-ins naming their session.
pub const NAMED: Group =
    Group { first_gym: 53, gyms: 10, members: 4_000, window: SPREAD_WINDOW, booked_tenths: 0, user_base: 259_065 };

const GROUPS: [Group; 4] = [READS, SPREAD, HOT, NAMED];

/// Bookable sessions of gym 1, tomorrow.
pub const FUTURE_SESSIONS: i64 = 40;

impl Group {
    /// The user index of member `j` (0-based; 0 is the owner) of the group's gym `g`
    /// (0-based).
    pub fn user(&self, g: i64, j: i64) -> i64 {
        self.user_base + g * self.members + j + 1
    }

    /// The id of session `s` (0-based) in the window of gym `g` (0-based).
    pub fn session(&self, g: i64, s: usize) -> i64 {
        session_base(self.first_gym + g) + s as i64 + 1
    }
}

/// Sessions of gym `gym` have ids above this (100 per gym).
fn session_base(gym: i64) -> i64 {
    gym * 100
}

/// A user's id.
pub fn user_id(i: i64) -> i64 {
    USER_BASE + i
}

/// A user's token subject.
pub fn subject(i: i64) -> String {
    format!("bench|{i}")
}

/// A user's QR code.
pub fn qr(i: i64) -> String {
    format!("U{}_0000000{}", user_id(i), i % 10)
}

/// The ids of gym 1's sessions tomorrow.
pub fn future_sessions() -> Vec<i64> {
    (0..FUTURE_SESSIONS).map(|s| session_base(READS.first_gym) + 50 + s + 1).collect()
}

/// Every session of the window of every gym: `(gym, session)`.
pub fn window_sessions() -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for group in GROUPS {
        for g in 0..group.gyms {
            for s in 0..group.window.len() {
                out.push((group.first_gym + g, group.session(g, s)));
            }
        }
    }
    out
}

/// The seed, as SQL for `psql` (`postgres`) or `sqlite3` (`sqlite`), on a migrated
/// empty database.
pub fn seed_sql(postgres: bool) -> String {
    let series = |n: i64| {
        if postgres {
            format!("generate_series(1, {n}) AS s(i)")
        } else {
            format!(
                "(WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s) AS s"
            )
        }
    };
    let minutes = |m: i64| {
        if postgres {
            format!("(date_trunc('second', now()) + ({m}) * interval '1 minute')")
        } else {
            format!("strftime('%Y-%m-%dT%H:%M:%SZ', 'now', '{m} minutes')")
        }
    };
    let now = minutes(0);
    let mut sql = vec!["BEGIN;".to_owned()];
    let users: i64 = GROUPS.iter().map(|g| g.gyms * g.members).sum();
    sql.push(format!(
        "INSERT INTO users (id, auth0_id, email, name, qr_secret, created_at, updated_at) \
         SELECT {USER_BASE} + i, 'bench|' || i, NULL, 'Member ' || i, '0000000' || (i % 10), {now}, {now} FROM {};",
        series(users)
    ));
    let (mut sessions, mut bookings) = (Vec::new(), Vec::new());
    for group in GROUPS {
        let last = group.first_gym + group.gyms - 1;
        sql.push(format!(
            "INSERT INTO gyms (id, name, timezone, address, created_at) \
             SELECT {first} - 1 + i, 'Bench gym ' || ({first} - 1 + i), 'UTC', NULL, {now} FROM {};",
            series(group.gyms),
            first = group.first_gym,
        ));
        // Member k (1-based) of the group is user base + k, in gym first + (k - 1) / members.
        sql.push(format!(
            "INSERT INTO memberships (gym_id, user_id, role, joined_at) \
             SELECT {first} + (i - 1) / {n}, {USER_BASE} + {base} + i, \
             CASE WHEN (i - 1) % {n} = 0 THEN 'owner' ELSE 'member' END, {now} FROM {};",
            series(group.gyms * group.members),
            first = group.first_gym,
            n = group.members,
            base = group.user_base,
        ));
        for gym in group.first_gym..=last {
            sql.push(format!(
                "INSERT INTO classes (id, gym_id, name, description, duration_minutes, max_capacity, category, \
                 instructor_id, active, created_at) VALUES ({gym}, {gym}, 'Door class', NULL, 45, 1000, NULL, NULL, TRUE, {now});"
            ));
            for (s, start) in group.window.iter().enumerate() {
                let id = group.session(gym - group.first_gym, s);
                sessions.push(format!(
                    "({id}, {gym}, {gym}, {}, {}, 'scheduled', NULL, NULL, 10000, 0, {now})",
                    minutes(*start),
                    minutes(start + 45)
                ));
            }
        }
        if group.booked_tenths > 0 {
            // Member j of a gym (0-based, the owner too) is booked when j % 10 is
            // below the tenths, into session j % window.
            bookings.push(format!(
                "INSERT INTO participations (gym_id, session_id, member_id, status, attendance_time, created_at) \
                 SELECT {first} + (i - 1) / {n}, ({first} + (i - 1) / {n}) * 100 + ((i - 1) % {n}) % {w} + 1, \
                 {USER_BASE} + {base} + i, 'registered', NULL, {now} FROM {} WHERE ((i - 1) % {n}) % 10 < {tenths};",
                series(group.gyms * group.members),
                first = group.first_gym,
                n = group.members,
                w = group.window.len(),
                base = group.user_base,
                tenths = group.booked_tenths,
            ));
        }
    }
    for i in 1..=5 {
        sql.push(format!(
            "INSERT INTO classes (id, gym_id, name, description, duration_minutes, max_capacity, category, \
             instructor_id, active, created_at) VALUES ({}, 1, 'Class {i}', NULL, 60, 50, NULL, NULL, TRUE, {now});",
            1000 + i
        ));
        sql.push(format!(
            "INSERT INTO events (gym_id, title, description, start_time, end_time, location, max_participants, \
             created_by, created_at) VALUES (1, 'Event {i}', NULL, {}, {}, NULL, NULL, NULL, {now});",
            minutes(1440 + 60 * i),
            minutes(1440 + 60 * i + 60)
        ));
    }
    for (s, id) in future_sessions().into_iter().enumerate() {
        let start = 1440 + 30 * s as i64;
        sessions.push(format!(
            "({id}, 1, 1, {}, {}, 'scheduled', NULL, NULL, 1000, 0, {now})",
            minutes(start),
            minutes(start + 45)
        ));
    }
    sql.push(format!(
        "INSERT INTO sessions (id, gym_id, class_id, start_time, end_time, status, trainer_id, room, capacity, \
         registered_count, created_at) VALUES {};",
        sessions.join(", ")
    ));
    sql.extend(bookings);
    sql.push(
        "UPDATE sessions SET registered_count = (SELECT COUNT(*) FROM participations p \
         WHERE p.gym_id = sessions.gym_id AND p.session_id = sessions.id AND p.status IN ('registered', 'attended'));"
            .to_owned(),
    );
    if postgres {
        for table in ["users", "gyms", "classes", "sessions"] {
            sql.push(format!("SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}));"));
        }
    }
    sql.push("COMMIT;".to_owned());
    sql.push("ANALYZE;".to_owned());
    sql.join("\n")
}
