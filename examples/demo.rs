//! Mails a small, realistic support conversation into a running postdesk,
//! so that `postdesk ticket list` has something to show:
//!
//! ```text
//! cargo run --release -- serve &
//! cargo run --release --example demo -- --addr 127.0.0.1:2525 --to support@localhost
//! cargo run --release -- ticket list
//! ```
//!
//! It sends, over plain SMTP: a new problem, the customer's
//! follow-up (In-Reply-To), a colleague in Cc answering with the ticket tag,
//! a stranger quoting that tag (a new, linked ticket), a reply to the
//! ticket's plus-address, and a newsletter (no acknowledgement).

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:2525")]
    addr: SocketAddr,
    /// A queue address of the server.
    #[arg(long, default_value = "support@localhost")]
    to: String,
}

/// Sends one message; returns the server's final reply line.
async fn send(addr: SocketAddr, from: &str, to: &str, message: &str) -> Result<String> {
    let stream = TcpStream::connect(addr).await.context("connect")?;
    let mut stream = BufReader::new(stream);
    let expect = async |stream: &mut BufReader<TcpStream>, code: &str| -> Result<String> {
        loop {
            let mut line = String::new();
            if stream.read_line(&mut line).await? == 0 {
                bail!("connection closed");
            }
            if !line.starts_with(code) {
                bail!("expected {code}, got {}", line.trim_end());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.trim_end().to_string());
            }
        }
    };
    expect(&mut stream, "220").await?;
    for (command, code) in [
        ("EHLO demo.example".to_string(), "250"),
        (format!("MAIL FROM:<{from}>"), "250"),
        (format!("RCPT TO:<{to}>"), "250"),
        ("DATA".to_string(), "354"),
    ] {
        stream
            .get_mut()
            .write_all(format!("{command}\r\n").as_bytes())
            .await?;
        expect(&mut stream, code).await?;
    }
    let body = message.replace('\n', "\r\n").replace("\r\n.", "\r\n..");
    stream.get_mut().write_all(body.as_bytes()).await?;
    stream.get_mut().write_all(b"\r\n.\r\n").await?;
    let accepted = expect(&mut stream, "250").await?;
    stream.get_mut().write_all(b"QUIT\r\n").await?;
    Ok(accepted)
}

fn ticket_number(reply: &str) -> Option<u64> {
    reply.rsplit('#').next()?.trim().parse().ok()
}

#[tokio::main]
async fn main() -> Result<()> {
    let Args { addr, to } = Args::parse();
    let (local, domain) = to.split_once('@').context("--to must be an address")?;
    let run: u32 = rand::random();
    let date = chrono::Utc::now().to_rfc2822();
    let id = |n: u32| format!("demo.{run:08x}.{n}@customer.example");

    let first = format!(
        "From: Alice Example <alice@customer.example>\nTo: {to}\nCc: Bob Example <bob@customer.example>\n\
         Subject: VPN drops every 30 minutes\nMessage-ID: <{}>\nDate: {date}\n\n\
         Hello,\n\nsince Monday our VPN connection drops every 30 minutes.\n\nAlice\n",
        id(1)
    );
    let reply = send(addr, "alice@customer.example", &to, &first).await?;
    println!("new problem             -> {reply}");
    let ticket = ticket_number(&reply).context("no ticket number in the reply")?;

    let follow_up = format!(
        "From: alice@customer.example\nTo: {to}\nSubject: Re: VPN drops every 30 minutes\n\
         Message-ID: <{}>\nIn-Reply-To: <{}>\nReferences: <{}>\nDate: {date}\n\n\
         It happened again at 10:30, log attached below.\n",
        id(2),
        id(1),
        id(1)
    );
    println!(
        "customer follow-up      -> {}",
        send(addr, "alice@customer.example", &to, &follow_up).await?
    );

    let colleague = format!(
        "From: bob@customer.example\nTo: {to}\nSubject: Re: [#{ticket}] VPN drops every 30 minutes\n\
         Message-ID: <{}>\nDate: {date}\n\nSame here, on the Berlin office network.\n",
        id(3)
    );
    println!(
        "colleague with the tag  -> {}",
        send(addr, "bob@customer.example", &to, &colleague).await?
    );

    let stranger = format!(
        "From: mallory@elsewhere.example\nTo: {to}\nSubject: Re: [#{ticket}] VPN drops every 30 minutes\n\
         Message-ID: <{}>\nDate: {date}\n\nI have this problem too, can you help me?\n",
        id(4)
    );
    println!(
        "stranger with the tag   -> {} (new, linked)",
        send(addr, "mallory@elsewhere.example", &to, &stranger).await?
    );

    let plus = format!("{local}+{ticket}@{domain}");
    let by_plus = format!(
        "From: alice@customer.example\nTo: {plus}\nSubject: one more thing\nMessage-ID: <{}>\nDate: {date}\n\n\
         We use the 4.2 client, if that matters.\n",
        id(5)
    );
    println!(
        "reply to {plus:<14} -> {}",
        send(addr, "alice@customer.example", &plus, &by_plus).await?
    );

    let newsletter = format!(
        "From: news@vendor.example\nTo: {to}\nSubject: Our autumn newsletter\nMessage-ID: <{}>\n\
         Date: {date}\nPrecedence: bulk\nList-Id: <news.vendor.example>\n\nTen tips for a faster VPN.\n",
        id(6)
    );
    println!(
        "newsletter (no ack)     -> {}",
        send(addr, "news@vendor.example", &to, &newsletter).await?
    );
    println!("\nNow try: postdesk ticket list && postdesk ticket show {ticket}");
    Ok(())
}
