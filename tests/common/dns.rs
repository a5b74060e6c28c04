//! A real DNS server for the tests, on 127.0.0.1 and an ephemeral UDP port,
//! answering from a table: the SPF, DMARC and DKIM TXT records and A
//! records that mail-auth's resolver asks for. No mocks: postdesk resolves
//! through its configured `[smtp] dns_servers` as it would in production.

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

#[derive(Debug, Clone)]
enum Entry {
    Txt(String),
    A(Ipv4Addr),
}

/// The server; it stops when dropped.
pub struct DnsStub {
    pub addr: SocketAddr,
    table: Arc<Mutex<Vec<(String, Entry)>>>,
    queries: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsStub {
    /// A server that answers from its table (empty at first).
    pub async fn start() -> DnsStub {
        Self::bind(true).await
    }

    /// A server that reads every query and never answers: a resolver
    /// pointed at it times out.
    pub async fn silent() -> DnsStub {
        Self::bind(false).await
    }

    async fn bind(answers: bool) -> DnsStub {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind dns");
        let addr = socket.local_addr().expect("dns addr");
        let table: Arc<Mutex<Vec<(String, Entry)>>> = Arc::default();
        let queries: Arc<Mutex<Vec<String>>> = Arc::default();
        let (t, q) = (table.clone(), queries.clone());
        let task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 4096];
            loop {
                let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
                    return;
                };
                let Ok(query) = Message::from_vec(&buffer[..len]) else {
                    continue;
                };
                if let Some(question) = query.queries.first() {
                    q.lock().expect("queries").push(format!(
                        "{} {}",
                        key(&question.name.to_ascii()),
                        question.query_type
                    ));
                }
                if !answers {
                    continue;
                }
                let response = answer(&query, &t.lock().expect("table"));
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        DnsStub {
            addr,
            table,
            queries,
            task,
        }
    }

    pub fn txt(&self, name: &str, text: &str) -> &Self {
        self.table
            .lock()
            .expect("table")
            .push((key(name), Entry::Txt(text.to_string())));
        self
    }

    pub fn a(&self, name: &str, ip: Ipv4Addr) -> &Self {
        self.table
            .lock()
            .expect("table")
            .push((key(name), Entry::A(ip)));
        self
    }

    /// The questions asked so far ("name TYPE").
    pub fn queries(&self) -> Vec<String> {
        self.queries.lock().expect("queries").clone()
    }
}

/// The answer to a query from the table: the records of that name and
/// type; none (NOERROR) when the name has records of other types only;
/// NXDOMAIN when it has none at all.
fn answer(query: &Message, table: &[(String, Entry)]) -> Message {
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.message_type = MessageType::Response;
    response.metadata.authoritative = true;
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    let Some(question) = query.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    response.add_queries(query.queries.iter().cloned());
    let name = key(&question.name.to_ascii());
    let known: Vec<&Entry> = table
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, e)| e)
        .collect();
    if known.is_empty() {
        response.metadata.response_code = ResponseCode::NXDomain;
        return response;
    }
    let owner: Name = question.name.clone();
    for entry in known {
        let rdata = match (entry, question.query_type) {
            (Entry::Txt(text), RecordType::TXT) => {
                // A TXT string holds at most 255 bytes: longer records
                // (RSA keys) are split, as in real zones.
                let chunks = text
                    .as_bytes()
                    .chunks(255)
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect();
                RData::TXT(TXT::new(chunks))
            }
            (Entry::A(ip), RecordType::A) => RData::A(A(*ip)),
            _ => continue,
        };
        response.add_answer(Record::from_rdata(owner.clone(), 60, rdata));
    }
    response
}
