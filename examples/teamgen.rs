//! Ingest with a team connected (issue 17's benchmark), against any SMTP +
//! IMAP pair. A port of the former `bench/team_ingest.py`: same flags, same
//! JSON line; unlike it, an EXISTS that arrives in the reply to DONE or in
//! the middle of a FETCH is fetched at once (the Python left it for the next
//! IDLE, so about 1 % of the messages at 200 msg/s were seen late or never).
//!
//! One process runs both halves so they share a clock:
//! - N IMAP clients sit in IDLE on one folder and, like Thunderbird, answer
//!   each EXISTS with DONE and a header FETCH of the new messages (again
//!   while responses announce more), then IDLE again;
//! - mail is offered at a steady RATE over SESSIONS persistent SMTP sessions.
//!
//! Each message carries its sequence number in the subject ("team <run> <j>"),
//! so a client that fetches it knows when its 250 arrived: the notification
//! latency is the time from that 250 to the EXISTS that announced the message
//! (0 when the EXISTS came first). Prints one JSON line: achieved rate, accept
//! p50/p99 (DATA sent -> 250), notification p50/p99, how many of the (clients
//! x accepted) announcements arrived, errors, and the server's CPU seconds and
//! RSS when --pid is given.
//!
//! Why Rust and not Python: the Python version ran 100 IMAP clients and 8
//! SMTP sessions on one asyncio event loop; at 200-1,000 msg/s it fell behind
//! parsing the header FETCHes on a 2-core machine, so the time it noted for an
//! EXISTS was the time it got round to reading it, and its notification
//! latencies measured the load generator rather than the server. This one
//! still runs everything on one thread (tokio's current-thread runtime), so
//! that it uses at most one core and leaves the other to the server, and its
//! own cost stays small and equal for every server it is pointed at.
//!
//! ```text
//! cargo build --release --example teamgen
//! target/release/examples/teamgen --smtp-port 2525 --imap-port 1143 \
//!     --user agent@desk.bench --password bench-password --mailbox Queues/support \
//!     --to support@desk.bench --clients 100 --rate 200 --seconds 60 --pid "$SERVER_PID"
//! ```

use anyhow::{Context, Result, bail};
use clap::Parser;
use regex::bytes::Regex;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, spawn_local};
use tokio::time::{Instant, sleep, sleep_until, timeout_at};

const FETCH_ITEMS: &str = "(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS \
    (From To Subject Date Message-ID References In-Reply-To)])";

/// The kernel's USER_HZ, the unit of the CPU times in /proc. The Python asked
/// sysconf(SC_CLK_TCK); that needs libc (not a dependency) or rustix's
/// "param" feature (not enabled), and Linux reports /proc times in 1/100 s
/// on x86 and ARM whatever the kernel's own tick rate.
const CLK_TCK: f64 = 100.0;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    smtp_port: u16,
    #[arg(long)]
    imap_port: u16,
    /// The IMAP login; several, comma-separated, spread the clients over
    /// them in turn (a team: each agent's folders are mailboxes of its own).
    #[arg(long)]
    user: String,
    #[arg(long)]
    password: String,
    #[arg(long, default_value = "INBOX")]
    mailbox: String,
    #[arg(long)]
    to: String,
    /// IMAP clients in IDLE.
    #[arg(long, default_value_t = 20)]
    clients: usize,
    /// Messages offered per second.
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// How long mail is offered.
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Persistent SMTP sessions.
    #[arg(long, default_value_t = 8)]
    sessions: usize,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 4000)]
    size: usize,
    /// The server process, for CPU and RSS.
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value = "")]
    label: String,
}

/// What the clients and sessions share. Everything runs on one thread
/// (spawn_local), so these are cells, not locks, and no borrow is held
/// across an await.
struct Shared {
    args: Args,
    run: String,
    uid: Regex,
    uidnext: Regex,
    subject: Regex,
    /// When each message's 250 arrived, by its sequence number.
    sent_at: RefCell<HashMap<u64, Instant>>,
    /// Accept latencies (message data written -> 250), in seconds.
    accept: RefCell<Vec<f64>>,
    /// Notification latencies (250 -> EXISTS), in seconds.
    notify: RefCell<Vec<f64>>,
    seen: Cell<u64>,
    smtp_errors: Cell<u64>,
    imap_errors: Cell<u64>,
    imap_error: RefCell<Option<String>>,
    ready: Cell<usize>,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn number(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// The n of a line that ends in an IMAP literal announcement `{n}\r\n`.
fn literal_len(line: &[u8]) -> Option<usize> {
    let head = line.strip_suffix(b"}\r\n")?;
    let open = head.iter().rposition(|&b| b == b'{')?;
    let digits = &head[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

struct Imap {
    r: BufReader<TcpStream>,
    /// The line being read. read_until leaves what it has read here when the
    /// IDLE loop's select drops it (stop or the 25 s deadline), so nothing is
    /// lost: the next call goes on with the same line.
    partial: Vec<u8>,
    name: String,
    n: u64,
}

impl Imap {
    async fn line(&mut self) -> Result<Vec<u8>> {
        let n = self.r.read_until(b'\n', &mut self.partial).await?;
        if n == 0 && self.partial.is_empty() {
            bail!("closed");
        }
        Ok(std::mem::take(&mut self.partial))
    }

    async fn write(&mut self, data: &[u8]) -> Result<()> {
        self.r.get_mut().write_all(data).await?;
        Ok(())
    }

    fn next_tag(&mut self) -> String {
        self.n += 1;
        format!("{}.{}", self.name, self.n)
    }

    /// Sends a command and returns its response lines, each with the literal
    /// it announces appended (read as exactly n bytes), up to and including
    /// the tagged line; a tagged reply other than OK is an error.
    async fn cmd(&mut self, text: &str) -> Result<Vec<Vec<u8>>> {
        let tag = self.next_tag();
        self.write(format!("{tag} {text}\r\n").as_bytes()).await?;
        let tagged = format!("{tag} ");
        let mut out = Vec::new();
        loop {
            let mut line = self.line().await?;
            if let Some(n) = literal_len(&line) {
                let start = line.len();
                line.resize(start + n, 0);
                self.r.read_exact(&mut line[start..]).await?;
            }
            if line.starts_with(tagged.as_bytes()) {
                if !line[tagged.len()..].starts_with(b"OK") {
                    bail!("{}", String::from_utf8_lossy(&line));
                }
                out.push(line);
                return Ok(out);
            }
            out.push(line);
        }
    }
}

/// An untagged `* N EXISTS` (not a header line that happens to say it).
fn is_exists(line: &[u8]) -> bool {
    line.starts_with(b"* ") && line.trim_ascii_end().ends_with(b" EXISTS")
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow() || stop.has_changed().is_err()
}

async fn idle_client(sh: &Shared, idx: usize, mut stop: watch::Receiver<bool>) -> Result<()> {
    let a = &sh.args;
    let stream = TcpStream::connect((a.host.as_str(), a.imap_port)).await?;
    stream.set_nodelay(true)?;
    let mut c = Imap {
        r: BufReader::new(stream),
        partial: Vec::new(),
        name: format!("c{idx}"),
        n: 0,
    };
    c.line().await?;
    let users: Vec<&str> = a.user.split(',').collect();
    let user = users[idx % users.len()];
    c.cmd(&format!("LOGIN \"{user}\" \"{}\"", a.password))
        .await?;
    let mut uidnext: u64 = 1;
    for line in c.cmd(&format!("SELECT \"{}\"", a.mailbox)).await? {
        if let Some(n) = sh.uidnext.captures(&line).and_then(|m| number(&m[1])) {
            uidnext = n;
        }
    }
    sh.ready.set(sh.ready.get() + 1);
    while !stopped(&stop) {
        let tag = c.next_tag();
        c.write(format!("{tag} IDLE\r\n").as_bytes()).await?;
        let mut t_exists = None;
        // Out of IDLE and back at least every 25 s, EXISTS or not.
        let deadline = Instant::now() + Duration::from_secs(25);
        while !stopped(&stop) && Instant::now() < deadline {
            tokio::select! {
                line = c.line() => {
                    if contains(&line?, b"EXISTS") {
                        t_exists = Some(Instant::now());
                        break;
                    }
                }
                _ = stop.wait_for(|s| *s) => {}
                _ = sleep_until(deadline) => {}
            }
        }
        c.write(b"DONE\r\n").await?;
        let tagged = format!("{tag} ");
        loop {
            let line = c.line().await?;
            if line.starts_with(tagged.as_bytes()) {
                break;
            }
            if t_exists.is_none() && is_exists(&line) {
                t_exists = Some(Instant::now());
            }
        }
        // Like a real client, an EXISTS in any response (after DONE, or
        // one that came in the middle of the FETCH) is fetched at once,
        // not left for the next IDLE.
        while let Some(announced) = t_exists.take() {
            let lines = c
                .cmd(&format!("UID FETCH {uidnext}:* {FETCH_ITEMS}"))
                .await?;
            for line in &lines {
                if is_exists(line) {
                    t_exists.get_or_insert_with(Instant::now);
                }
                if contains(line, b" FETCH (")
                    && let Some(uid) = sh.uid.captures(line).and_then(|m| number(&m[1]))
                {
                    uidnext = uidnext.max(uid + 1);
                }
                if let Some(j) = sh.subject.captures(line).and_then(|m| number(&m[1])) {
                    sh.seen.set(sh.seen.get() + 1);
                    let t250 = sh.sent_at.borrow().get(&j).copied();
                    let latency = t250.map_or(0.0, |t| {
                        announced.saturating_duration_since(t).as_secs_f64()
                    });
                    sh.notify.borrow_mut().push(latency);
                }
            }
        }
    }
    Ok(())
}

async fn guarded_client(sh: Rc<Shared>, idx: usize, stop: watch::Receiver<bool>) {
    if let Err(e) = idle_client(&sh, idx, stop).await {
        sh.imap_errors.set(sh.imap_errors.get() + 1);
        sh.imap_error
            .borrow_mut()
            .get_or_insert_with(|| format!("{e:#}").chars().take(200).collect());
    }
}

struct Smtp {
    r: BufReader<TcpStream>,
}

impl Smtp {
    async fn connect(a: &Args) -> Result<Smtp> {
        let stream = TcpStream::connect((a.host.as_str(), a.smtp_port)).await?;
        stream.set_nodelay(true)?;
        let mut s = Smtp {
            r: BufReader::new(stream),
        };
        s.reply().await?;
        s.r.get_mut().write_all(b"EHLO team.bench\r\n").await?;
        s.reply().await?;
        Ok(s)
    }

    /// The last line of a (possibly multi-line) reply.
    async fn reply(&mut self) -> Result<Vec<u8>> {
        loop {
            let mut line = Vec::new();
            if self.r.read_until(b'\n', &mut line).await? == 0 {
                bail!("closed");
            }
            if line.get(3) != Some(&b'-') {
                return Ok(line);
            }
        }
    }

    /// One transaction; returns when the message data went out and when its
    /// 250 came back.
    async fn send(&mut self, from: &str, to: &str, msg: &[u8]) -> Result<(Instant, Instant)> {
        for command in [
            format!("MAIL FROM:<{from}>\r\n"),
            format!("RCPT TO:<{to}>\r\n"),
            "DATA\r\n".to_string(),
        ] {
            self.r.get_mut().write_all(command.as_bytes()).await?;
            let reply = self.reply().await?;
            if !matches!(reply.first(), Some(b'2' | b'3')) {
                bail!("{}", String::from_utf8_lossy(&reply));
            }
        }
        let t0 = Instant::now();
        self.r.get_mut().write_all(msg).await?;
        let reply = self.reply().await?;
        if !reply.starts_with(b"250") {
            bail!("{}", String::from_utf8_lossy(&reply));
        }
        Ok((t0, Instant::now()))
    }
}

/// The queue the pacer fills and the SMTP sessions take from: one semaphore
/// permit per queued job; closing the semaphore ends the sessions.
struct Jobs {
    queue: RefCell<VecDeque<u64>>,
    available: Semaphore,
}

impl Jobs {
    fn put(&self, j: u64) {
        self.queue.borrow_mut().push_back(j);
        self.available.add_permits(1);
    }

    async fn get(&self) -> Option<u64> {
        self.available.acquire().await.ok()?.forget();
        self.queue.borrow_mut().pop_front()
    }

    /// Drops what is still queued and ends the sessions once they finish
    /// their current message; returns how many jobs were dropped.
    fn close(&self) -> usize {
        let backlog = self.queue.borrow().len();
        self.queue.borrow_mut().clear();
        self.available.close();
        backlog
    }
}

async fn smtp_session(sh: Rc<Shared>, jobs: Rc<Jobs>) -> Result<()> {
    let a = &sh.args;
    let mut s = Smtp::connect(a).await?;
    let body = "lorem ipsum dolor sit amet ".repeat(a.size / 27 + 1);
    let body = &body[..a.size];
    while let Some(j) = jobs.get().await {
        let cust = format!("c{}@cust.test", j % 997);
        let msg = format!(
            "From: {cust}\r\nTo: {}\r\nSubject: team {} {j}\r\n\
             Message-ID: <{:032x}@team.bench>\r\n\
             Date: Thu, 03 Dec 2026 08:00:00 +0000\r\n\r\n{body}\r\n.\r\n",
            a.to,
            sh.run,
            rand::random::<u128>()
        );
        match s.send(&cust, &a.to, msg.as_bytes()).await {
            Ok((t0, now)) => {
                sh.sent_at.borrow_mut().insert(j, now);
                sh.accept.borrow_mut().push((now - t0).as_secs_f64());
            }
            Err(_) => {
                sh.smtp_errors.set(sh.smtp_errors.get() + 1);
                drop(s);
                s = Smtp::connect(a).await?;
            }
        }
    }
    let _ = s.r.get_mut().write_all(b"QUIT\r\n").await;
    Ok(())
}

/// Server CPU seconds (user + system) and VmRSS in KiB.
fn proc_cpu_rss(pid: Option<u32>) -> Result<(Option<f64>, Option<u64>)> {
    let Some(pid) = pid else {
        return Ok((None, None));
    };
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .with_context(|| format!("no ')' in {path}"))?
        .1
        .split_whitespace()
        .collect();
    let field = |i: usize| -> Result<u64> {
        let value = fields.get(i).with_context(|| format!("{path} is short"))?;
        value
            .parse()
            .with_context(|| format!("field {i} of {path}"))
    };
    let cpu = (field(11)? + field(12)?) as f64 / CLK_TCK;
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let mut rss = None;
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("VmRSS:") {
            rss = rest.split_whitespace().next().and_then(|v| v.parse().ok());
        }
    }
    Ok((Some(cpu), rss))
}

/// CPU seconds all processes spent (load generator included), from /proc/stat.
fn machine_busy_s() -> Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    let first = stat.lines().next().context("/proc/stat is empty")?;
    let cpu = first
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<Vec<u64>, _>>()
        .context("the cpu line of /proc/stat")?;
    if cpu.len() < 8 {
        bail!("the cpu line of /proc/stat is short");
    }
    let idle = cpu[3] + cpu[4];
    Ok((cpu[..8].iter().sum::<u64>() - idle) as f64 / CLK_TCK)
}

/// Python's round(x, digits): the float nearest the decimal that is nearest
/// x's exact value (ties to even).
fn round(x: f64, digits: usize) -> f64 {
    format!("{x:.digits$}").parse().unwrap_or(x)
}

/// sorted[min(n-1, int(q*n))] of seconds, in ms to 2 decimals.
fn pct(values: &[f64], q: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64) as usize).min(s.len() - 1);
    Some(round(1000.0 * s[i], 2))
}

#[derive(Serialize)]
struct Report<'a> {
    label: &'a str,
    clients: usize,
    offered_per_s: f64,
    accepted: usize,
    not_sent_backlog: usize,
    achieved_per_s: f64,
    accept_p50_ms: Option<f64>,
    accept_p99_ms: Option<f64>,
    notify_p50_ms: Option<f64>,
    notify_p99_ms: Option<f64>,
    seen_share: Option<f64>,
    smtp_errors: u64,
    imap_errors: u64,
    imap_error: Option<String>,
    server_cpu_s: Option<f64>,
    server_rss_kib: Option<u64>,
    machine_cpu_s: f64,
}

/// Writes JSON as Python's json.dumps does: ", " and ": " between items, and
/// non-ASCII characters escaped.
struct PythonStyle;

impl serde_json::ser::Formatter for PythonStyle {
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for ch in fragment.chars() {
            if ch.is_ascii() {
                writer.write_all(&[ch as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

async fn bench(args: Args) -> Result<()> {
    let run = format!("{:08x}", rand::random::<u32>());
    let sh = Rc::new(Shared {
        uid: Regex::new(r"UID ([0-9]+)")?,
        uidnext: Regex::new(r"UIDNEXT ([0-9]+)")?,
        subject: Regex::new(&format!(r"Subject: team {run} ([0-9]+)"))?,
        run,
        args,
        sent_at: RefCell::default(),
        accept: RefCell::default(),
        notify: RefCell::default(),
        seen: Cell::new(0),
        smtp_errors: Cell::new(0),
        imap_errors: Cell::new(0),
        imap_error: RefCell::default(),
        ready: Cell::new(0),
    });
    let a = &sh.args;
    let (stop, stop_rx) = watch::channel(false);

    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    for i in 0..a.clients {
        clients.push(spawn_local(guarded_client(sh.clone(), i, stop_rx.clone())));
        sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..600 {
        if sh.ready.get() + sh.imap_errors.get() as usize >= a.clients {
            break;
        }
        sleep(Duration::from_millis(100)).await;
    }
    sleep(Duration::from_secs(2)).await;

    let pid = a.pid.filter(|&pid| pid != 0);
    let (cpu0, _) = proc_cpu_rss(pid)?;
    let busy0 = machine_busy_s()?;
    let jobs = Rc::new(Jobs {
        queue: RefCell::default(),
        available: Semaphore::new(0),
    });
    let senders: Vec<_> = (0..a.sessions)
        .map(|_| spawn_local(smtp_session(sh.clone(), jobs.clone())))
        .collect();
    let t0 = Instant::now();
    let mut offered: u64 = 0;
    while t0.elapsed().as_secs_f64() < a.seconds {
        let target = (t0.elapsed().as_secs_f64() * a.rate) as u64;
        while offered < target {
            // A queue that grows means the server fell behind: the offered
            // rate stays what was asked, the achieved rate shows the rest.
            jobs.put(offered);
            offered += 1;
        }
        sleep(Duration::from_millis(2)).await;
    }
    // What the server did not take within the window is not sent late: a
    // backlog sent after the window would stretch the run and hide that the
    // rate was not sustained.
    let backlog = jobs.close();
    for sender in senders {
        match sender.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("teamgen: an SMTP session ended: {e:#}"),
            Err(e) => eprintln!("teamgen: an SMTP session failed: {e}"),
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (cpu1, rss) = proc_cpu_rss(pid)?;
    let busy1 = machine_busy_s()?;
    // The clients get a few seconds to hear of the last messages.
    sleep(Duration::from_secs(5)).await;
    stop.send_replace(true);
    // Each client now leaves IDLE (or finishes its FETCH) and ends; the
    // bound only keeps a server that stopped answering from hanging the run.
    let deadline = Instant::now() + Duration::from_secs(60);
    for client in &mut clients {
        let _ = timeout_at(deadline, client).await;
    }
    let hung = clients.iter().filter(|c| !c.is_finished()).count();
    if hung > 0 {
        eprintln!("teamgen: {hung} IMAP clients did not end within 60 s of the stop");
    }

    let accept = sh.accept.borrow();
    let notify = sh.notify.borrow();
    let accepted = accept.len();
    let report = Report {
        label: &a.label,
        clients: a.clients,
        offered_per_s: a.rate,
        accepted,
        not_sent_backlog: backlog,
        achieved_per_s: round(accepted as f64 / elapsed, 1),
        accept_p50_ms: pct(&accept, 0.5),
        accept_p99_ms: pct(&accept, 0.99),
        notify_p50_ms: pct(&notify, 0.5),
        notify_p99_ms: pct(&notify, 0.99),
        seen_share: (accepted > 0 && a.clients > 0)
            .then(|| round(sh.seen.get() as f64 / (accepted * a.clients) as f64, 3)),
        smtp_errors: sh.smtp_errors.get(),
        imap_errors: sh.imap_errors.get(),
        imap_error: sh.imap_error.borrow().clone(),
        server_cpu_s: cpu0.zip(cpu1).map(|(cpu0, cpu1)| round(cpu1 - cpu0, 1)),
        server_rss_kib: rss,
        machine_cpu_s: round(busy1 - busy0, 1),
    };
    let mut out = Vec::new();
    report.serialize(&mut serde_json::Serializer::with_formatter(
        &mut out,
        PythonStyle,
    ))?;
    println!("{}", String::from_utf8(out)?);
    Ok(())
}

// One thread on purpose (not tokio's multi-threaded runtime): on a 2-core
// machine the load generator then uses at most one core and leaves the
// other to the server. The clients and sessions are local tasks sharing
// cells, not locks.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    tokio::task::LocalSet::new().run_until(bench(args)).await
}
