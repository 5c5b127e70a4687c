//! One election connection (spec §2): dialling (connect timeout, the preamble
//! in one write), accepting (the preamble read under a timeout), and framed
//! send/receive with every cap of §2 enforced on input.
//!
//! With quorum TLS the handshake is part of the dial: TCP connect, TLS
//! handshake and preamble happen within one timeout, or the socket is
//! closed. A member stalls its election accepts for seconds on a socket
//! that sends nothing, so no election socket is ever left silent.
//!
//! This is the primitive both the voting mesh ([`super::Mesh`]) and the
//! sidecar's watcher build on. It decides nothing about which connection
//! survives (§2.3) or what to send; it only moves checked frames.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::tls::{Connector, HandshakeError, TlsError};
use crate::sasl::{Credentials, DigestMd5, SaslError};

use crate::wire::{
    AuthPacket, AuthStatus, DecodeError, ElectionAddress, EncodeError, MAX_ADDRESS_LEN,
    Notification, Preamble, frame, split_frame,
};

/// ZooKeeper's default TCP connect timeout (`zookeeper.cnxTimeout`, §2.8).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest preamble a member accepts: version, sid, length, address.
pub const MAX_PREAMBLE_LEN: usize = 20 + MAX_ADDRESS_LEN;

/// Why a connection could not be made or was closed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("resolving {address}: {source}")]
    Resolve {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("{address} resolves to no address")]
    NoAddress { address: String },
    #[error("connecting to {address} timed out after {timeout:?}")]
    ConnectTimeout { address: String, timeout: Duration },
    #[error("connecting to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error("the TLS handshake with {address} failed: {source}")]
    Handshake {
        address: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "{address} accepted the connection but did not finish the TLS handshake or SASL exchange within {timeout:?}"
    )]
    HandshakeTimeout { address: String, timeout: Duration },
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("quorum SASL with {address}: {reason}")]
    Sasl { address: String, reason: String },
    #[error("no complete preamble within {0:?}")]
    PreambleTimeout(Duration),
    #[error("refusing to send: {0}")]
    Encode(#[from] EncodeError),
    #[error("the peer sent bytes a member would reject: {0}")]
    Protocol(#[from] DecodeError),
    #[error("the peer closed the connection")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

impl TransportError {
    /// A bounded name for metric labels and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            TransportError::Resolve { .. } | TransportError::NoAddress { .. } => "resolve",
            TransportError::ConnectTimeout { .. } => "connect_timeout",
            TransportError::Connect { source, .. }
                if source.kind() == io::ErrorKind::ConnectionRefused =>
            {
                "connection_refused"
            }
            TransportError::Connect { .. } => "connect",
            TransportError::Handshake { .. } => "tls_handshake",
            TransportError::HandshakeTimeout { .. } => "handshake_timeout",
            TransportError::Tls(_) => "tls_config",
            TransportError::Sasl { .. } => "sasl",
            TransportError::PreambleTimeout(_) => "preamble_timeout",
            TransportError::Encode(_) => "encode",
            TransportError::Protocol(e) => e.reason(),
            TransportError::Closed => "closed",
            TransportError::Io(_) => "io",
        }
    }
}

/// What a dial speaks besides plain TCP: TLS, and quorum SASL after the
/// preamble ([`Security::PLAIN`]: neither).
#[derive(Debug, Clone)]
pub struct Security {
    pub tls: Option<Connector>,
    pub sasl: Option<Credentials>,
}

impl Security {
    /// Plain TCP, no exchange.
    pub const PLAIN: Security = Security {
        tls: None,
        sasl: None,
    };
}

/// Connects to `to`, shakes hands over TLS when `security` says so
/// (verifying the member as `to.host`), sends `preamble` as the first
/// write before anything else (§2.2 step 4, danger D5), and then runs the
/// quorum SASL exchange when `security` has credentials, all within
/// `timeout`. The preamble is encoded, and so validated, before any
/// connection is made.
pub async fn dial(
    to: &ElectionAddress,
    preamble: &Preamble,
    timeout: Duration,
    security: &Security,
) -> Result<Connection, TransportError> {
    let bytes = preamble.encode()?;
    let address = to.to_string();
    let connect = async {
        let targets: Vec<SocketAddr> = tokio::net::lookup_host((to.host.as_str(), to.port))
            .await
            .map_err(|source| TransportError::Resolve {
                address: address.clone(),
                source,
            })?
            .collect();
        let mut last = None;
        for target in targets {
            match TcpStream::connect(target).await {
                Ok(stream) => return Ok(stream),
                Err(source) => last = Some(source),
            }
        }
        Err(match last {
            Some(source) => TransportError::Connect {
                address: address.clone(),
                source,
            },
            None => TransportError::NoAddress {
                address: address.clone(),
            },
        })
    };
    // Set once TCP is up: a time-out after that is the handshake's (the
    // member's process is slow or paused, its kernel accepted for it).
    let connected = std::sync::atomic::AtomicBool::new(false);
    let establish = async {
        let tcp = connect.await?;
        connected.store(true, std::sync::atomic::Ordering::Relaxed);
        let stream = match &security.tls {
            None => Stream::Plain(tcp),
            Some(connector) => match connector.handshake(&to.host, tcp).await {
                Ok(tls) => Stream::Tls(Box::new(tls)),
                Err(HandshakeError::Host(e)) => return Err(TransportError::Tls(e)),
                Err(HandshakeError::Io(source)) => {
                    return Err(TransportError::Handshake {
                        address: address.clone(),
                        source,
                    });
                }
            },
        };
        let mut connection = Connection::new(stream)?;
        connection.writer.stream.write_all(&bytes).await?;
        connection.writer.stream.flush().await?;
        if let Some(credentials) = &security.sasl {
            connection
                .authenticate(credentials)
                .await
                .map_err(|e| match e {
                    AuthError::Transport(e) => e,
                    AuthError::Sasl(reason) => TransportError::Sasl {
                        address: address.clone(),
                        reason,
                    },
                })?;
        }
        Ok(connection)
    };
    // Dropping the future on the timeout closes the socket: nothing stays
    // open without having spoken.
    let established = tokio::time::timeout(timeout, establish).await;
    established.map_err(|_| {
        if connected.load(std::sync::atomic::Ordering::Relaxed) {
            TransportError::HandshakeTimeout {
                address: address.clone(),
                timeout,
            }
        } else {
            TransportError::ConnectTimeout {
                address: address.clone(),
                timeout,
            }
        }
    })?
}

/// Reads the preamble of an accepted connection within `timeout` (§2.1: a
/// member uses `tickTime × syncLimit`). Any byte sequence a 3.5+ member would
/// reject, including the `OBSERVER_ID` sid (§2.4) and a port outside
/// 0..=65535 (D4), is an error and the caller closes the socket.
pub async fn accept(
    stream: TcpStream,
    timeout: Duration,
) -> Result<(Preamble, Connection), TransportError> {
    let mut connection = Connection::new(Stream::Plain(stream))?;
    let preamble = tokio::time::timeout(timeout, connection.reader.read_preamble())
        .await
        .map_err(|_| TransportError::PreambleTimeout(timeout))??;
    Ok((preamble, connection))
}

/// An established election connection: frames in both directions.
#[derive(Debug)]
pub struct Connection {
    pub reader: FrameReader,
    pub writer: FrameWriter,
}

/// Why a SASL exchange failed: the connection, or the exchange itself.
enum AuthError {
    Transport(TransportError),
    Sasl(String),
}

impl From<TransportError> for AuthError {
    fn from(e: TransportError) -> Self {
        AuthError::Transport(e)
    }
}

impl From<SaslError> for AuthError {
    fn from(e: SaslError) -> Self {
        AuthError::Sasl(e.to_string())
    }
}

/// A connection's byte stream: plain TCP or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection {
    fn new(stream: Stream) -> Result<Connection, TransportError> {
        let tcp = stream.tcp();
        tcp.set_nodelay(true)?;
        let peer = tcp.peer_addr()?;
        // A second handle on the socket, for what the halves cannot do: a
        // reset, and the FIN a dropped writer sends at once.
        let socket = socket2::SockRef::from(tcp).try_clone()?;
        let (read, write) = tokio::io::split(stream);
        Ok(Connection {
            reader: FrameReader {
                stream: read,
                buf: Vec::new(),
                peer,
            },
            writer: FrameWriter {
                stream: write,
                socket: Some(socket),
                peer,
            },
        })
    }

    /// The remote socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.reader.peer
    }

    /// Quorum SASL as a learner (DIGEST-MD5): an empty first token, the
    /// member's challenge answered, its `rspauth` checked.
    async fn authenticate(&mut self, credentials: &Credentials) -> Result<(), AuthError> {
        let mut client = DigestMd5::new(credentials.clone());
        let refused = |what: &str| AuthError::Sasl(format!("the member {what}"));
        self.send_auth(Some(Vec::new())).await?;
        let challenge = self.reader.read_auth().await?;
        if challenge.status != AuthStatus::InProgress {
            return Err(refused("refused to start the exchange"));
        }
        let response = client.respond(challenge.token.as_deref().unwrap_or_default())?;
        self.send_auth(Some(response)).await?;
        let last = self.reader.read_auth().await?;
        if last.status != AuthStatus::Success {
            return Err(refused("refused the credentials"));
        }
        client.verify(last.token.as_deref().unwrap_or_default())?;
        Ok(())
    }

    async fn send_auth(&mut self, token: Option<Vec<u8>>) -> Result<(), TransportError> {
        let packet = AuthPacket {
            status: AuthStatus::InProgress,
            token,
        };
        self.writer.stream.write_all(&packet.encode()).await?;
        self.writer.stream.flush().await?;
        Ok(())
    }

    /// Sends one payload as a frame. See [`FrameWriter::send`].
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), TransportError> {
        self.writer.send(payload).await
    }

    /// Receives one frame's payload. See [`FrameReader::recv`].
    pub async fn recv(&mut self) -> Result<Vec<u8>, TransportError> {
        self.reader.recv().await
    }

    /// Receives one frame and decodes it. See [`FrameReader::recv_notification`].
    pub async fn recv_notification(
        &mut self,
    ) -> Result<Result<Notification, DecodeError>, TransportError> {
        self.reader.recv_notification().await
    }

    /// The two directions, for a reader task and a writer task.
    pub fn split(self) -> (FrameReader, FrameWriter) {
        (self.reader, self.writer)
    }
}

/// The receiving half: length-prefixed frames of 1..=524288 bytes (§2.6).
#[derive(Debug)]
pub struct FrameReader {
    stream: ReadHalf<Stream>,
    /// Bytes read but not yet returned. Never longer than one largest frame
    /// plus one read, because a bad length prefix is refused at once.
    buf: Vec<u8>,
    peer: SocketAddr,
}

impl FrameReader {
    /// The next frame's payload. A length outside 1..=524288 is a
    /// [`TransportError::Protocol`] error, after which the connection must be
    /// closed, as a member does (D13). Cancel-safe: no byte is lost when the
    /// future is dropped (for example under a `tokio::time::timeout`).
    pub async fn recv(&mut self) -> Result<Vec<u8>, TransportError> {
        loop {
            if let Some((payload, used)) = split_frame(&self.buf)? {
                let payload = payload.to_vec();
                self.buf.drain(..used);
                return Ok(payload);
            }
            self.fill().await?;
        }
    }

    /// The next frame, decoded. A frame that is not a valid notification
    /// (§3.2: a 36-byte frame, a config length beyond the frame, an unknown
    /// state) is `Ok(Err(_))`: drop the message and keep the connection, as a
    /// 3.5.8+ member does.
    pub async fn recv_notification(
        &mut self,
    ) -> Result<Result<Notification, DecodeError>, TransportError> {
        let payload = self.recv().await?;
        Ok(Notification::decode(&payload))
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    async fn read_auth(&mut self) -> Result<AuthPacket, TransportError> {
        loop {
            if let Some((packet, used)) = AuthPacket::decode(&self.buf)? {
                self.buf.drain(..used);
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    async fn read_preamble(&mut self) -> Result<Preamble, TransportError> {
        loop {
            if let Some((preamble, used)) = Preamble::decode(&self.buf)? {
                self.buf.drain(..used);
                return Ok(preamble);
            }
            // The decoder refuses a bad length before asking for more, so
            // the buffer never grows past MAX_PREAMBLE_LEN plus one read.
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), TransportError> {
        self.buf.reserve(8 * 1024);
        match self.stream.read_buf(&mut self.buf).await? {
            0 => Err(TransportError::Closed),
            _ => Ok(()),
        }
    }
}

/// The sending half.
#[derive(Debug)]
pub struct FrameWriter {
    stream: WriteHalf<Stream>,
    /// The socket itself; `None` once reset.
    socket: Option<socket2::Socket>,
    peer: SocketAddr,
}

impl FrameWriter {
    /// Frames `payload` (1..=524288 bytes, or [`TransportError::Encode`]) and
    /// writes it in one `write_all`. Not cancel-safe: a dropped send may leave
    /// half a frame on the wire, so close the connection after one.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), TransportError> {
        let bytes = frame(payload)?;
        self.stream.write_all(&bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Closes the whole connection with a reset once the reader is dropped
    /// too: bytes the peer has not acknowledged are discarded, never
    /// delivered later.
    pub fn reset(mut self) {
        if let Some(socket) = self.socket.take() {
            // Best effort: without the option the close is an orderly one.
            let _ = socket.set_linger(Some(Duration::ZERO));
        }
    }

    /// Closes the sending direction (the peer reads end-of-stream; over
    /// TLS after a close_notify).
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}

impl Drop for FrameWriter {
    /// A dropped writer ends the sending direction at once, as a dropped
    /// TCP write half does, even while the reader lives on.
    fn drop(&mut self) {
        if let Some(socket) = self.socket.take() {
            let _ = socket.shutdown(Shutdown::Write);
        }
    }
}
