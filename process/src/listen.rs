//! Listening on every address, IPv4 and IPv6 alike: `[::]` with
//! `IPV6_V6ONLY` off (one socket takes both families, whatever the host's
//! `net.ipv6.bindv6only` says), and `0.0.0.0` where the host has no IPv6.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// A bound listener and, when `[::]` could not be had, why it listens on
/// `0.0.0.0` instead (logged once, here, as a warning).
#[derive(Debug)]
pub struct Listening {
    pub listener: tokio::net::TcpListener,
    pub addr: SocketAddr,
    pub fallback: Option<io::Error>,
}

/// Binds `addr`. The unspecified IPv6 address (`[::]:PORT`) listens on
/// both families, falling back to `0.0.0.0:PORT` when IPv6 is unavailable;
/// any other address is bound as it is. Must run inside a tokio runtime.
pub fn listen(addr: SocketAddr) -> io::Result<Listening> {
    let dual_stack = matches!(addr, SocketAddr::V6(v6) if v6.ip().is_unspecified());
    if !dual_stack {
        return Ok(Listening {
            listener: tokio_listener(bind(addr, false)?)?,
            addr,
            fallback: None,
        });
    }
    match bind(addr, true) {
        Ok(socket) => Ok(Listening {
            listener: tokio_listener(socket)?,
            addr,
            fallback: None,
        }),
        Err(e) if falls_back(&e) => {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            tracing::warn!(listen = %v4, error = %e, "no IPv6 here: listening on IPv4 only");
            Ok(Listening {
                listener: tokio_listener(bind(v4, false)?)?,
                addr: v4,
                fallback: Some(e),
            })
        }
        Err(e) => Err(e),
    }
}

/// Whether a failure to bind `[::]` means "no IPv6 here" (so IPv4 alone
/// will do) rather than a problem IPv4 would share, such as the port being
/// taken or not allowed.
pub fn falls_back(error: &io::Error) -> bool {
    !matches!(
        error.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind(addr: SocketAddr, dual_stack: bool) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // As tokio's own bind: a restarted process may take its port back at once.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket)
}

fn tokio_listener(socket: Socket) -> io::Result<tokio::net::TcpListener> {
    socket.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(socket.into())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv6Addr, TcpStream};

    use super::*;

    #[test]
    fn only_a_missing_ipv6_falls_back() {
        let cases = [
            (io::ErrorKind::AddrNotAvailable, true),
            (io::ErrorKind::Unsupported, true),
            (io::ErrorKind::InvalidInput, true),
            (io::ErrorKind::AddrInUse, false),
            (io::ErrorKind::PermissionDenied, false),
        ];
        for (kind, falls) in cases {
            assert_eq!(falls_back(&io::Error::from(kind)), falls, "{kind:?}");
        }
    }

    #[tokio::test]
    async fn the_unspecified_ipv6_address_takes_both_families() {
        let listening = listen("[::]:0".parse().unwrap()).unwrap();
        let port = listening.listener.local_addr().unwrap().port();
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("IPv4 reaches it");
        match &listening.fallback {
            None => {
                assert!(listening.addr.is_ipv6());
                TcpStream::connect((Ipv6Addr::LOCALHOST, port)).expect("IPv6 reaches it");
            }
            // A host without IPv6: IPv4 alone, and the reason.
            Some(_) => assert_eq!(listening.addr.ip(), Ipv4Addr::UNSPECIFIED),
        }
    }

    #[tokio::test]
    async fn another_address_is_bound_as_it_is() {
        let listening = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(listening.fallback.is_none());
        assert!(listening.listener.local_addr().unwrap().ip().is_loopback());
    }

    #[tokio::test]
    async fn a_taken_port_is_an_error_not_a_fallback() {
        let first = listen("[::]:0".parse().unwrap()).unwrap();
        let port = first.listener.local_addr().unwrap().port();
        let second = listen(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)));
        assert_eq!(second.unwrap_err().kind(), io::ErrorKind::AddrInUse);
    }
}
