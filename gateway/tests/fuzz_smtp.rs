//! Property-based fuzzing of the SMTP session state machine: random sequences of valid,
//! out-of-order, oversized and garbage input over an in-memory stream. Every reply must be
//! a well-formed SMTP reply, the session must end cleanly, and nothing may panic.
//! Smoke run in the test suite; longer: `PROPTEST_CASES=20000 cargo test --release -p
//! postdesk-gateway --test fuzz_smtp`.

mod common;

use postdesk_gateway::{serve_connection, Gateway, GatewayConfig, Mode, SpoolWriter};
use proptest::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn op() -> impl Strategy<Value = Vec<u8>> {
    let fixed = prop::sample::select(vec![
        "EHLO fuzz.test\r\n",
        "HELO fuzz.test\r\n",
        "LHLO fuzz.test\r\n",
        "EHLO\r\n",
        "MAIL FROM:<a@b.test>\r\n",
        "MAIL FROM:<>\r\n",
        "MAIL FROM:<a@b.test> SIZE=999999999999\r\n",
        "MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8\r\n",
        "MAIL FROM:a@b\r\n",
        "RCPT TO:<fuzz@test.example>\r\n",
        "RCPT TO:<fuzz+t1-aaaaaaaaaaaaaaaa@test.example>\r\n",
        "RCPT TO:<nobody@test.example>\r\n",
        "RCPT TO:<>\r\n",
        "DATA\r\n",
        "Subject: hi\r\nMessage-ID: <f@z>\r\n\r\nbody\r\n.\r\n",
        "From: a@b.test\r\n\r\nbare\nlf\n.\n\r\n.\r\n",
        ".\r\n",
        "RSET\r\n",
        "NOOP\r\n",
        "VRFY fuzz@test.example\r\n",
        "EXPN list\r\n",
        "HELP\r\n",
        "STARTTLS\r\n",
        "BDAT 10 LAST\r\n",
        "AUTH PLAIN AGFAYg==\r\n",
        "\r\n",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop_oneof![
        6 => fixed,
        1 => prop::collection::vec(any::<u8>(), 0..300),
        1 => "[ -~]{0,80}".prop_map(|s| format!("{s}\r\n").into_bytes()),
        1 => (4000usize..9000).prop_map(|n| {
            let mut v = vec![b'A'; n];
            v.extend_from_slice(b"\r\n");
            v
        }),
    ]
}

/// Checks that `out` is a sequence of SMTP reply lines.
fn well_formed(out: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(out);
    for line in text.split_terminator("\r\n") {
        let b = line.as_bytes();
        let ok = b.len() >= 4
            && b[..3].iter().all(u8::is_ascii_digit)
            && (b[3] == b' ' || b[3] == b'-')
            && (b'2'..=b'5').contains(&b[0]);
        if !ok {
            return Err(format!("malformed reply line {line:?}"));
        }
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        return Err("reply not terminated by CRLF".into());
    }
    Ok(())
}

struct Fixture {
    gateway: Arc<Gateway>,
    dir: std::path::PathBuf,
    /// The stop signal's sender, kept: sessions take a dropped one as "shutting down".
    _stop: tokio::sync::watch::Sender<bool>,
}

fn fixture() -> Fixture {
    let (store, dir) = common::store_with_org("fuzz-smtp", "fuzz");
    let (tx, _rx) = std::sync::mpsc::channel();
    let (writer, spool) = SpoolWriter::new(store.clone(), tx);
    std::thread::spawn(move || writer.run());
    let config = GatewayConfig {
        command_timeout: Duration::from_millis(300),
        data_timeout: Duration::from_millis(300),
        max_message_size: 64 * 1024,
        max_recipients: 5,
        connections_per_minute: 0,
        messages_per_minute: 0,
        messages_per_sender_per_minute: 0,
        ..GatewayConfig::default()
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    Fixture {
        gateway: Gateway::new(store, config, spool, None, stopped),
        dir,
        _stop: stop,
    }
}

fn converse(
    rt: &tokio::runtime::Runtime,
    gateway: &Arc<Gateway>,
    mode: Mode,
    input: Vec<u8>,
) -> Result<Vec<u8>, String> {
    rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 20);
        let peer = "127.0.0.1:40000".parse().expect("addr");
        let session = tokio::spawn(serve_connection(server, peer, gateway.clone(), mode));
        let (mut rd, mut wr) = tokio::io::split(client);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            out
        });
        let _ = wr.write_all(&input).await;
        let _ = wr.write_all(b"\r\n.\r\nQUIT\r\n").await;
        let _ = wr.flush().await;
        match tokio::time::timeout(Duration::from_secs(20), session).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if e.is_panic() => return Err(format!("session panicked: {e}")),
            Ok(Err(e)) => return Err(format!("session failed: {e}")),
            Err(_) => return Err("session did not end".into()),
        }
        drop(wr);
        reader.await.map_err(|e| e.to_string())
    })
}

#[test]
fn smtp_and_lmtp_sessions_survive_any_input() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let fx = fixture();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    let strategy = (prop::collection::vec(op(), 0..25), any::<bool>());
    let result = runner.run(&strategy, |(ops, lmtp)| {
        let mode = if lmtp { Mode::Lmtp } else { Mode::Smtp };
        let out = converse(&rt, &fx.gateway, mode, ops.concat()).map_err(TestCaseError::fail)?;
        prop_assert!(
            out.starts_with(b"220 "),
            "no greeting: {:?}",
            String::from_utf8_lossy(&out)
        );
        well_formed(&out).map_err(TestCaseError::fail)?;
        Ok(())
    });
    drop(fx.gateway);
    let _ = std::fs::remove_dir_all(&fx.dir);
    if let Err(e) = result {
        panic!("{e}");
    }
    println!("fuzz_smtp: {cases} random sessions, all replies well-formed");
}
