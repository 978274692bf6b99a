//! `hello-birthday healthcheck`: a dependency-free HTTP probe for container health checks,
//! because the runtime image has no curl or wget.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// How long the whole probe may take; container health checks have their own timeout too.
const TIMEOUT: Duration = Duration::from_secs(3);

/// GETs `/health/live` on the address the server listens on. `Ok` if it answered 200.
pub fn check(listen: SocketAddr) -> Result<(), String> {
    let target = SocketAddr::new(connectable(listen.ip()), listen.port());
    let mut stream = TcpStream::connect_timeout(&target, TIMEOUT)
        .map_err(|e| format!("cannot connect to {target}: {e}"))?;
    stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| format!("cannot set timeouts: {e}"))?;
    let request = format!(
        "GET /health/live HTTP/1.1\r\nHost: {target}\r\nUser-Agent: hello-birthday-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("cannot send the request to {target}: {e}"))?;
    let mut head = [0; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("no answer from {target}: {e}"))?;
    match &head {
        b"HTTP/1.1 200" | b"HTTP/1.0 200" => Ok(()),
        other => Err(format!(
            "{target} answered {:?}",
            String::from_utf8_lossy(other)
        )),
    }
}

/// A server bound to the unspecified address (0.0.0.0 in a container) is reached on loopback.
fn connectable(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}
