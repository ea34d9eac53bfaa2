//! Runs the end-to-end suites in `tests/e2e` (Python's unittest, smtplib and swaks as the
//! clients) against the `postdesk` binary this build produced.

use std::process::Command;

fn run_suite(module: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e");
    let out = Command::new("python3")
        .args(["-m", "unittest", "-v", module])
        .current_dir(dir)
        .env("POSTDESK_BIN", env!("CARGO_BIN_EXE_postdesk"))
        .output()
        .expect("python3 is needed for the end-to-end tests (.ci/run installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(out.status.success(), "{module} failed");
    // unittest prints "Ran N tests"; a suite that ran nothing must not pass.
    let ran = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    assert!(ran > 0, "{module} ran no tests");
    assert!(!stderr.contains("skipped="), "{module} skipped tests");
}

/// A suite that needs PostgreSQL whatever the engine under test (several nodes share one;
/// it starts a cluster of its own): run in the PostgreSQL pass of scripts/test only, so
/// the whole run runs it once.
fn run_postgres_suite(module: &str) {
    if std::env::var("POSTDESK_TEST_BACKEND").as_deref() == Ok("postgres") {
        run_suite(module);
    } else {
        println!("{module}: runs in the PostgreSQL pass");
    }
}

/// A suite written but not listed here would never run in CI.
#[test]
fn every_suite_is_listed() {
    let listed = include_str!("end_to_end.rs");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(dir).expect("tests/e2e") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if let Some(module) = name
            .strip_prefix("test_")
            .and_then(|m| m.strip_suffix(".py"))
        {
            if !listed.contains(&format!("run_suite(\"test_{module}\")"))
                && !listed.contains(&format!("run_postgres_suite(\"test_{module}\")"))
            {
                missing.push(name);
            }
        }
    }
    assert!(missing.is_empty(), "suites never run: {missing:?}");
}

#[test]
fn inbound() {
    run_suite("test_inbound");
}

#[test]
fn protocol_abuse() {
    run_suite("test_protocol");
}

#[test]
fn durability_under_sigkill() {
    run_suite("test_durability");
}

#[test]
fn staff_proof_by_dmarc() {
    run_suite("test_dmarc");
}

#[test]
fn limits_tls_and_timeouts() {
    run_suite("test_limits");
}

#[test]
fn command_line() {
    run_suite("test_cli");
}

#[test]
fn resource_bounds() {
    run_suite("test_resources");
}

#[test]
fn outbound_acknowledgements() {
    run_suite("test_outbound");
}

#[test]
fn dkim_signed_outbound() {
    run_suite("test_dkim");
}

#[test]
fn relay_transport() {
    run_suite("test_relay");
}

#[test]
fn staff_answers_by_mail() {
    run_suite("test_staff_mail");
}

#[test]
fn attachments_in_outbound_mail() {
    run_suite("test_attachments");
}

#[test]
fn conversation_by_mail() {
    run_suite("test_conversation");
}

#[test]
fn imap_import_against_dovecot() {
    run_suite("test_imap");
}

#[test]
fn delete_and_spam() {
    run_suite("test_delete_spam");
}

#[test]
fn change_alerts() {
    run_suite("test_change_alerts");
}

#[test]
fn api_writes() {
    run_suite("test_api_writes");
}

#[test]
fn web_desk() {
    run_suite("test_web_desk");
}

#[test]
fn portal() {
    run_suite("test_portal");
}

#[test]
fn browser_in_chromium() {
    run_suite("test_browser");
}

#[test]
fn portal_modes_and_settings() {
    run_suite("test_portal_modes");
}

#[test]
fn employees() {
    run_suite("test_employees");
}

#[test]
fn authorization_matrix() {
    run_suite("test_authorization");
}

#[test]
fn attacks_by_mail() {
    run_suite("test_attacks_mail");
}

#[test]
fn attacks_on_the_web() {
    run_suite("test_attacks_web");
}

#[test]
fn staff_created_tickets_and_files() {
    run_suite("test_staff_tickets");
}

#[test]
fn monitors_and_alerts() {
    run_suite("test_monitors");
}

#[test]
fn exports() {
    run_suite("test_exports");
}

#[test]
fn unsubscribe() {
    run_suite("test_unsubscribe");
}

#[test]
fn audit_log() {
    run_suite("test_audit");
}

#[test]
fn retention() {
    run_suite("test_retention");
}

#[test]
fn person_data() {
    run_suite("test_person_data");
}

#[test]
fn import() {
    run_suite("test_import");
}

#[test]
fn metrics_page() {
    run_suite("test_metrics");
}

#[test]
fn several_nodes_on_postgres() {
    run_postgres_suite("test_nodes");
}
