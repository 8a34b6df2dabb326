//! The accept loop against idle, trickling and too many clients, on tokio's paused
//! clock: the header timeout fires in virtual time, so nothing waits for real.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use hookjar_net::{Limits, LimitsError, Stats, accept_loop, serve_connection};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

struct Server {
    addr: std::net::SocketAddr,
    stats: Arc<Stats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start(limits: Limits) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, shutdown) = watch::channel(false);
    let stats = Arc::new(Stats::default());
    let conn_shutdown = shutdown.clone();
    let task = tokio::spawn(accept_loop(
        listener,
        limits,
        "test server",
        shutdown,
        Arc::clone(&stats),
        move |stream, _| {
            let svc = hyper::service::service_fn(|_req| async {
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(b"ok"))))
            });
            serve_connection(TokioIo::new(stream), svc, limits, conn_shutdown.clone())
        },
    ));
    Server {
        addr,
        stats,
        stop,
        task,
    }
}

/// Reads until the server closes the socket (EOF or reset) and returns what was read.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(10),
    max_connections: 512,
};

fn assert_closed_at_timeout(elapsed: Duration, what: &str) {
    assert!(
        elapsed >= LIMITS.header_timeout
            && elapsed < LIMITS.header_timeout + Duration::from_secs(1),
        "{what} closed after {elapsed:?}, expected the {:?} header timeout",
        LIMITS.header_timeout
    );
}

#[tokio::test(start_paused = true)]
async fn idle_sockets_are_closed_at_the_header_timeout() {
    let server = start(LIMITS).await;
    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    for (i, s) in idle.iter_mut().enumerate() {
        let got = read_until_closed(s).await;
        assert!(got.is_empty(), "idle socket {i} got {got:?}");
        assert_closed_at_timeout(started.elapsed(), &format!("idle socket {i}"));
    }
    assert_eq!(server.stats.accepted.load(Ordering::Relaxed), 300);
    let _ = server.stop.send(true);
    server.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_client_trickling_headers_is_closed_at_the_header_timeout() {
    let server = start(LIMITS).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"POST /hook HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header every 5 s, forever: the deadline counts from the first byte waited for.
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        for n in 0.. {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if wr
                .write_all(format!("X-Slow-{n}: 1\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut buf = [0u8; 256];
    let n = rd.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "no answer, just a close: {:?}", &buf[..n]);
    assert_closed_at_timeout(started.elapsed(), "the trickling client");
    trickle.abort();
}

#[tokio::test(start_paused = true)]
async fn an_idle_keep_alive_connection_is_closed_after_its_answer() {
    let server = start(LIMITS).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");
    let answered = Instant::now();
    let rest = read_until_closed(&mut s).await;
    assert!(rest.is_empty());
    assert_closed_at_timeout(answered.elapsed(), "the keep-alive connection");
}

#[tokio::test(start_paused = true)]
async fn at_the_connection_cap_new_clients_are_served_once_idle_ones_close() {
    let limits = Limits {
        max_connections: 4,
        ..LIMITS
    };
    let server = start(limits).await;
    let started = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The fifth connects (the kernel's backlog) and is served when a slot frees up.
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_until_closed(&mut s).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_closed_at_timeout(started.elapsed(), "a slot for the fifth client");
    assert_eq!(server.stats.cap_episodes.load(Ordering::Relaxed), 1);
    assert_eq!(server.stats.accepted.load(Ordering::Relaxed), 5);
    for s in &mut idle {
        assert!(read_until_closed(s).await.is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_loop_and_its_connections() {
    let server = start(LIMITS).await;
    let mut s = TcpStream::connect(server.addr).await.unwrap();
    // Let the loop accept it.
    tokio::task::yield_now().await;
    let _ = server.stop.send(true);
    tokio::time::timeout(Duration::from_secs(1), server.task)
        .await
        .expect("the loop ends at once on shutdown")
        .unwrap();
    assert!(read_until_closed(&mut s).await.is_empty());
    assert!(
        TcpStream::connect(server.addr).await.is_err(),
        "no longer listening"
    );
}

#[test]
fn limits_that_cannot_work_are_refused() {
    assert_eq!(Limits::default().validated(), Ok(Limits::default()));
    assert_eq!(
        Limits {
            header_timeout: Duration::ZERO,
            ..Limits::default()
        }
        .validated(),
        Err(LimitsError::ZeroHeaderTimeout)
    );
    assert_eq!(
        Limits {
            max_connections: 0,
            ..Limits::default()
        }
        .validated(),
        Err(LimitsError::ZeroConnections)
    );
}

/// `read_body`: pieces that each come within the idle time are read whole however long
/// the body takes; a body that stops is `Stalled` after exactly the idle time; a body
/// over the limit is `TooLarge` whichever piece crosses it.
#[tokio::test(start_paused = true)]
async fn read_body_allows_pauses_but_not_silence_and_bounds_the_size() {
    use hookjar_net::{BodyError, read_body};
    use http_body_util::channel::Channel;
    let idle = Duration::from_secs(10);

    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
    let sender = tokio::spawn(async move {
        for piece in ["ab", "cd", "ef"] {
            tx.send_data(Bytes::from_static(piece.as_bytes()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(6)).await;
        }
    });
    let started = Instant::now();
    assert_eq!(read_body(body, 100, idle).await.unwrap(), "abcdef");
    assert!(started.elapsed() >= Duration::from_secs(18));
    sender.await.unwrap();

    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
    tx.send_data(Bytes::from_static(b"ab")).await.unwrap();
    let started = Instant::now();
    let err = read_body(body, 100, idle).await.unwrap_err();
    assert!(matches!(err, BodyError::Stalled { .. }), "{err}");
    assert_eq!(started.elapsed(), idle);
    assert_eq!(
        err.to_string(),
        "the client sent no part of the body for 10 s"
    );
    drop(tx);

    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(2);
    tx.send_data(Bytes::from_static(b"abc")).await.unwrap();
    tx.send_data(Bytes::from_static(b"def")).await.unwrap();
    drop(tx);
    let err = read_body(body, 4, idle).await.unwrap_err();
    assert!(matches!(err, BodyError::TooLarge { max: 4 }), "{err}");

    let whole = http_body_util::Full::new(Bytes::from_static(b"xyz"));
    assert_eq!(read_body(whole, 3, idle).await.unwrap(), "xyz");
    let empty = http_body_util::Empty::<Bytes>::new();
    assert_eq!(read_body(empty, 3, idle).await.unwrap(), "");
}

/// `read_body`: a body that trickles in, never silent for the idle time but never
/// ending, is cut at six idle times from the first wait (`TooSlow`): a client cannot
/// hold a connection for ever one byte at a time.
#[tokio::test(start_paused = true)]
async fn read_body_has_an_overall_deadline() {
    use hookjar_net::{BODY_DEADLINE_IDLES, BodyError, read_body};
    use http_body_util::channel::Channel;
    let idle = Duration::from_secs(10);
    let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
    let sender = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if tx.send_data(Bytes::from_static(b"x")).await.is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let err = read_body(body, 1 << 20, idle).await.unwrap_err();
    assert!(matches!(err, BodyError::TooSlow { .. }), "{err}");
    assert_eq!(started.elapsed(), idle * BODY_DEADLINE_IDLES);
    assert_eq!(
        err.to_string(),
        "the client took more than 60 s to send the body"
    );
    sender.abort();
}
