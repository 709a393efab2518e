//! Request telemetry: the request id, one log line per request, the HTTP metrics.
//! Also the process-wide tracing and metrics set-up.

use std::sync::OnceLock;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use domain::values::Actor;
use infra::config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use crate::auth::Caller;
use crate::lifecycle::Lifecycle;

/// The request id header.
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A request id from the client is echoed if it is short, printable ASCII.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("{:016x}{:016x}", rand::random::<u64>(), rand::random::<u64>()))
}

/// The `method` label: the standard methods by name, any other as `OTHER`, so that
/// invented methods cannot create series (and grow memory) without bound.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The middleware; see the module docs.
///
/// # Errors
/// None of its own: errors of inner services are already responses here.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let start = Instant::now();
    let id = request_id(&req);
    let method = method_label(req.method());
    // Declared here, filled as they become known, so that every line logged inside
    // the request carries them: the route template (from the routing table, before
    // routing runs), then the user (authentication) and the gym (tenancy).
    let pattern = req.resource_map().match_pattern(req.match_info().as_str()).unwrap_or_else(|| "unmatched".to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        route = %pattern,
        user_id = tracing::field::Empty,
        gym_id = tracing::field::Empty
    );
    // Handler and extractor errors arrive here as responses, and the body guard
    // (`limits`) answers its refusals as responses too: an Err here would be
    // rendered by actix outside this middleware, uncounted and not in our format.
    // (The request cannot be kept to render one here: routing needs it unshared.)
    let mut res = next.call(req).instrument(span.clone()).await?.map_into_boxed_body();
    if res.request().app_data::<actix_web::web::Data<Lifecycle>>().is_some_and(|l| l.is_draining()) {
        // Clients move to another instance instead of reusing this connection.
        res.response_mut().head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID.clone(), v);
    }

    // The template found before routing is the one routing matched: one lookup.
    let route = pattern;
    let status = res.status().as_u16();
    let elapsed = start.elapsed();
    metrics::counter!(
        "gymapi_http_requests_total",
        "method" => method, "route" => route.clone(), "status" => status.to_string()
    )
    .increment(1);
    metrics::histogram!("gymapi_http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(elapsed.as_secs_f64());

    let ext = res.request().extensions();
    let user_id = ext.get::<Caller>().map(|c| c.user_id.0);
    let gym_id = ext.get::<Actor>().map(|a| a.gym_id.0);
    drop(ext);
    let _enter = span.enter();
    tracing::info!(
        method = %method,
        route = %route,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %id,
        user_id,
        gym_id,
        "request"
    );
    Ok(res)
}

/// Installs the global tracing subscriber (once per process).
pub fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stdout).with_ansi(ansi);
    let noise = ConnectionNoise::default();
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .finish()
            .with(noise)
            .try_init(),
        LogFormat::Text => builder.finish().with(noise).try_init(),
    };
}

/// Seconds between two lines of [`ConnectionNoise`].
const CONNECTION_NOISE_EVERY_SECONDS: u64 = 10;

/// actix-http answers a malformed request line, a request head over its limit or too
/// many headers itself (400 or 431, before any of our code runs), then logs the
/// connection's end at ERROR. Any anonymous client can send those as fast as it
/// connects, so they would drown the log: each is counted in
/// `gymapi_http_connection_errors_total`, and at most one line passes every
/// [`CONNECTION_NOISE_EVERY_SECONDS`].
#[derive(Default)]
struct ConnectionNoise {
    /// When the last line passed, in seconds since the epoch.
    last: std::sync::atomic::AtomicU64,
}

impl ConnectionNoise {
    fn is_noise(meta: &tracing::Metadata<'_>) -> bool {
        meta.is_event() && *meta.level() == tracing::Level::ERROR && meta.target().starts_with("actix_http::h1")
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ConnectionNoise {
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        // "Sometimes": asked again for every event, so each can be counted and judged.
        if Self::is_noise(meta) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::always()
        }
    }

    fn event_enabled(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) -> bool {
        use std::sync::atomic::Ordering;
        if !Self::is_noise(event.metadata()) {
            return true;
        }
        metrics::counter!("gymapi_http_connection_errors_total").increment(1);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let last = self.last.load(Ordering::Relaxed);
        now >= last.saturating_add(CONNECTION_NOISE_EVERY_SECONDS)
            && self.last.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

/// The process-wide Prometheus recorder; every app instance in the process shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), &buckets)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(h) => {
                    describe_metrics();
                    h
                }
                // Another recorder is installed (only possible in odd embeddings):
                // render an empty registry rather than fail.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            }
        })
        .clone()
}

/// The HELP line of every metric of contract §6 (Prometheus' own linter, `promtool
/// check metrics`, wants one, and an operator reading a scrape does too).
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("gymapi_http_requests_total", "HTTP answers, by method, route pattern and status");
    describe_histogram!(
        "gymapi_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route pattern"
    );
    describe_histogram!(
        "gymapi_db_query_duration_seconds",
        Unit::Seconds,
        "Time of one repository operation on the database, by operation"
    );
    describe_counter!("gymapi_cache_operations_total", "Cache calls, by operation and result (hit, miss, error)");
    describe_counter!(
        "gymapi_cache_round_trips_total",
        "Exchanges with Redis (a pipeline of several commands is one); none with the in-process cache"
    );
    describe_counter!("gymapi_checkins_total", "Front-desk check-ins, by result (success or the refusal's code)");
    describe_counter!("gymapi_checkin_refusals_total", "Refused check-ins recorded in the audit, by refusal code");
    describe_counter!(
        "gymapi_checkin_refusals_dropped_total",
        "Refused check-ins not recorded (the queue was full, or the database refused a batch three times)"
    );
    describe_counter!(
        "gymapi_webhook_attempts_total",
        "Webhook delivery attempts, by result (delivered, retry: failed and due again, failed: given up)"
    );
    describe_counter!(
        "gymapi_idempotent_requests_total",
        "POSTs answered from their Idempotency-Key, by outcome (replayed, or reused for another request)"
    );
    describe_counter!(
        "gymapi_http_connection_errors_total",
        "Connections actix-http ended on a request it could not parse (answered 400 or 431 before GymAPI's code)"
    );
    describe_gauge!("gymapi_db_pool_connections", "Database pool connections: in_use, idle, and the configured max");
    describe_counter!(
        "gymapi_db_reads_total",
        "Reads that tolerate replication lag (lists, history, reports, the change feed), by the server that answered"
    );
    describe_gauge!("gymapi_db_replica_up", "1 while the read replica is caught up and serves reads, else 0");
    describe_gauge!("gymapi_db_replica_lag_bytes", "WAL the read replica has yet to replay, at the last check");
    describe_histogram!("gymapi_checkin_batch_size", "Check-ins combined into one transaction");
    describe_histogram!(
        "gymapi_checkin_batch_wait_seconds",
        Unit::Seconds,
        "Time a check-in waited for its batch to start"
    );
}
