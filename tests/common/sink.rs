//! A real SMTP sink for outbound tests: records what postdesk delivers,
//! answers each message with the next code of a script, and can forward
//! accepted mail (rewritten) to another server, as a relay would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: Vec<u8>,
    /// The reply code the sink gave it.
    pub code: u16,
}

pub type Rewrite = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

#[derive(Clone)]
pub struct Sink {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<Received>>>,
}

impl Sink {
    /// `script`: reply codes for the 1st, 2nd, … message (250 after it ends).
    pub async fn start(script: Vec<u16>, forward: Option<(SocketAddr, Rewrite)>) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.into_iter()));
        let log = received.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let log = log.clone();
                let script = script.clone();
                let forward = forward.clone();
                tokio::spawn(async move {
                    let _ = session(socket, log, script, forward).await;
                });
            }
        });
        Sink { addr, received }
    }

    pub fn messages(&self) -> Vec<Received> {
        self.received.lock().expect("sink log").clone()
    }

    pub fn accepted(&self) -> Vec<Received> {
        self.messages()
            .into_iter()
            .filter(|m| m.code == 250)
            .collect()
    }
}

async fn session(
    socket: tokio::net::TcpStream,
    log: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<std::vec::IntoIter<u16>>>,
    forward: Option<(SocketAddr, Rewrite)>,
) -> std::io::Result<()> {
    let mut stream = BufReader::new(socket);
    stream
        .get_mut()
        .write_all(b"220 sink.test ESMTP\r\n")
        .await?;
    let (mut from, mut rcpt) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-sink.test\r\n250-8BITMIME\r\n250 PIPELINING\r\n".into()
        } else if upper.starts_with("HELO")
            || upper.starts_with("RSET")
            || upper.starts_with("NOOP")
        {
            from.clear();
            rcpt.clear();
            "250 OK\r\n".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line);
            "250 OK\r\n".into()
        } else if upper.starts_with("RCPT TO:") {
            rcpt.push(address(&line));
            "250 OK\r\n".into()
        } else if upper.starts_with("DATA") {
            stream.get_mut().write_all(b"354 go ahead\r\n").await?;
            let data = read_data(&mut stream).await?;
            let code = script.lock().expect("script").next().unwrap_or(250);
            log.lock().expect("log").push(Received {
                mail_from: from.clone(),
                rcpt_to: rcpt.clone(),
                data: data.clone(),
                code,
            });
            if code == 250
                && let Some((target, rewrite)) = &forward
            {
                let rewritten = rewrite(&data);
                let to = rcpt.clone();
                let target = *target;
                let from = from.clone();
                tokio::spawn(async move {
                    let to: Vec<&str> = to.iter().map(String::as_str).collect();
                    let _ = super::deliver(target, &from, &to, &rewritten).await;
                });
            }
            match code {
                250 => "250 2.0.0 queued\r\n".into(),
                c if c >= 500 => format!("{c} 5.1.1 mailbox unavailable\r\n"),
                c => format!("{c} 4.3.0 try again later\r\n"),
            }
        } else if upper.starts_with("QUIT") {
            stream.get_mut().write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            "502 not here\r\n".into()
        };
        stream.get_mut().write_all(reply.as_bytes()).await?;
    }
}

fn address(line: &str) -> String {
    let start = line.find('<').map(|i| i + 1).unwrap_or(0);
    let end = line[start..]
        .find('>')
        .map(|i| start + i)
        .unwrap_or(line.len());
    line[start..end].to_string()
}

async fn read_data(stream: &mut BufReader<tokio::net::TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\n") {
            if stream.read(&mut byte).await? == 0 {
                return Ok(data);
            }
            line.push(byte[0]);
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        if line.starts_with(b"..") {
            line.remove(0);
        }
        data.extend_from_slice(&line);
    }
}
