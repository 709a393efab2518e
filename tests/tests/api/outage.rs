//! Contract §6: a database that goes away makes requests answer
//! `503 database_unavailable` quickly and `/ready` 503; the service recovers alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gymapi_tests::{Backend, Options, TestApp, TestDb, assert_error, send, token};
use reqwest::Method;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to PostgreSQL that can be cut and restored on the same port.
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut p = Self { port, upstream, task: None };
        p.serve(listener);
        p
    }

    fn serve(&mut self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Drops the listener and every proxied connection.
    async fn cut(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).await.expect("rebind");
        self.serve(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_database_answers_503_fast_and_the_service_recovers() {
    // The test database itself is created directly; the app reaches it through the proxy.
    let mut db = TestDb::create(Backend::Postgres).await;
    let (base, name) = db.url.rsplit_once('/').map(|(b, n)| (b.to_owned(), n.to_owned())).expect("url");
    let (user, upstream) = base.rsplit_once('@').map(|(u, h)| (u.to_owned(), h.to_owned())).expect("user@host:port");
    let mut proxy = Proxy::start(upstream).await;
    db.url = format!("{user}@127.0.0.1:{}/{name}", proxy.port);
    let opts = Options { extra: vec![("DATABASE_ACQUIRE_TIMEOUT_SECONDS".into(), "1".into())], ..Options::default() };
    let app = TestApp::spawn_on(Arc::new(db), opts).await;
    let t = token("outage-1", "resource:read resource:write");
    assert_eq!(send(app.call(Method::GET, "/api/v1/users/me", &t, None)).await.0, 200);

    proxy.cut().await;
    let started = Instant::now();
    let fresh = token("outage-2", "resource:read resource:write");
    let got = send(app.call(Method::GET, "/api/v1/users/me", &fresh, None)).await;
    assert_error(&got, 503, "database_unavailable");
    assert!(started.elapsed() < Duration::from_secs(15), "answered within the acquire timeout, not hung");
    let (status, ready) = send(app.req(Method::GET, "/ready")).await;
    assert_eq!(status, 503, "{ready}");

    proxy.restore().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, _) = send(app.call(Method::GET, "/api/v1/users/me", &fresh, None)).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover: last status {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(send(app.req(Method::GET, "/ready")).await.0, 200);
}
