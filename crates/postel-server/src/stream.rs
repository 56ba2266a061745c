//! A connection that starts in plaintext and may turn into TLS.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Anything a TLS session can be read from and written to.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The connection.
pub(crate) enum Stream {
    /// Plaintext.
    Plain(TcpStream),
    /// After a TLS handshake.
    Tls(Box<dyn Io>),
    /// A Unix domain socket, such as a local LMTP server's.
    Unix(tokio::net::UnixStream),
    /// During a handshake that failed.
    Gone,
}

/// How long a single write may take (RFC 5321 section 4.5.3.2 gives each
/// step minutes; a peer that reads nothing for that long is gone).
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(300);

/// The most read from a peer at once.
pub(crate) const READ_BUFFER: usize = 64 * 1024;

thread_local! {
    /// The read buffer of the connections a thread serves: a read and the
    /// hand-over of what it read happen without a yield between them, so
    /// one buffer per thread serves them all.
    static SHARED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One read into the thread's buffer, handed to `hand`.
fn shared_read(
    buf: &mut Vec<u8>,
    read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    hand: &mut dyn FnMut(&[u8]),
) -> std::io::Result<usize> {
    if buf.len() < READ_BUFFER {
        buf.resize(READ_BUFFER, 0);
    }
    let n = read(buf)?;
    hand(buf.get(..n).unwrap_or_default());
    Ok(n)
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotConnected, "connection closed")
}

impl Stream {
    /// Reads what is there, at most `buf.len()` octets; 0 at end of stream.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf).await,
            Stream::Tls(s) => s.read(buf).await,
            Stream::Unix(s) => s.read(buf).await,
            Stream::Gone => Err(gone()),
        }
    }

    /// Reads what is there into the spare capacity of `buf`, which is not
    /// zeroed first; the count read, 0 at end of stream.
    pub(crate) async fn read_buf(&mut self, buf: &mut Vec<u8>) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
            Stream::Unix(s) => s.read_buf(buf).await,
            Stream::Gone => Err(gone()),
        }
    }

    /// Reads what is there and hands it to `take`; the count read, 0 at end
    /// of stream. A socket is read into a buffer its thread shares with
    /// every other connection it serves, so neither an idle connection nor
    /// a read costs an allocation; a TLS session, which may hold decrypted
    /// octets of its own, is read into `own`, grown for the read and let go
    /// again after one that did not fill it.
    pub(crate) async fn read_with(
        &mut self,
        own: &mut Vec<u8>,
        take: impl FnOnce(&[u8]),
    ) -> std::io::Result<usize> {
        let mut take = Some(take);
        let mut hand = |data: &[u8]| {
            if let Some(take) = take.take() {
                take(data);
            }
        };
        // TCP and Unix sockets have the same two methods but no trait in
        // common: one loop for both.
        macro_rules! from_socket {
            ($s:expr) => {
                loop {
                    $s.readable().await?;
                    match SHARED
                        .with_borrow_mut(|buf| shared_read(buf, |b| $s.try_read(b), &mut hand))
                    {
                        // Readiness can be spurious: wait again.
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        other => return other,
                    }
                }
            };
        }
        match self {
            Stream::Plain(s) => from_socket!(s),
            Stream::Unix(s) => from_socket!(s),
            Stream::Tls(_) | Stream::Gone => {
                own.clear();
                own.reserve_exact(READ_BUFFER);
                let n = self.read_buf(own).await?;
                hand(own.get(..n).unwrap_or_default());
                if n < READ_BUFFER {
                    *own = Vec::new();
                }
                Ok(n)
            }
        }
    }

    /// Writes all of `data` and flushes, within [`WRITE_TIMEOUT`].
    pub(crate) async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let write = async {
            match self {
                Stream::Plain(s) => s.write_all(data).await,
                Stream::Unix(s) => s.write_all(data).await,
                Stream::Tls(s) => {
                    s.write_all(data).await?;
                    s.flush().await
                }
                Stream::Gone => Err(gone()),
            }
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))?
    }

    /// Takes the plaintext socket for a handshake.
    pub(crate) fn take_plain(&mut self) -> Option<TcpStream> {
        match std::mem::replace(self, Stream::Gone) {
            Stream::Plain(s) => Some(s),
            other => {
                *self = other;
                None
            }
        }
    }

    /// Closes the writing side, politely.
    pub(crate) async fn shutdown(&mut self) {
        let _ = match self {
            Stream::Plain(s) => s.shutdown().await,
            Stream::Tls(s) => s.shutdown().await,
            Stream::Unix(s) => s.shutdown().await,
            Stream::Gone => Ok(()),
        };
    }
}
