//! The OpenAPI document of every route, and the Swagger UI that renders it. Both
//! are served from the binary (the UI is vendored), so `/docs` works offline.

use actix_web::{HttpResponse, web};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use crate::routes::{attendance, events, gyms, health, schedule, users};

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
    info(title = "GymAPI", description = "Multi-tenant gym management: users, gyms, schedule, events, QR check-in."),
    modifiers(&BearerAuth),
    paths(
        health::health, health::ready, health::metrics,
        users::me, users::update_me, users::my_gyms, users::user,
        gyms::create_gym, gyms::current, gyms::members, gyms::add_member, gyms::set_role, gyms::remove_member,
        schedule::classes, schedule::create_class, schedule::class, schedule::update_class, schedule::delete_class,
        schedule::sessions, schedule::create_session, schedule::session, schedule::cancel_session,
        schedule::register, schedule::unregister, schedule::participants,
        events::list, events::create, events::get, events::update, events::delete,
        attendance::my_qr, attendance::rotate_qr, attendance::check_in, attendance::last, attendance::history,
        attendance::dashboard,
    ),
    tags(
        (name = "users"), (name = "gyms"), (name = "schedule"), (name = "events"), (name = "attendance"),
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
        .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", ApiDoc::openapi()));
}
