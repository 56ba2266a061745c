//! An SMTP sink on blocking std sockets: accepts every message and prints it.
//! Shows that postel-session needs no async runtime.
//!
//! ```text
//! cargo run --example sink -- 127.0.0.1:2525
//! swaks --server 127.0.0.1:2525 --to you@example.org
//! ```

use std::net::TcpListener;

use postel_examples::sink_session;

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2525".into());
    let listener = TcpListener::bind(&addr)?;
    eprintln!("sink listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = stream?;
        let peer = stream.peer_addr()?;
        std::thread::spawn(move || {
            let printed = sink_session(stream, |m| {
                println!("--- message from {peer}: {} to {}", m.from, m.to.join(", "));
                println!("{}", String::from_utf8_lossy(&m.data));
            });
            if let Err(e) = printed {
                eprintln!("connection from {peer} ended: {e}");
            }
        });
    }
    Ok(())
}
