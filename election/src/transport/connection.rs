//! One election connection (spec §2): dialling (connect timeout, the preamble
//! in one write), accepting (the preamble read under a timeout), and framed
//! send/receive with every cap of §2 enforced on input.
//!
//! This is the primitive both the voting mesh ([`super::Mesh`]) and the
//! sidecar's watcher build on. It decides nothing about which connection
//! survives (§2.3) or what to send; it only moves checked frames.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::wire::{
    DecodeError, ElectionAddress, EncodeError, MAX_ADDRESS_LEN, Notification, Preamble, frame,
    split_frame,
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
            TransportError::PreambleTimeout(_) => "preamble_timeout",
            TransportError::Encode(_) => "encode",
            TransportError::Protocol(e) => e.reason(),
            TransportError::Closed => "closed",
            TransportError::Io(_) => "io",
        }
    }
}

/// Connects to `to` within `timeout` and sends `preamble` as the first and
/// only write before anything else (§2.2 step 4, danger D5). The preamble is
/// encoded, and so validated, before any connection is made.
pub async fn dial(
    to: &ElectionAddress,
    preamble: &Preamble,
    timeout: Duration,
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
    let stream = tokio::time::timeout(timeout, connect).await.map_err(|_| {
        TransportError::ConnectTimeout {
            address: address.clone(),
            timeout,
        }
    })??;
    let mut connection = Connection::new(stream)?;
    connection.writer.stream.write_all(&bytes).await?;
    Ok(connection)
}

/// Reads the preamble of an accepted connection within `timeout` (§2.1: a
/// member uses `tickTime × syncLimit`). Any byte sequence a 3.5+ member would
/// reject, including the `OBSERVER_ID` sid (§2.4) and a port outside
/// 0..=65535 (D4), is an error and the caller closes the socket.
pub async fn accept(
    stream: TcpStream,
    timeout: Duration,
) -> Result<(Preamble, Connection), TransportError> {
    let mut connection = Connection::new(stream)?;
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

impl Connection {
    fn new(stream: TcpStream) -> Result<Connection, TransportError> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr()?;
        let (read, write) = stream.into_split();
        Ok(Connection {
            reader: FrameReader {
                stream: read,
                buf: Vec::new(),
                peer,
            },
            writer: FrameWriter {
                stream: write,
                peer,
            },
        })
    }

    /// The remote socket address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.reader.peer
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
    stream: OwnedReadHalf,
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
    stream: OwnedWriteHalf,
    peer: SocketAddr,
}

impl FrameWriter {
    /// Frames `payload` (1..=524288 bytes, or [`TransportError::Encode`]) and
    /// writes it in one `write_all`. Not cancel-safe: a dropped send may leave
    /// half a frame on the wire, so close the connection after one.
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), TransportError> {
        let bytes = frame(payload)?;
        self.stream.write_all(&bytes).await?;
        Ok(())
    }

    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Closes the whole connection with a reset once the reader is dropped
    /// too: bytes the peer has not acknowledged are discarded, never
    /// delivered later.
    pub fn reset(self) {
        // Best effort: without the option the close is an orderly one.
        let _ = self.stream.as_ref().set_zero_linger();
        // Dropping the half normally shuts the sending side down first,
        // which would queue a FIN behind the unsent bytes.
        self.stream.forget();
    }

    /// Closes the sending direction (the peer reads end-of-stream).
    pub async fn shutdown(&mut self) -> Result<(), TransportError> {
        self.stream.shutdown().await?;
        Ok(())
    }
}
