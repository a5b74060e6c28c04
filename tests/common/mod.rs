//! Test harness: a real postdesk on ephemeral loopback ports in a temporary
//! directory, on SQLite and (when `POSTDESK_TEST_POSTGRES` is set) on a fresh
//! PostgreSQL database; and a small line-level SMTP client for conversations.
#![allow(dead_code)]

pub mod dns;
pub mod imap;
pub mod sink;
pub mod tls;

use postdesk::config::Config;
use postdesk::server::RunningServer;
use std::net::SocketAddr;
use std::sync::Once;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite,
    Postgres(String),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }
}

static NOTICE: Once = Once::new();

/// Defines a test that runs once per backend, as a module of the test's name
/// holding `sqlite` and `postgres` tests: a failure names its backend
/// (`imap::flags_are_ticket_state::postgres`), and the harness can run the
/// two at once.
/// The PostgreSQL one follows [`postgres_url`]: without
/// `POSTDESK_TEST_POSTGRES` it passes without running (failing in CI).
/// Each [`TestServer`] it starts gets its own fresh database.
///
/// ```ignore
/// backend_test!(
///     async fn flags_are_ticket_state(backend: Backend) {
///         let server = TestServer::start(&backend).await;
///         // …
///     }
/// );
/// ```
macro_rules! backend_test {
    (
        $(#[$attribute:meta])*
        async fn $name:ident($backend:ident: $backend_type:ty $(,)?) $body:block
    ) => {
        $(#[$attribute])*
        mod $name {
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                let $backend: $backend_type = $crate::common::Backend::Sqlite;
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let Some(url) = $crate::common::postgres_url() else {
                    return;
                };
                let $backend: $backend_type = $crate::common::Backend::Postgres(url);
                $body
            }
        }
    };
}
pub(crate) use backend_test;

/// The PostgreSQL server of `POSTDESK_TEST_POSTGRES`. Unset: the PostgreSQL
/// runs are skipped with a notice, except in CI, where that is a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var("POSTDESK_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                !in_ci(),
                "POSTDESK_TEST_POSTGRES must name a PostgreSQL server in CI (.ci/run sets it)"
            );
            // Straight to stderr: the test harness captures `eprintln!`,
            // and a skipped PostgreSQL test still reports `ok`.
            NOTICE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "notice: POSTDESK_TEST_POSTGRES is not set; the PostgreSQL runs of these tests are skipped"
                );
            });
            None
        }
    }
}

/// Whether the tests run in CI (`CI` set and not `0` or `false`; `.ci/run`
/// sets `CI=1`). There a missing interop tool or PostgreSQL server fails
/// the tests instead of skipping them, so a broken CI set-up cannot pass
/// by testing less; a fresh machine without them stays green.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|value| !matches!(value.as_str(), "" | "0" | "false"))
}

pub fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        postdesk::tls::install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("POSTDESK_TEST_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .with_test_writer()
            .try_init();
    });
}

/// Creates an empty PostgreSQL database for one test; returns its URL.
pub async fn fresh_postgres_database(base_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("postdesk_test_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(base_url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to POSTDESK_TEST_POSTGRES {base_url}: {e}"));
    let create = format!("CREATE DATABASE {name}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(base_url).expect("POSTDESK_TEST_POSTGRES is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// Drops a test's database once the test is done with it (the server
/// stopped): a suite run makes a hundred, and the machine's PostgreSQL
/// keeps what it is given. A failing test leaves its database for a look.
pub async fn drop_postgres_database(base_url: &str, url: &str) {
    use sqlx::Connection;
    let Some(name) = url::Url::parse(url)
        .ok()
        .map(|u| u.path().trim_start_matches('/').to_string())
        .filter(|name| name.starts_with("postdesk_test_"))
    else {
        return;
    };
    let Ok(mut admin) = sqlx::PgConnection::connect(base_url).await else {
        return;
    };
    // FORCE: a pool's idle connections may still be closing.
    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
    if let Err(err) = sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&mut admin)
        .await
    {
        eprintln!("test database {name} not dropped: {err}");
    }
}

/// A configuration for a test: loopback, ephemeral ports, temp data dir.
pub async fn test_config(backend: &Backend, dir: &std::path::Path) -> Config {
    let mut config = Config {
        hostname: "desk.test".into(),
        data_dir: dir.to_path_buf(),
        database_url: match backend {
            Backend::Sqlite => None,
            Backend::Postgres(base) => Some(fresh_postgres_database(base).await),
        },
        ..Config::default()
    };
    config.smtp.listen = "127.0.0.1:0".parse().expect("addr");
    config.imap.listen = "127.0.0.1:0".parse().expect("addr");
    config.imap.tls_listen = "127.0.0.1:0".parse().expect("addr");
    config.submission.listen = "127.0.0.1:0".parse().expect("addr");
    config.submission.tls_listen = "127.0.0.1:0".parse().expect("addr");
    config.http.listen = Some("127.0.0.1:0".parse().expect("addr"));
    // No real DNS in the tests: the sender-authentication tests turn the
    // checks on against their own DNS server.
    config.smtp.verify = postdesk::config::VerifyMode::Off;
    config.queues = vec![
        postdesk::config::QueueConfig {
            name: "support".into(),
            address: "support@desk.test".into(),
            knowledge_categories: Vec::new(),
        },
        postdesk::config::QueueConfig {
            name: "billing".into(),
            address: "billing@desk.test".into(),
            knowledge_categories: Vec::new(),
        },
    ];
    config
}

pub struct TestServer {
    pub running: Option<RunningServer>,
    pub dir: tempfile::TempDir,
    pub backend: Backend,
    pub config: Config,
}

impl TestServer {
    pub async fn start(backend: &Backend) -> TestServer {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: &Backend, tweak: impl FnOnce(&mut Config)) -> TestServer {
        init_tracing();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(backend, dir.path()).await;
        tweak(&mut config);
        let running = postdesk::server::start(config.clone())
            .await
            .unwrap_or_else(|e| panic!("server start on {}: {e}", backend.name()));
        TestServer {
            running: Some(running),
            dir,
            backend: backend.clone(),
            config,
        }
    }

    pub fn running(&self) -> &RunningServer {
        self.running.as_ref().expect("server running")
    }

    pub fn smtp(&self) -> SocketAddr {
        self.running().smtp_addr
    }

    pub fn imap(&self) -> SocketAddr {
        self.running().imap_addr
    }

    /// The operations listener (`/metrics`, `/healthz`).
    pub fn http(&self) -> SocketAddr {
        self.running()
            .http_addr
            .expect("the tests' servers listen on HTTP")
    }

    pub fn submission(&self) -> SocketAddr {
        self.running().submission_addr
    }

    pub fn app(&self) -> &postdesk::App {
        &self.running().app
    }

    pub fn store(&self) -> &postdesk::store::Store {
        &self.running().app.store
    }

    /// The outbound queue (all of it, or in one state).
    pub async fn outbound(
        &self,
        status: Option<postdesk::store::OutboundStatus>,
    ) -> Vec<postdesk::store::OutboundItem> {
        self.store().outbound(status).await.expect("outbound")
    }

    /// Stops and starts the server again on the same data (and database).
    pub async fn restart(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        let mut config = self.config.clone();
        config.smtp.listen = "127.0.0.1:0".parse().expect("addr");
        config.imap.listen = "127.0.0.1:0".parse().expect("addr");
        config.imap.tls_listen = "127.0.0.1:0".parse().expect("addr");
        config.submission.listen = "127.0.0.1:0".parse().expect("addr");
        config.submission.tls_listen = "127.0.0.1:0".parse().expect("addr");
        config.http.listen = Some("127.0.0.1:0".parse().expect("addr"));
        self.running = Some(postdesk::server::start(config).await.expect("restart"));
    }

    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        if let (Backend::Postgres(base), Some(url)) = (&self.backend, &self.config.database_url) {
            drop_postgres_database(base, url).await;
        }
    }
}

/// A line-level SMTP client that says exactly what the test tells it to.
pub struct SmtpClient<S> {
    stream: BufReader<S>,
}

/// One reply: the code and its lines (without codes).
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

impl SmtpClient<TcpStream> {
    pub async fn connect(addr: SocketAddr) -> (SmtpClient<TcpStream>, Reply) {
        let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .expect("connect timeout")
            .expect("connect");
        let mut client = SmtpClient {
            stream: BufReader::new(stream),
        };
        let greeting = client.reply().await;
        (client, greeting)
    }

    pub fn into_inner(self) -> TcpStream {
        self.stream.into_inner()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SmtpClient<S> {
    pub fn wrap(stream: S) -> SmtpClient<S> {
        SmtpClient {
            stream: BufReader::new(stream),
        }
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
        self.stream.get_mut().flush().await.expect("flush");
    }

    /// Sends one command line (CRLF added) and reads its reply.
    pub async fn cmd(&mut self, line: &str) -> Reply {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Reads one (possibly multi-line) reply, within 30 s.
    /// One transaction with the message sent by BDAT, so every byte
    /// arrives as it is (no dot-stuffing, no line-end repair).
    pub async fn send_exact(&mut self, from: &str, to: &str, raw: &[u8]) -> Reply {
        assert_eq!(
            self.cmd(&format!("MAIL FROM:<{from}> BODY=8BITMIME"))
                .await
                .code,
            250
        );
        assert_eq!(self.cmd(&format!("RCPT TO:<{to}>")).await.code, 250);
        self.send_raw(format!("BDAT {} LAST\r\n", raw.len()).as_bytes())
            .await;
        self.send_raw(raw).await;
        self.reply().await
    }

    pub async fn reply(&mut self) -> Reply {
        tokio::time::timeout(Duration::from_secs(30), self.read_reply())
            .await
            .expect("reply timeout")
    }

    async fn read_reply(&mut self) -> Reply {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.stream.read_line(&mut line).await.expect("read reply");
            assert!(
                n > 0,
                "connection closed while waiting for a reply (got {lines:?})"
            );
            let line = line.trim_end_matches(['\r', '\n']);
            assert!(line.len() >= 3, "short reply line {line:?}");
            let code: u16 = line[..3]
                .parse()
                .unwrap_or_else(|_| panic!("bad reply {line:?}"));
            let more = line.as_bytes().get(3) == Some(&b'-');
            lines.push(line.get(4..).unwrap_or("").to_string());
            if !more {
                return Reply { code, lines };
            }
        }
    }

    /// True when the server has closed the connection (reads EOF).
    pub async fn is_closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut line)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }

    /// EHLO, MAIL, RCPT…, DATA with `body` (dot-stuffed here); returns the
    /// final reply.
    pub async fn send_mail(&mut self, from: &str, to: &[&str], body: &[u8]) -> Reply {
        let r = self.cmd("EHLO client.test").await;
        assert_eq!(r.code, 250, "{r:?}");
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        assert_eq!(r.code, 250, "{r:?}");
        for rcpt in to {
            let r = self.cmd(&format!("RCPT TO:<{rcpt}>")).await;
            assert_eq!(r.code, 250, "{r:?}");
        }
        let r = self.cmd("DATA").await;
        assert_eq!(r.code, 354, "{r:?}");
        self.send_raw(&dot_stuff(body)).await;
        self.send_raw(b".\r\n").await;
        self.reply().await
    }
}

/// Dot-stuffs a message for DATA and makes sure it ends with CRLF.
pub fn dot_stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 16);
    let mut at_line_start = true;
    for &b in body {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !out.ends_with(b"\r\n") {
        if out.ends_with(b"\n") {
            out.pop();
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// A simple customer message.
pub fn message(
    from: &str,
    to: &str,
    subject: &str,
    message_id: &str,
    extra_headers: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n{extra_headers}\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Sends one message in its own connection; returns the final reply.
pub async fn deliver(addr: SocketAddr, from: &str, to: &[&str], body: &[u8]) -> Reply {
    let (mut client, greeting) = SmtpClient::connect(addr).await;
    assert_eq!(greeting.code, 220);
    let reply = client.send_mail(from, to, body).await;
    let _ = client.cmd("QUIT").await;
    reply
}

/// The ticket number in a "250 2.0.0 Message accepted as ticket #n" reply.
pub fn ticket_of(reply: &Reply) -> i64 {
    assert_eq!(reply.code, 250, "{reply:?}");
    let text = reply.text();
    text.rsplit('#')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no ticket number in {reply:?}"))
}

/// Makes the database refuse every message whose subject is `fail-me`: a
/// real commit failure, for the tests of what a failed commit must do.
pub async fn install_failing_trigger(server: &TestServer) {
    let store = server.store();
    match server.backend {
        Backend::Sqlite => store
            .execute_unchecked(
                "CREATE TRIGGER fail_me BEFORE INSERT ON messages \
                 WHEN NEW.subject = 'fail-me' \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
            )
            .await
            .expect("create trigger"),
        Backend::Postgres(_) => {
            store
                .execute_unchecked(
                    "CREATE FUNCTION fail_me() RETURNS trigger LANGUAGE plpgsql AS $$ \
                     BEGIN IF NEW.subject = 'fail-me' THEN RAISE EXCEPTION 'injected failure'; \
                     END IF; RETURN NEW; END $$;",
                )
                .await
                .expect("create function");
            store
                .execute_unchecked(
                    "CREATE TRIGGER fail_me BEFORE INSERT ON messages \
                     FOR EACH ROW EXECUTE FUNCTION fail_me();",
                )
                .await
                .expect("create trigger");
        }
    }
}

pub async fn drop_failing_trigger(server: &TestServer) {
    let sql = match server.backend {
        Backend::Sqlite => "DROP TRIGGER fail_me",
        Backend::Postgres(_) => "DROP TRIGGER fail_me ON messages",
    };
    server
        .store()
        .execute_unchecked(sql)
        .await
        .expect("drop trigger");
}

/// The relay setting for a sink on `addr`.
pub fn relay(addr: SocketAddr) -> Option<postdesk::config::RelayUrl> {
    Some(postdesk::config::RelayUrl::parse(&format!("smtp://{addr}")).expect("relay url"))
}

/// Waits (at most `seconds`) until every message stored now is searchable.
pub async fn wait_until_indexed(server: &TestServer, seconds: u64) {
    let newest = server
        .store()
        .newest_message()
        .await
        .expect("newest")
        .map(|(id, _)| id)
        .unwrap_or(0);
    let index = server
        .app()
        .search
        .get()
        .expect("the server opened the index")
        .clone();
    for _ in 0..seconds * 20 {
        if index.indexed_through() >= newest {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the index never reached message {newest}");
}

/// Polls `check` every 50 ms for at most 20 s.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..400 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// Sets a ticket's status at `at` through the one ticket-change operation,
/// as an agent's move would (tests may backdate it).
pub async fn set_status(
    store: &postdesk::store::Store,
    number: i64,
    status: postdesk::domain::ticket::Status,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, postdesk::store::StoreError> {
    use postdesk::domain::change::{ChangeRequest, TicketChange};
    let change = TicketChange {
        status: Some(status),
        ..TicketChange::default()
    };
    store
        .change_ticket(
            number,
            &ChangeRequest::administrative(change, "test", "test", at),
        )
        .await
}
