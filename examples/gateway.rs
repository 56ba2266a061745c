//! A small SMTP gateway on tokio: accepts mail only for recipients a rule
//! allows (here: the domain `example.org`, and never the local part
//! `blocked`), and reports each message. Shows postel-session under an async
//! runtime, with the recipient decision made in async code.
//!
//! ```text
//! cargo run --example gateway -- 127.0.0.1:2526
//! ```

use postel_proto::types::{Domain, EnhancedStatus, ForwardPath, Host, Reply, ReplyCode};
use postel_session::server::{Event, Server, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The rule, as an async function: a real gateway would ask a database here.
async fn allowed(to: &ForwardPath<'_>) -> bool {
    tokio::task::yield_now().await;
    match to {
        ForwardPath::Postmaster => true,
        ForwardPath::Mailbox(m) => {
            let domain_ok = matches!(m.host(), Host::Domain(d) if d.as_str().eq_ignore_ascii_case("example.org"));
            domain_ok && m.local_part().as_str() != "blocked"
        }
    }
}

fn refusal() -> Reply<'static> {
    let code = ReplyCode::try_from(550).unwrap_or(ReplyCode::OK);
    Reply::new(
        code,
        EnhancedStatus::new(5, 7, 1),
        "Recipient not allowed here",
    )
    .unwrap_or(Reply::OK)
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let config =
        ServerConfig::new(Domain::try_from("gateway.localhost").map_err(std::io::Error::other)?);
    let mut server = Server::new(config);
    let mut buf = vec![0u8; 16 * 1024];
    let mut size = 0usize;
    loop {
        stream.write_all(&server.transmit()).await?;
        if server.is_closed() {
            return Ok(());
        }
        let timeout = server
            .timeout()
            .unwrap_or(std::time::Duration::from_secs(300));
        let read = tokio::time::timeout(timeout, stream.read(&mut buf)).await;
        let Ok(read) = read else {
            // The client went quiet for longer than RFC 5321 allows.
            server.shutdown();
            stream.write_all(&server.transmit()).await?;
            return Ok(());
        };
        let n = read?;
        if n == 0 {
            return Ok(());
        }
        server.receive(&buf[..n]);
        while let Some(event) = server.poll() {
            let misuse = |e: String| std::io::Error::other(e);
            match event {
                Event::Mail(m) => m.accept(&mut server).map_err(|e| misuse(e.to_string()))?,
                Event::Rcpt(r) => {
                    if allowed(&r.to).await {
                        r.accept(&mut server).map_err(|e| misuse(e.to_string()))?;
                    } else {
                        println!("refused recipient {}", r.to);
                        r.reject(&mut server, refusal())
                            .map_err(|e| misuse(e.to_string()))?;
                    }
                }
                Event::Body(data) => size += data.len(),
                Event::Message(m) => {
                    println!(
                        "accepted a message of {size} octets for {} recipients",
                        m.recipients
                    );
                    size = 0;
                    m.accept(&mut server).map_err(|e| misuse(e.to_string()))?;
                }
                _ => {}
            }
        }
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2526".into());
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("gateway listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            if let Err(e) = serve(stream).await {
                eprintln!("connection ended: {e}");
            }
        });
    }
}
