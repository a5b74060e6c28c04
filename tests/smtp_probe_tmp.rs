mod common;
use common::*;
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_line() {
    let server = TestServer::start(&Backend::Sqlite).await;
    let (mut c, g) = SmtpClient::connect(server.smtp()).await;
    assert_eq!(g.code, 220);
    c.send_raw(b"NO").await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    c.send_raw(b"OP\r\n").await;
    let r = tokio::time::timeout(std::time::Duration::from_secs(5), c.reply()).await;
    println!("reply: {r:?}");
    assert!(r.is_ok(), "no reply to a command split across two reads");
}
