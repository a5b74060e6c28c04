//! A byte-level IMAP client for tests: sends exactly what the test says and
//! returns responses with their literals, so tests can check bytes.

use super::TestServer;
use postdesk::domain::permission::AgentRole;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long a test waits for any one response line.
const WAIT: Duration = Duration::from_secs(20);

/// One response line with the literals it carried, in order.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub literals: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct Response {
    pub untagged: Vec<Line>,
    pub tagged: String,
}

impl Response {
    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }

    pub fn status(&self) -> &str {
        self.tagged.split(' ').nth(1).unwrap_or("")
    }

    /// Untagged lines starting with `* {prefix}` (e.g. "LIST", "SEARCH").
    pub fn lines(&self, prefix: &str) -> Vec<&Line> {
        self.untagged
            .iter()
            .filter(|l| l.text.starts_with(&format!("* {prefix}")))
            .collect()
    }

    /// Untagged FETCH lines.
    pub fn fetches(&self) -> Vec<&Line> {
        self.untagged
            .iter()
            .filter(|l| l.text.contains(" FETCH ("))
            .collect()
    }

    pub fn all_text(&self) -> String {
        let mut text: Vec<&str> = self.untagged.iter().map(|l| l.text.as_str()).collect();
        text.push(&self.tagged);
        text.join("\n")
    }
}

pub struct ImapClient {
    stream: BufReader<TcpStream>,
    next_tag: u32,
}

impl ImapClient {
    pub async fn connect(addr: SocketAddr) -> (ImapClient, Line) {
        let stream = TcpStream::connect(addr).await.expect("connect imap");
        Self::over(stream).await
    }

    /// Connects from another loopback address (127.0.0.0/8 is all
    /// loopback): a second client machine, as the server sees it.
    pub async fn connect_from(source: std::net::Ipv4Addr, addr: SocketAddr) -> (ImapClient, Line) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(SocketAddr::from((source, 0)))
            .expect("bind the source address");
        let stream = socket.connect(addr).await.expect("connect imap");
        Self::over(stream).await
    }

    async fn over(stream: TcpStream) -> (ImapClient, Line) {
        let mut client = ImapClient {
            stream: BufReader::new(stream),
            next_tag: 1,
        };
        let greeting = client.read_line().await;
        (client, greeting)
    }

    /// Connects and logs in.
    pub async fn login(addr: SocketAddr, user: &str, password: &str) -> ImapClient {
        let (mut client, greeting) = Self::connect(addr).await;
        assert!(greeting.text.starts_with("* OK"), "{greeting:?}");
        let r = client.cmd(&format!("LOGIN {user} {password}")).await;
        assert!(r.ok(), "login: {}", r.all_text());
        client
    }

    /// The connection itself, for tests that speak bytes from here on.
    pub fn into_stream(self) -> TcpStream {
        self.stream.into_inner()
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.get_mut().write_all(bytes).await.expect("write");
    }

    /// Reads one response line, with the literals announced at its ends.
    pub async fn read_line(&mut self) -> Line {
        let mut text = Vec::new();
        let mut literals = Vec::new();
        loop {
            let mut chunk = Vec::new();
            let n = tokio::time::timeout(WAIT, self.stream.read_until(b'\n', &mut chunk))
                .await
                .expect("response in time")
                .expect("read");
            assert!(
                n > 0,
                "connection closed; so far: {}",
                String::from_utf8_lossy(&text)
            );
            let line = chunk.strip_suffix(b"\r\n").unwrap_or(&chunk);
            // A literal announcement `{n}` at the end continues the line.
            if line.ends_with(b"}")
                && let Some(open) = line.iter().rposition(|b| *b == b'{')
                && let Ok(size) = std::str::from_utf8(&line[open + 1..line.len() - 1])
                    .unwrap_or("x")
                    .parse::<usize>()
            {
                text.extend_from_slice(&line[..open]);
                text.extend_from_slice(format!("{{{size}}}").as_bytes());
                let mut literal = vec![0; size];
                tokio::time::timeout(WAIT, self.stream.read_exact(&mut literal))
                    .await
                    .expect("literal in time")
                    .expect("read literal");
                literals.push(literal);
                continue;
            }
            text.extend_from_slice(line);
            return Line {
                text: String::from_utf8_lossy(&text).into_owned(),
                literals,
            };
        }
    }

    pub fn tag(&mut self) -> String {
        let tag = format!("t{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    /// Sends `TAG command` and reads until the tagged response.
    pub async fn cmd(&mut self, command: &str) -> Response {
        let tag = self.tag();
        self.send_raw(format!("{tag} {command}\r\n").as_bytes())
            .await;
        self.read_until_tagged(&tag).await
    }

    pub async fn read_until_tagged(&mut self, tag: &str) -> Response {
        let mut untagged = Vec::new();
        loop {
            let line = self.read_line().await;
            if line.text.starts_with(&format!("{tag} ")) {
                return Response {
                    untagged,
                    tagged: line.text,
                };
            }
            untagged.push(line);
        }
    }

    /// The UIDs of the selected mailbox, in sequence order.
    pub async fn uids(&mut self) -> Vec<u32> {
        self.cmd("FETCH 1:* UID")
            .await
            .fetches()
            .iter()
            .map(|l| uid_of(l))
            .collect()
    }

    /// APPEND with a synchronizing literal (waits for the continuation).
    pub async fn append(&mut self, mailbox: &str, flags: &str, message: &[u8]) -> Response {
        let tag = self.tag();
        self.send_raw(
            format!(
                "{tag} APPEND \"{mailbox}\" ({flags}) {{{}}}\r\n",
                message.len()
            )
            .as_bytes(),
        )
        .await;
        let cont = self.read_line().await;
        if !cont.text.starts_with('+') {
            return Response {
                untagged: Vec::new(),
                tagged: cont.text,
            };
        }
        self.send_raw(message).await;
        self.send_raw(b"\r\n").await;
        self.read_until_tagged(&tag).await
    }
}

/// Adds an agent with password "secret" who may see `queues`.
pub async fn add_agent(server: &TestServer, email: &str, queues: &[&str], admin: bool) {
    let role = if admin {
        AgentRole::Admin
    } else {
        AgentRole::Agent
    };
    add_agent_as(server, email, queues, role).await;
}

/// Adds an agent with password "secret", a role and `queues`.
pub async fn add_agent_as(server: &TestServer, email: &str, queues: &[&str], role: AgentRole) {
    let store = server.store();
    let all = store.queues().await.expect("queues");
    let theirs: Vec<_> = all
        .into_iter()
        .filter(|q| queues.contains(&q.name.as_str()))
        .collect();
    let hash = postdesk::passwords::hash("secret").expect("hash");
    store
        .add_agent(
            email,
            email.split('@').next().unwrap_or(email),
            &hash,
            role,
            &theirs,
        )
        .await
        .expect("add agent");
}

/// The sequence numbers or UIDs of a `* SEARCH` response.
pub fn search_numbers(response: &Response) -> Vec<u32> {
    response
        .lines("SEARCH")
        .first()
        .map(|l| {
            l.text
                .trim_start_matches("* SEARCH")
                .split(' ')
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `UID n` of a FETCH line.
pub fn uid_of(line: &Line) -> u32 {
    let text = &line.text;
    let at = text
        .find("UID ")
        .unwrap_or_else(|| panic!("no UID in {text}"));
    text[at + 4..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad UID in {text}"))
}

/// Waits (bounded) until `check` holds for the response of `command`.
pub async fn eventually(
    client: &mut ImapClient,
    command: &str,
    check: impl Fn(&Response) -> bool,
) -> Response {
    for _ in 0..50 {
        let r = client.cmd(command).await;
        if check(&r) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition never held for {command}");
}
