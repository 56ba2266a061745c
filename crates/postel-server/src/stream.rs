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

    /// Waits until a read would find something (for a plaintext socket;
    /// the others may hold read data of their own, so they are ready at
    /// once), so that an idle connection need not hold a read buffer.
    pub(crate) async fn readable(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.readable().await,
            Stream::Unix(s) => s.readable().await,
            Stream::Tls(_) | Stream::Gone => Ok(()),
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
