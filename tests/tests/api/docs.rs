//! `/openapi.json` and `/docs`: served by the binary itself, and complete.

use std::collections::BTreeSet;

use gymapi_tests::{Backend, TestApp, send};
use reqwest::Method;

/// Every (METHOD, path) the app registers, read from the route modules: each
/// `web::resource("…")` followed by its `.route(web::get())`-style methods.
fn registered_routes() -> BTreeSet<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/api/src/routes");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("routes dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let prefix = if path.ends_with("health.rs") { "" } else { "/api/v1" };
        for chunk in text.split("web::resource(\"").skip(1) {
            let Some((route, rest)) = chunk.split_once('"') else { continue };
            // The methods of this resource come before the next `.service(`.
            let body = rest.split(".service(").next().unwrap_or(rest);
            for method in ["get", "post", "patch", "delete", "put"] {
                if body.contains(&format!("web::{method}()")) {
                    routes.insert((method.to_uppercase(), format!("{prefix}{route}")));
                }
            }
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_is_documented() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (status, doc) = send(app.req(Method::GET, "/openapi.json")).await;
    assert_eq!(status, 200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let registered = registered_routes();
    assert!(registered.len() > 30, "the route scan found too little: {registered:?}");
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from /openapi.json: {missing:?}");
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
    assert!(doc["paths"]["/api/v1/attendance/check-in"]["post"]["responses"]["400"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
    // Generated clients name their functions after operation ids: two alike break them
    // (and openapi-spec-validator refuses the document).
    let mut ids = std::collections::HashMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            if let Some(first) = ids.insert(id.clone(), format!("{method} {path}")) {
                panic!("operationId {id:?} of {method} {path} is also {first}'s");
            }
        }
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let mut seen = std::collections::HashSet::new();
            for p in &params {
                assert!(seen.insert((p["name"].to_string(), p["in"].to_string())), "{method} {path}: {p} twice");
            }
        }
    }
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap_or_default();
        assert!(doc["components"]["schemas"][name].is_object(), "a $ref to a schema the document lacks: {name}");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_is_served_without_network() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // As FastAPI's: the page itself, not a redirect to it.
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let res = no_redirects.get(format!("{}/docs", app.base)).send().await.expect("docs");
    assert_eq!(res.status(), 200, "GET /docs answers the page without a redirect");
    assert!(res.headers()["content-type"].to_str().expect("type").starts_with("text/html"));
    let html = res.text().await.expect("html");
    assert!(html.to_lowercase().contains("swagger"), "{html}");
    assert!(html.contains("<base href=\"/docs/\">"), "relative assets resolve under /docs/: {html}");
    let res = no_redirects.get(format!("{}/docs/swagger-initializer.js", app.base)).send().await.expect("init");
    assert_eq!(res.status(), 200);
    assert!(res.text().await.expect("js").contains("/openapi.json"), "the UI loads our document");
    let res = app.req(Method::GET, "/docs/swagger-ui-bundle.js").send().await.expect("bundle");
    assert_eq!(res.status(), 200, "the UI's assets come from the binary");
    assert!(res.bytes().await.expect("js").len() > 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_with_a_description_on_every_response_and_the_servers_bounds() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, doc) = send(app.req(Method::GET, "/openapi.json")).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    let mut responses = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("item") {
            for (status, r) in op["responses"].as_object().expect("responses") {
                responses += 1;
                assert!(
                    r["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{method} {path} {status} has no description"
                );
            }
        }
    }
    assert!(responses > 200, "{responses}");
    let class = &doc["components"]["schemas"]["ClassIn"]["properties"];
    assert_eq!(
        (class["duration_minutes"]["minimum"].as_i64(), class["duration_minutes"]["maximum"].as_i64()),
        (Some(1), Some(600))
    );
    assert_eq!(
        (class["max_capacity"]["minimum"].as_i64(), class["max_capacity"]["maximum"].as_i64()),
        (Some(1), Some(1000))
    );
    assert_eq!((class["name"]["minLength"].as_i64(), class["name"]["maxLength"].as_i64()), (Some(1), Some(200)));
    let session = &doc["components"]["schemas"]["SessionIn"]["properties"];
    assert_eq!(session["start_time"]["$ref"], "#/components/schemas/UtcTime");
    let time = &doc["components"]["schemas"]["UtcTime"];
    assert_eq!((time["type"].as_str(), time["format"].as_str()), (Some("string"), Some("date-time")));
    assert_eq!(time["pattern"].as_str(), Some(api::dto::date_time_pattern().as_str()));
    let limit = doc["paths"]["/api/v1/members"]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
        .expect("limit parameter");
    assert_eq!((limit["schema"]["minimum"].as_i64(), limit["schema"]["maximum"].as_i64()), (Some(1), Some(500)));
    let gym = doc["paths"]["/api/v1/members"]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "X-Gym-ID"))
        .expect("gym header");
    assert_eq!(gym["schema"]["minimum"].as_i64(), Some(1));
}

/// Lemmy's `test_errors_used`, for GymAPI's codes: each code of the contract is
/// documented in the OpenAPI document, and answered somewhere in the code base (its
/// variant is used outside the files that define and render it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_code_is_documented_and_answered_somewhere() {
    use api::error::Code;
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, doc) = send(app.req(Method::GET, "/openapi.json")).await;
    let text = doc.to_string();
    let words: std::collections::HashSet<&str> =
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    let undocumented: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).filter(|c| !words.contains(c)).collect();
    assert!(undocumented.is_empty(), "codes no route documents in /openapi.json: {undocumented:?}");

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    for dir in ["crates/domain/src", "crates/infra/src", "crates/api/src"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("source dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("error.rs") {
                    sources.push_str(&std::fs::read_to_string(&path).expect("source"));
                }
            }
        }
    }
    // error.rs defines, names and renders every variant: of it, only the functions
    // that turn what actix answered into ours count as answering.
    let error_rs = std::fs::read_to_string(root.join("crates/api/src/error.rs")).expect("error.rs");
    for answering in ["pub fn from_status", "pub fn payload"] {
        let body = error_rs.split(answering).nth(1).and_then(|b| b.split("\n    }\n").next()).unwrap_or_default();
        sources.push_str(&body.replace("Self::", "ApiError::"));
    }
    // A variant is answered where it is built: `DomainError::X`, `ApiError::X`, or the
    // short forms the modules use (`D::X` is only in error.rs, which is left out).
    let unused: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| {
            let source = c.source();
            let short = source.rsplit("::").next().unwrap_or(source);
            !sources.contains(source) && !sources.contains(&format!("Err({short})"))
        })
        .map(|c| c.as_str())
        .collect();
    assert!(unused.is_empty(), "codes nothing answers: {unused:?}");
}
