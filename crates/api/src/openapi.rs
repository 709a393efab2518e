//! The OpenAPI document of every route, and the Swagger UI that renders it. Both
//! are served from the binary (the UI is vendored), so `/docs` works offline.

use actix_web::{HttpResponse, web};
use domain::limits;
use domain::schedule::{BookingWindow, WaitlistRules};
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{
    attendance, changes, events, gyms, health, passes, payments, plans, reports, schedule, users, webhooks,
};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The document. A path missing here fails `every_route_is_documented`.
#[derive(OpenApi)]
#[openapi(
    info(title = "GymAPI", description = "Multi-tenant gym management: users, gyms, schedule, events, QR check-in.\n\n\
        Every route may also answer, about the request's transport rather than its content: \
        `413 payload_too_large` (a body over 64 KiB), `415 unsupported_content_encoding` (a compressed body: \
        bodies are taken as sent, `Content-Encoding: identity`) and `400 malformed_request` (broken chunked \
        framing, or a body shorter than its `Content-Length`). A path that is no route answers \
        `404 not_found`, even without a token; a route asked with a method it does not have, \
        `405 method_not_allowed` with `Allow`."),
    modifiers(&BearerAuth),
    // Every route but the probes wants a token; they say `security(())`.
    security(("bearer" = [])),
    // The error sets of dto::responses reference ErrorBody; utoipa registers the
    // schemas of bodies it sees in paths, not of IntoResponses types.
    components(schemas(crate::dto::ErrorBody)),
    paths(
        health::health, health::ready, health::metrics,
        users::me, users::update_me, users::my_gyms, users::user,
        gyms::create_gym, gyms::current, gyms::update_current, gyms::occupancy, gyms::members, gyms::add_member, gyms::set_role, gyms::remove_member,
        schedule::classes, schedule::create_class, schedule::class, schedule::update_class, schedule::delete_class,
        schedule::sessions, schedule::create_session, schedule::session, schedule::cancel_session,
        schedule::register, schedule::unregister, schedule::participants, schedule::waitlist,
        schedule::create_recurrence, schedule::recurrences, schedule::stop_recurrence,
        events::list, events::create, events::get, events::update, events::delete,
        attendance::my_qr, attendance::rotate_qr, attendance::check_in, attendance::refusals, attendance::stream, attendance::last, attendance::history,
        attendance::dashboard, attendance::calendar, attendance::rotate_calendar, attendance::feed,
        changes::changes, reports::class_report, reports::pass_report, reports::member_report,
        webhooks::create_webhook, webhooks::list_webhooks, webhooks::delete_webhook, webhooks::webhook_deliveries,
        webhooks::replay_delivery, webhooks::rotate_webhook_secret,
        plans::create_plan, plans::list_plans, plans::get_plan, plans::update_plan, plans::retire_plan,
        passes::sell_pass, passes::member_passes, passes::cancel_pass, passes::freeze_pass, passes::adjust_credits,
        passes::member_ledger, payments::rotate_payment_secret, payments::payment_event,
    ),
    tags(
        (name = "users"), (name = "gyms"), (name = "schedule"), (name = "events"), (name = "attendance"),
        (name = "reports"), (name = "webhooks"), (name = "plans"), (name = "passes"),
        (name = "operations", description = "Unauthenticated probes and metrics"),
    )
)]
pub struct ApiDoc;

/// The UI's page itself at `/docs`, as FastAPI serves it: clients and probes that
/// do not follow redirects get the page. Its assets are relative (`./swagger-ui.css`),
/// so a `<base>` points them at `/docs/`, where [`SwaggerUi`] serves them.
async fn docs_page() -> HttpResponse {
    let config = std::sync::Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));
    match utoipa_swagger_ui::serve("index.html", config) {
        Ok(Some(file)) => {
            let html = String::from_utf8_lossy(&file.bytes).replacen("<head>", "<head>\n    <base href=\"/docs/\">", 1);
            HttpResponse::Ok().content_type("text/html; charset=utf-8").body(html)
        }
        _ => HttpResponse::PermanentRedirect().insert_header(("Location", "/docs/")).finish(),
    }
}

/// `/openapi.json`, `/docs` and the UI's assets under `/docs/`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/docs").route(web::get().to(docs_page)))
        .service(SwaggerUi::new("/docs/{_:.*}").external_url_unchecked("/openapi.json", document()));
}

/// The served document: what utoipa derives from the routes, completed with what
/// the derive cannot know — a description on every response (OpenAPI requires it)
/// and every bound the server validates, taken from the same constants the
/// domain checks against, so the document and the server cannot drift apart.
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (method, op) in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|item| item.iter_mut()) {
            if method == "post" {
                idempotent(op);
            }
            describe_responses(op);
            if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
                params.iter_mut().for_each(constrain_parameter);
            }
        }
    }
    if let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(Value::as_object_mut) {
        for (name, schema) in schemas.iter_mut() {
            for (field, bounds) in field_bounds(name) {
                if let Some(prop) = schema.pointer_mut(&format!("/properties/{field}")).and_then(Value::as_object_mut) {
                    prop.extend(bounds);
                }
            }
        }
    }
    doc
}

/// What every POST takes and may answer about its `Idempotency-Key`
/// ([`crate::idempotency`]).
fn idempotent(op: &mut Value) {
    use crate::idempotency::{HEADER, KEY_MAX, REPLAYED};
    let param = json!({
        "name": HEADER, "in": "header", "required": false,
        "description": "Makes the request safe to retry: the same key, caller and request within 24 h \
            replays the first answer (with `Idempotent-Replayed: true`) without doing the work again. \
            1 to 255 printable ASCII characters, bare or quoted.",
        "schema": {"type": "string", "minLength": 1, "maxLength": KEY_MAX,
                   "pattern": "^[\\x21-\\x7e]([\\x20-\\x7e]*[\\x21-\\x7e])?$"},
    });
    match op.get_mut("parameters").and_then(Value::as_array_mut) {
        Some(params) => params.push(param),
        None => op["parameters"] = json!([param]),
    }
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { return };
    for (status, code) in [("409", "idempotency_key_in_progress"), ("422", "idempotency_key_reused")] {
        let error = json!({"description": code,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
        let r = responses.entry(status).or_insert(error);
        let said = r.get("description").and_then(Value::as_str).unwrap_or_default().to_owned();
        if !said.contains(code) {
            r["description"] = json!(if said.is_empty() { code.to_owned() } else { format!("{said}; {code}") });
        }
    }
    for (_, r) in responses.iter_mut().filter(|(s, _)| s.starts_with('2')) {
        r["headers"] = json!({REPLAYED: {"description": "`true` on an answer replayed for an Idempotency-Key",
            "schema": {"type": "string", "enum": ["true"]}}});
    }
}

fn describe_responses(op: &mut Value) {
    let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else { return };
    for (status, response) in responses.iter_mut() {
        let Some(r) = response.as_object_mut() else { continue };
        if r.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            let reason = status
                .parse::<u16>()
                .ok()
                .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Response");
            r.insert("description".into(), json!(reason));
        }
    }
}

fn constrain_parameter(param: &mut Value) {
    let name = param.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
    let bounds = match name.as_str() {
        "X-Gym-ID" | "id" | "user_id" => json!({"type": "integer", "format": "int64", "minimum": 1}),
        "skip" | "after" => json!({"type": "integer", "format": "int64", "minimum": 0}),
        "limit" => json!({"type": "integer", "format": "int64", "minimum": 1, "maximum": domain::Page::MAX_LIMIT}),
        "start_date" | "end_date" | "from" | "to" => {
            json!({"type": "string", "format": "date", "pattern": crate::dto::date_pattern()})
        }
        "role" => json!({"type": "string", "enum": ROLES}),
        _ => return,
    };
    param["schema"] = bounds;
}

const ROLES: [&str; 4] = ["member", "trainer", "admin", "owner"];

const QR_MODES: [&str; 2] = ["static", "rotating"];

/// A required text: at most `max` characters, not blank, without NUL.
fn required_text(max: usize) -> Map<String, Value> {
    let blank: String = limits::BLANK_CHARS.iter().map(|c| format!("\\u{:04x}", u32::from(*c))).collect();
    let pattern = format!("^[^\\u0000]*[^\\u0000{blank}][^\\u0000]*$");
    obj(json!({"minLength": 1, "maxLength": max, "pattern": pattern}))
}

/// An optional text: at most `max` characters, without NUL (PostgreSQL cannot store it).
fn text(max: usize) -> Map<String, Value> {
    obj(json!({"maxLength": max, "pattern": "^[^\\u0000]*$"}))
}

/// An IANA time zone name. Its shape only: the ~600 names of the tz database as an
/// `enum` break generated clients (openapi-python-client folds `Etc/GMT+0` and
/// `Etc/GMT-0` into one identifier), so an unknown name is the server's 422.
fn time_zones() -> Map<String, Value> {
    obj(json!({"maxLength": limits::TIMEZONE_MAX, "pattern": "^[A-Za-z][A-Za-z0-9_+/-]*$",
               "examples": ["Europe/Madrid", "America/New_York", "UTC"]}))
}

fn range(r: &std::ops::RangeInclusive<i32>) -> Map<String, Value> {
    obj(json!({"minimum": r.start(), "maximum": r.end()}))
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The bounds of each field of each request (and enum of each response) schema.
fn field_bounds(schema: &str) -> Vec<(&'static str, Map<String, Value>)> {
    use limits::*;
    let roles = || obj(json!({"enum": ROLES}));
    match schema {
        "GymIn" => vec![("name", required_text(NAME_MAX)), ("timezone", time_zones()), ("address", text(ADDRESS_MAX))],
        "GymPatchIn" => vec![
            ("name", required_text(NAME_MAX)),
            ("timezone", time_zones()),
            ("address", text(ADDRESS_MAX)),
            ("booking_opens_hours", obj(json!({"minimum": 1, "maximum": BookingWindow::OPENS_HOURS_MAX}))),
            ("booking_closes_minutes", obj(json!({"minimum": 0, "maximum": BookingWindow::CLOSES_MINUTES_MAX}))),
            ("waitlist_cutoff_minutes", obj(json!({"minimum": 0, "maximum": WaitlistRules::CUTOFF_MINUTES_MAX}))),
            ("max_waitlists_per_member", obj(json!({"minimum": 0, "maximum": WaitlistRules::MAX_PER_MEMBER_MAX}))),
            ("qr_mode", obj(json!({"enum": QR_MODES}))),
            ("occupancy_window_minutes", obj(json!({"minimum": 1, "maximum": domain::gyms::OCCUPANCY_WINDOW_MAX}))),
            (
                "cancel_cutoff_minutes",
                obj(json!({"minimum": 0, "maximum": domain::credits::CreditRules::CANCEL_CUTOFF_MAX})),
            ),
        ],
        "GymOut" => vec![("qr_mode", obj(json!({"enum": QR_MODES})))],
        "QrOut" => vec![("mode", obj(json!({"enum": QR_MODES})))],
        "ProfileIn" => vec![("name", text(NAME_MAX)), ("phone", text(PHONE_MAX))],
        "MemberIn" | "RoleIn" | "MemberOut" | "MembershipOut" | "GymWithRoleOut" => vec![("role", roles())],
        "ClassIn" | "ClassPatchIn" => vec![
            ("name", required_text(NAME_MAX)),
            ("description", text(CLASS_DESCRIPTION_MAX)),
            ("category", text(CATEGORY_MAX)),
            ("duration_minutes", range(&DURATION_MINUTES)),
            ("max_capacity", range(&CAPACITY)),
        ],
        "SessionIn" => vec![("room", text(ROOM_MAX))],
        "PlanIn" | "PlanPatchIn" => vec![
            ("name", required_text(NAME_MAX)),
            ("kind", obj(json!({"enum": domain::plans::PlanKind::ALL}))),
            ("credits", range(&domain::plans::CREDITS)),
            ("valid_days", range(&domain::plans::VALID_DAYS)),
            ("weekly_limit", range(&domain::plans::WEEKLY_LIMIT)),
            (
                "categories",
                obj(json!({"minItems": 1, "maxItems": domain::plans::CATEGORIES_MAX,
                "items": Value::Object({
                    let mut item = required_text(CATEGORY_MAX);
                    item.insert("type".into(), json!("string"));
                    item
                })})),
            ),
        ],
        "PlanOut" => vec![("kind", obj(json!({"enum": domain::plans::PlanKind::ALL})))],
        "PassIn" => vec![("starts_on", obj(json!({"pattern": crate::dto::date_pattern()})))],
        "PaymentEventIn" => vec![("event_id", required_text(domain::payments::EVENT_ID_MAX))],
        "FreezeIn" => vec![
            ("from", obj(json!({"pattern": crate::dto::date_pattern()}))),
            ("until", obj(json!({"pattern": crate::dto::date_pattern()}))),
        ],
        "AdjustIn" => vec![
            (
                "credits",
                obj(
                    json!({"minimum": -domain::passes::ADJUST_MAX, "maximum": domain::passes::ADJUST_MAX, "not": {"const": 0}}),
                ),
            ),
            ("reason", required_text(domain::passes::REASON_MAX)),
        ],
        "PassOut" => vec![
            ("kind", obj(json!({"enum": domain::plans::PlanKind::ALL}))),
            ("status", obj(json!({"enum": domain::passes::PassStatus::ALL}))),
        ],
        "CreditEntryOut" => vec![
            ("kind", obj(json!({"enum": domain::passes::EntryKind::ALL}))),
            ("cause", obj(json!({"enum": domain::passes::Cause::ALL}))),
        ],
        "RecurrenceIn" => vec![
            ("room", text(ROOM_MAX)),
            ("local_start_time", obj(json!({"pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$"}))),
            ("starts_on", obj(json!({"pattern": crate::dto::date_pattern()}))),
            ("until", obj(json!({"pattern": crate::dto::date_pattern()}))),
            ("weekdays", obj(json!({"minItems": 1, "items": {"type": "integer", "minimum": 1, "maximum": 7}}))),
        ],
        "EventIn" | "EventNewIn" => vec![
            ("title", required_text(NAME_MAX)),
            ("description", text(EVENT_DESCRIPTION_MAX)),
            ("location", text(LOCATION_MAX)),
            ("max_participants", obj(json!({"minimum": MIN_PARTICIPANTS, "maximum": i32::MAX}))),
        ],
        "SessionOut" => vec![("status", obj(json!({"enum": ["scheduled", "cancelled"]})))],
        "ParticipationOut" | "BookingOut" | "WaitlistEntryOut" => {
            vec![(
                "status",
                obj(
                    json!({"enum": ["registered", "attended", "cancelled", "no_show", "waitlisted", "late_cancelled"]}),
                ),
            )]
        }
        _ => vec![],
    }
}
