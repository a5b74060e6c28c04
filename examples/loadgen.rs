//! SMTP load generator: N concurrent senders deliver M messages of a given
//! size to a postdesk (or any SMTP server), half of them new tickets and
//! half replies to earlier messages, and report messages/s and accept
//! latency (end of DATA → 250, which postdesk sends after the commit).
//!
//! ```text
//! cargo run --release --example loadgen -- --addr 127.0.0.1:2525 \
//!     --to support@localhost --senders 32 --messages 20000 --size 10240
//! ```

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser, Clone)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2525")]
    addr: SocketAddr,
    #[arg(long, default_value = "support@localhost")]
    to: String,
    /// Concurrent SMTP sessions.
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Messages in all.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// Approximate message size in bytes.
    #[arg(long, default_value_t = 10240)]
    size: usize,
    /// Share of messages that reply to an earlier message (0..1).
    #[arg(long, default_value_t = 0.5)]
    reply_ratio: f64,
    /// Messages offered per second in all (spread over the senders); 0:
    /// as fast as the server accepts.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

struct Client {
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let stream = TcpStream::connect(addr).await.context("connect")?;
        stream.set_nodelay(true)?;
        let mut client = Client {
            stream: BufReader::new(stream),
        };
        client.expect(220).await?;
        client
            .stream
            .get_mut()
            .write_all(b"EHLO loadgen.test\r\n")
            .await?;
        client.expect(250).await?;
        Ok(client)
    }

    async fn expect(&mut self, code: u16) -> Result<()> {
        loop {
            let mut line = String::new();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("server closed the connection");
            }
            if !line.starts_with(&code.to_string()) {
                bail!("expected {code}, got {}", line.trim_end());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(());
            }
        }
    }

    /// One transaction, MAIL/RCPT/DATA pipelined; returns the accept latency.
    async fn send(&mut self, from: &str, to: &str, body: &[u8]) -> Result<Duration> {
        let head = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
        self.stream.get_mut().write_all(head.as_bytes()).await?;
        self.expect(250).await?;
        self.expect(250).await?;
        self.expect(354).await?;
        self.stream.get_mut().write_all(body).await?;
        let start = Instant::now();
        self.stream.get_mut().write_all(b".\r\n").await?;
        self.expect(250).await?;
        Ok(start.elapsed())
    }
}

fn body(sender: usize, n: usize, size: usize, parent: Option<&str>, run: u64) -> (String, Vec<u8>) {
    let id = format!("load.{run:x}.{sender}.{n}@loadgen.test");
    // Every message from its own customer address, so that new tickets are
    // acknowledged as in real traffic (the per-sender limit does not mute them).
    let mut text = format!(
        "From: Customer {sender}.{n} <customer{sender}.{n}@loadgen.test>\r\nTo: support\r\n\
         Subject: {}Problem {n} of customer {sender}\r\nMessage-ID: <{id}>\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n",
        if parent.is_some() { "Re: " } else { "" }
    );
    if let Some(parent) = parent {
        text.push_str(&format!(
            "In-Reply-To: <{parent}>\r\nReferences: <{parent}>\r\n"
        ));
    }
    text.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    let line = "The VPN connection drops every thirty minutes; logs attached below.\r\n";
    while text.len() < size {
        text.push_str(line);
    }
    (id, text.into_bytes())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let run: u64 = rand::random();
    let per_sender = args.messages.div_ceil(args.senders);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for sender in 0..args.senders {
        let args = args.clone();
        let count = per_sender.min(args.messages.saturating_sub(sender * per_sender));
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(args.addr).await?;
            let mut latencies = Vec::with_capacity(count);
            let mut previous: Vec<String> = Vec::new();
            // Each sender offers its share of the rate on a fixed schedule
            // (a slow answer is caught up on, not added to the schedule).
            let pace =
                (args.rate > 0.0).then(|| Duration::from_secs_f64(args.senders as f64 / args.rate));
            for n in 0..count {
                if let Some(pace) = pace {
                    tokio::time::sleep_until((started + pace * n as u32).into()).await;
                }
                let reply = !previous.is_empty() && rand::random::<f64>() < args.reply_ratio;
                let parent = reply.then(|| previous[rand::random_range(0..previous.len())].clone());
                let (id, data) = body(sender, n, args.size, parent.as_deref(), run);
                let from = format!("customer{sender}.{n}@loadgen.test");
                latencies.push(client.send(&from, &args.to, &data).await?);
                previous.push(id);
            }
            client.stream.get_mut().write_all(b"QUIT\r\n").await?;
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    if args.json {
        println!(
            "{{\"senders\":{},\"messages\":{},\"size\":{},\"seconds\":{:.3},\"per_second\":{:.1},\"p50_ms\":{:.2},\"p99_ms\":{:.2}}}",
            args.senders,
            latencies.len(),
            args.size,
            elapsed.as_secs_f64(),
            rate,
            pick(0.5),
            pick(0.99)
        );
    } else {
        println!(
            "{} messages of {} bytes from {} senders in {:.2} s: {:.0} messages/s; accept latency p50 {:.2} ms, p99 {:.2} ms",
            latencies.len(),
            args.size,
            args.senders,
            elapsed.as_secs_f64(),
            rate,
            pick(0.5),
            pick(0.99)
        );
    }
    Ok(())
}
