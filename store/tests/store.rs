//! The store's guarantees: one transaction per delivery, idempotent replays, dedup by
//! Message-ID within an organization, the spool's pending markers, the address rule, the
//! mailbox cursor committed with imported mail, held mail and the pipeline's crash marker.

use postdesk_store::*;
use time::OffsetDateTime;

fn temp_store(name: &str) -> (Store, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("postdesk-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    (postdesk_store::testing::open(&dir).expect("open"), dir)
}

fn org(slug: &str) -> Org {
    Org::new(
        slug,
        slug,
        vec![format!("{slug}@x.test")],
        OffsetDateTime::now_utc(),
    )
}

fn envelope(orgs: &[&str]) -> Envelope {
    Envelope {
        source: Source::Smtp,
        peer: "127.0.0.1:9".into(),
        helo: "t".into(),
        mail_from: "a@b.test".into(),
        deliveries: orgs
            .iter()
            .map(|o| Delivery {
                org: o.to_string(),
                address: format!("{o}@x.test"),
            })
            .collect(),
        refused: vec![],
        received_at: OffsetDateTime::now_utc(),
        mailbox: None,
    }
}

/// Spools one message per body, each delivered to `org`; their inbound ids.
fn spool_to(s: &Store, org: &str, bodies: &[&[u8]]) -> Vec<u64> {
    let envelope = envelope(&[org]);
    let batch: Vec<(&Envelope, &[u8])> = bodies.iter().map(|b| (&envelope, *b)).collect();
    s.spool_batch(&batch).expect("spool")
}

/// Erasure's decoder for tests whose mail needs none (the desk passes threading's).
fn no_decoding(_: &[u8]) -> String {
    String::new()
}

/// A staff member with `role`, alerts on, no rate.
fn staff(email: &str, name: &str, role: Role) -> Staff {
    Staff::new(email, name, role, OffsetDateTime::now_utc())
}

fn commit(inbound: u64, org: &str, mid: &str, target: TicketTarget, last: bool) -> DeliveryCommit {
    DeliveryCommit {
        inbound,
        org: org.into(),
        message_id: Some(mid.into()),
        from: "bob@c.test".into(),
        subject: "s".into(),
        target,
        kind: EventKind::Created,
        by_staff: false,
        text: "t".into(),
        attachments: vec![],
        automatic: false,
        participants: vec!["bob@c.test".into()],
        cc: vec![],
        rule: "new".into(),
        notes: vec![],
        visibility: Visibility::Public,
        changes: vec![],
        last_delivery: last,
        held: false,
        suspected_spoofing: false,
        imported: false,
        at: OffsetDateTime::now_utc(),
    }
}

fn new_target() -> TicketTarget {
    TicketTarget::New {
        ticket_type: TicketType::Question,
        summary: "s".into(),
        requester: "bob@c.test".into(),
        automatic: false,
    }
}

#[test]
fn slug_rule() {
    assert!(check_slug("acme").is_ok());
    assert!(check_slug("acme-2").is_ok());
    let long = "a".repeat(41);
    assert!(check_slug(&long[..40]).is_ok());
    for bad in [
        "abc",
        "1acme",
        "Acme",
        "ac_me",
        "-acme",
        "acmé",
        "",
        long.as_str(),
    ] {
        let e = check_slug(bad).expect_err(bad);
        assert!(e.contains("start with a letter"), "{e}");
    }
}

#[test]
fn org_addresses_and_plus_forms() {
    let (s, dir) = temp_store("orgs");
    s.add_org(&org("acme")).expect("add");
    assert!(matches!(
        s.add_org(&org("acme")),
        Err(StoreError::Exists(_))
    ));
    let mut clash = org("other");
    clash.addresses.push("acme@x.test".into());
    assert!(matches!(s.add_org(&clash), Err(StoreError::Exists(_))));
    assert!(
        s.org("other").expect("read").is_none(),
        "a refused org leaves nothing behind"
    );
    assert_eq!(
        s.org_for_address("ACME+t1-xyz@X.test")
            .expect("l")
            .map(|o| o.slug),
        Some("acme".into())
    );
    assert!(s.org_for_address("nobody@x.test").expect("l").is_none());
    // The answers above are kept in memory; a change of addresses or settings is seen at once.
    let mut changed = s.org("acme").expect("read").expect("acme");
    changed.addresses.push("help@x.test".into());
    changed.whitelist = vec!["c.test".into()];
    s.update_org(&changed).expect("update");
    let found = s
        .org_for_address("help+1@x.test")
        .expect("l")
        .expect("acme");
    assert_eq!(found.whitelist, ["c.test"]);
    assert_eq!(
        s.org_for_address("acme@x.test")
            .expect("l")
            .map(|o| o.whitelist),
        Some(vec!["c.test".to_string()])
    );
    changed.addresses.pop();
    s.update_org(&changed).expect("update");
    assert!(s.org_for_address("help@x.test").expect("l").is_none());
    s.add_org(&org("nobody")).expect("add");
    assert!(s.org_for_address("nobody@x.test").expect("l").is_some());
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn spool_then_commit_is_idempotent_and_dedups() {
    let (s, dir) = temp_store("commit");
    s.add_org(&org("acme")).expect("org");
    s.add_org(&org("beta")).expect("org");
    let ids = s
        .spool_batch(&[
            (&envelope(&["acme", "beta"]), b"raw one".as_slice()),
            (&envelope(&["acme"]), b"raw two".as_slice()),
        ])
        .expect("spool");
    assert_eq!(s.pending_inbound().expect("p"), ids);
    assert_eq!(
        s.raw_message(ids[0]).expect("raw").as_deref(),
        Some(b"raw one".as_slice())
    );

    let d1 = s
        .commit_delivery(&commit(ids[0], "acme", "<m1@x>", new_target(), false))
        .expect("c");
    assert!(matches!(
        d1.outcome,
        Outcome::Accepted {
            ticket: 1,
            new_ticket: true,
            ..
        }
    ));
    assert_eq!(
        s.pending_inbound().expect("p"),
        ids,
        "not the last delivery yet"
    );
    // A replay after a crash returns the same decision and makes no second ticket.
    let again = s
        .commit_delivery(&commit(ids[0], "acme", "<m1@x>", new_target(), false))
        .expect("c");
    assert_eq!(again, d1);
    // The same Message-ID in another organization is a separate ticket.
    let d2 = s
        .commit_delivery(&commit(ids[0], "beta", "m1@x", new_target(), true))
        .expect("c");
    assert!(matches!(d2.outcome, Outcome::Accepted { ticket: 2, .. }));
    assert_eq!(s.pending_inbound().expect("p"), vec![ids[1]]);
    // The same Message-ID again in the same organization is a duplicate.
    let d3 = s
        .commit_delivery(&commit(ids[1], "acme", "<m1@x>", new_target(), true))
        .expect("c");
    assert_eq!(d3.outcome, Outcome::Duplicate { ticket: 1 });
    assert!(s.pending_inbound().expect("p").is_empty());
    assert_eq!(s.events_for(1).expect("ev").len(), 1);
    assert_eq!(
        s.ticket_for_message_id("acme", "<m1@x>").expect("m"),
        Some(1)
    );
    assert_eq!(
        s.inbound_for_message_id("acme", "m1@x").expect("m"),
        Some(ids[0])
    );
    assert_eq!(
        s.decisions(10).expect("d").first().map(|d| d.inbound),
        Some(ids[1]),
        "newest first"
    );
    assert_eq!(s.events_since(0, 10).expect("log").len(), 2);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn replies_reopen_and_track_participants() {
    let (s, dir) = temp_store("reply");
    s.add_org(&org("acme")).expect("org");
    let ids = spool_to(&s, "acme", &[b"a", b"b"]);
    s.commit_delivery(&commit(ids[0], "acme", "<a@x>", new_target(), true))
        .expect("c");
    let mut reply = commit(ids[1], "acme", "<b@x>", TicketTarget::Existing(1), true);
    reply.kind = EventKind::Reply;
    reply.from = "carol@c.test".into();
    reply.participants = vec!["carol@c.test".into()];
    reply.cc = vec!["dave@c.test".into(), "bob@c.test".into()];
    s.commit_delivery(&reply).expect("reply");
    let t = s.ticket(1).expect("t").expect("exists");
    assert_eq!(
        t.participants,
        vec!["bob@c.test".to_string(), "carol@c.test".to_string()]
    );
    assert_eq!(
        t.cc,
        vec!["dave@c.test".to_string()],
        "the requester is not their own CC"
    );
    assert_eq!(s.events_for(1).expect("ev").len(), 2);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn held_mail_widens_nothing_and_is_decided_once() {
    let (s, dir) = temp_store("held");
    s.add_org(&org("acme")).expect("org");
    let ids = spool_to(&s, "acme", &[b"a", b"b", b"c"]);
    s.commit_delivery(&commit(ids[0], "acme", "<a@x>", new_target(), true))
        .expect("c");
    s.act_on_ticket(&TicketAction {
        ticket: 1,
        author: "alex@acme.test".into(),
        by_staff: true,
        text: None,
        attachments: vec![],
        changes: vec![Change::Status(Status::Resolved)],
        at: OffsetDateTime::now_utc(),
    })
    .expect("resolved");
    let held = |inbound, mid: &str, from: &str| {
        let mut c = commit(inbound, "acme", mid, TicketTarget::Existing(1), true);
        c.kind = EventKind::Reply;
        c.from = from.into();
        c.held = true;
        c.visibility = Visibility::Internal;
        c.participants = vec![from.into(), "friend@evil.test".into()];
        c.cc = vec!["friend@evil.test".into()];
        c
    };
    s.commit_delivery(&held(ids[1], "<b@x>", "eve@evil.test"))
        .expect("held");
    let t = s.ticket(1).expect("t").expect("exists");
    assert!(t.cc.is_empty() && !t.participants.contains(&"eve@evil.test".to_string()));
    assert_eq!(t.status, Status::Resolved, "a held mail reopens nothing");
    let events = s.events_for(1).expect("events");
    let eve = events.iter().find(|e| e.held).expect("held entry");
    assert_eq!(eve.visibility, Visibility::Internal);
    let now = OffsetDateTime::now_utc();
    let not_held = events.iter().find(|e| !e.held).expect("first").seq;
    assert!(matches!(
        s.resolve_held(1, not_held, &HeldAction::Accept, "alex@acme.test", now),
        Err(StoreError::NotFound(_))
    ));
    let accepted = s
        .resolve_held(1, eve.seq, &HeldAction::Accept, "alex@acme.test", now)
        .expect("accept");
    assert!(matches!(accepted, HeldOutcome::Accepted { .. }));
    assert_eq!(
        s.ticket(1).expect("t").expect("t").cc,
        vec!["eve@evil.test".to_string()]
    );
    assert!(matches!(
        s.resolve_held(1, eve.seq, &HeldAction::Accept, "alex@acme.test", now),
        Err(StoreError::Invalid(_))
    ));
    // Another outsider's mail becomes a ticket of its own, and its Message-ID goes with it.
    s.commit_delivery(&held(ids[2], "<c@x>", "mallory@other.test"))
        .expect("held");
    let mallory = s
        .events_for(1)
        .expect("events")
        .into_iter()
        .find(|e| e.held && e.author == "mallory@other.test")
        .expect("held entry");
    let opened = s
        .resolve_held(
            1,
            mallory.seq,
            &HeldAction::OpenTicket {
                summary: "Printer".into(),
                ticket_type: TicketType::Incident,
            },
            "alex@acme.test",
            now,
        )
        .expect("open");
    let HeldOutcome::OpenedAsTicket { ticket, .. } = opened else {
        panic!("opened {opened:?}")
    };
    let t2 = s.ticket(ticket).expect("t").expect("t");
    assert_eq!(
        (t2.requester.as_str(), t2.summary.as_str()),
        ("mallory@other.test", "Printer")
    );
    assert_eq!(
        s.ticket_for_message_id("acme", "<c@x>").expect("mid"),
        Some(ticket)
    );
    assert_eq!(s.held_outcome(mallory.seq).expect("outcome"), Some(opened));
    // Deleting the first ticket keeps the original the opened ticket shows.
    s.delete_ticket(1, "alex@acme.test", now, None)
        .expect("delete");
    assert_eq!(s.raw_message(ids[0]).expect("raw"), None);
    assert_eq!(s.raw_message(ids[1]).expect("raw"), None);
    assert_eq!(
        s.raw_message(ids[2]).expect("raw").as_deref(),
        Some(b"c".as_slice())
    );
    assert_eq!(
        s.ticket_for_message_id("acme", "<c@x>").expect("mid"),
        Some(ticket)
    );
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn large_messages_and_attachments_are_files() {
    let (s, dir) = temp_store("files");
    // With sled, large values are files; PostgreSQL keeps them (nodes share no folder).
    let as_files = !s.is_shared();
    let small = b"From: a@b.test\r\n\r\nsmall".to_vec();
    let large: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let ids = s
        .spool_batch(&[
            (&envelope(&[]), small.as_slice()),
            (&envelope(&[]), large.as_slice()),
        ])
        .expect("spool");
    assert_eq!(s.raw_message(ids[0]).expect("small"), Some(small));
    assert_eq!(
        s.raw_message(ids[1]).expect("large").as_deref(),
        Some(large.as_slice())
    );
    assert_eq!(
        dir.join("files/raw").join(ids[1].to_string()).is_file(),
        as_files
    );
    assert!(!dir.join("files/raw").join(ids[0].to_string()).exists());
    let hash = s.put_blob(&large).expect("blob");
    assert_eq!(s.put_blob(&large).expect("again"), hash, "stored once");
    assert_eq!(
        s.blob(&hash).expect("read").as_deref(),
        Some(large.as_slice())
    );
    assert_eq!(dir.join("files/blobs").join(&hash).is_file(), as_files);
    for bad in ["../db", "..", "", "/etc/passwd"] {
        assert_eq!(s.blob(bad).expect("bad name"), None, "{bad}");
    }
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_message_in_hand_at_a_crash_is_counted() {
    let (s, dir) = temp_store("planning");
    assert_eq!(s.crash_suspect().expect("clean"), None);
    s.add_org(&org("acme")).expect("org");
    let held = spool_to(&s, "acme", &[b"zero"])[0];
    s.note_planning(held, true).expect("note");
    assert_eq!(s.crash_suspect().expect("first"), Some((held, 1)));
    assert_eq!(s.crash_suspect().expect("second"), Some((held, 2)));
    s.clear_planning().expect("clear");
    assert_eq!(s.crash_suspect().expect("clean again"), None);
    // Committing the message in hand clears the note with it; another message's commit
    // (a batch committed before the one in hand is planned again) does not.
    let ids = spool_to(&s, "acme", &[b"one", b"two"]);
    s.note_planning(ids[1], false).expect("note");
    s.commit_pipeline(&[PipelineWrite::Delivery(commit(
        ids[0],
        "acme",
        "<p1@x>",
        new_target(),
        true,
    ))])
    .expect("commit");
    assert_eq!(s.crash_suspect().expect("still in hand"), Some((ids[1], 1)));
    s.commit_pipeline(&[PipelineWrite::Delivery(commit(
        ids[1],
        "acme",
        "<p2@x>",
        new_target(),
        true,
    ))])
    .expect("commit");
    assert_eq!(s.crash_suspect().expect("done"), None);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn secrets_and_tokens() {
    let (s, dir) = temp_store("secret");
    let a = s.secret("reply-token").expect("s");
    assert_eq!(a, s.secret("reply-token").expect("s"));
    assert_ne!(a, s.secret("other").expect("s"));
    s.add_staff(&staff("Alex@X.test", "Alex", Role::Tech))
        .expect("staff");
    s.add_api_token("alex@x.test", "pd_secret").expect("token");
    assert_eq!(
        s.staff_for_api_token("pd_secret")
            .expect("t")
            .map(|x| x.email),
        Some("alex@x.test".into())
    );
    assert!(s.staff_for_api_token("pd_other").expect("t").is_none());
    assert!(s.add_api_token("nobody@x.test", "pd_x").is_err());
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn imported_mail_moves_its_mailbox_cursor_in_the_same_commit() {
    let (store, dir) = temp_store("mailbox");
    let source = "support@127.0.0.1:1143/INBOX";
    let imported = |uid: u32, follow_up: Option<FollowUp>, accepted: bool| {
        let mut e = envelope(&["acme"]);
        if !accepted {
            e.deliveries.clear();
        }
        e.mailbox = Some(MailboxOrigin {
            source: source.into(),
            uidvalidity: 7,
            uid,
            follow_up,
        });
        e
    };
    let moved = FollowUp::MoveTo("Postdesk/Imported".into());
    let a = imported(3, Some(moved.clone()), true);
    let b = imported(5, Some(FollowUp::MoveTo("Postdesk/Failed".into())), false);
    store
        .spool_batch(&[(&a, b"mail three"), (&b, b"mail five")])
        .unwrap();

    let cursor = store.mailbox_cursor(source).unwrap();
    assert_eq!((cursor.uidvalidity, cursor.last_uid), (7, 5));
    assert_eq!(store.mailbox_counts(source).unwrap(), (1, 1));
    assert!(store.mailbox_has_imported(source, b"mail three").unwrap());
    assert!(!store.mailbox_has_imported(source, b"mail four").unwrap());
    assert!(!store
        .mailbox_has_imported("other@host:1/INBOX", b"mail three")
        .unwrap());
    let owed = store.mailbox_follow_ups(source).unwrap();
    assert_eq!(owed.len(), 2);
    assert_eq!(owed[0], (7, 3, moved));

    store
        .clear_mailbox_follow_ups(source, &[(7, 3), (7, 5)])
        .unwrap();
    assert!(store.mailbox_follow_ups(source).unwrap().is_empty());

    // A renumbered mailbox is read from the start; the contents stay known.
    store.restart_mailbox_cursor(source, 8).unwrap();
    let cursor = store.mailbox_cursor(source).unwrap();
    assert_eq!((cursor.uidvalidity, cursor.last_uid), (8, 0));
    assert_eq!(store.mailbox_counts(source).unwrap(), (1, 1));
    assert!(store.mailbox_has_imported(source, b"mail three").unwrap());
    store.skip_mailbox_messages(source, 8, 4).unwrap();
    store.skip_mailbox_messages(source, 9, 40).unwrap(); // another epoch: ignored
    assert_eq!(store.mailbox_cursor(source).unwrap().last_uid, 4);
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sign_in_links_expire_and_wear_out_sessions_end_everywhere() {
    let (store, dir) = temp_store("access");
    store
        .add_staff(&staff("ann@ops.test", "Ann", Role::Tech))
        .unwrap();
    let now = OffsetDateTime::now_utc();
    let ann = Principal::Staff {
        email: "ann@ops.test".into(),
    };
    let link = LoginLink {
        principal: ann.clone(),
        expires_at: now + time::Duration::hours(12),
        uses_left: 5,
    };
    store.add_login_link("secret-link", &link).unwrap();
    for _ in 0..5 {
        assert_eq!(
            store.use_login_link("secret-link", now).unwrap(),
            Ok(ann.clone())
        );
    }
    assert_eq!(
        store.use_login_link("secret-link", now).unwrap(),
        Err(LinkRefusal::UsedUp)
    );
    store.add_login_link("old-link", &link).unwrap();
    assert_eq!(
        store
            .use_login_link("old-link", now + time::Duration::hours(13))
            .unwrap(),
        Err(LinkRefusal::Expired)
    );
    assert_eq!(
        store.use_login_link("never-issued", now).unwrap(),
        Err(LinkRefusal::Unknown)
    );

    let session = WebSession {
        principal: ann.clone(),
        csrf: "c".into(),
        expires_at: now + time::Duration::days(7),
    };
    store.add_session("browser-1", &session).unwrap();
    store.add_session("browser-2", &session).unwrap();
    assert!(store.session("browser-1", now).unwrap().is_some());
    assert!(store
        .session("browser-1", now + time::Duration::days(8))
        .unwrap()
        .is_none());
    store.end_session("browser-1").unwrap();
    assert!(store.session("browser-1", now).unwrap().is_none());
    assert_eq!(store.end_all_sessions(&ann).unwrap(), 1);
    assert!(store.session("browser-2", now).unwrap().is_none());

    store
        .set_password_hash("ann@ops.test", "$argon2id$x")
        .unwrap();
    assert_eq!(
        store.password_hash("ann@ops.test").unwrap().as_deref(),
        Some("$argon2id$x")
    );
    assert!(store.set_password_hash("nobody@ops.test", "h").is_err());
    drop(store);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn staff_actions_append_events_in_one_transaction() {
    let (s, dir) = temp_store("action");
    s.add_org(&org("acme")).expect("org");
    let ids = s
        .spool_batch(&[(&envelope(&["acme"]), b"a".as_slice())])
        .expect("spool");
    s.commit_delivery(&commit(ids[0], "acme", "<a@x>", new_target(), true))
        .expect("c");
    let at = OffsetDateTime::now_utc();
    let action = |text, changes| TicketAction {
        ticket: 1,
        author: "ann@ops.test".into(),
        by_staff: true,
        text,
        attachments: vec![],
        changes,
        at,
    };
    let events = s
        .act_on_ticket(&action(
            Some((Visibility::Public, "Try again".into())),
            vec![
                Change::Status(Status::Waiting),
                Change::Priority(Priority::High),
            ],
        ))
        .expect("act");
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.by_staff)).collect();
    assert_eq!(
        kinds,
        vec![
            (EventKind::Reply, true),
            (EventKind::Update, true),
            (EventKind::Update, true)
        ]
    );
    let t = s.ticket(1).expect("t").expect("exists");
    assert_eq!((t.status, t.priority), (Status::Waiting, Priority::High));
    // The counts follow every write: one waiting question, no open one left.
    let counts = s.ticket_counts().expect("counts");
    let count = |st| {
        counts
            .iter()
            .find(|(o, ty, s, _)| o == "acme" && *ty == TicketType::Question && *s == st)
            .map_or(0, |c| c.3)
    };
    assert_eq!((count(Status::Open), count(Status::Waiting)), (0, 1));
    // Resolving stamps closed_at and counts the day; reopening clears the stamp.
    s.act_on_ticket(&action(None, vec![Change::Status(Status::Resolved)]))
        .expect("resolve");
    assert_eq!(s.ticket(1).expect("t").expect("exists").closed_at, Some(at));
    let days = s.daily_counts(at.date()).expect("days");
    assert_eq!(days, vec![("acme".to_string(), at.date(), 1, 1)]);
    s.act_on_ticket(&action(None, vec![Change::Status(Status::Open)]))
        .expect("reopen");
    // The person index follows assignments.
    s.act_on_ticket(&action(
        None,
        vec![Change::Assignee(Some("ann@ops.test".into()))],
    ))
    .expect("assign");
    assert_eq!(
        s.tickets_of("ann@ops.test", true, 10).expect("mine").len(),
        1
    );
    s.act_on_ticket(&action(None, vec![Change::Assignee(None)]))
        .expect("unassign");
    assert!(s
        .tickets_of("ann@ops.test", true, 10)
        .expect("mine")
        .is_empty());
    let requester = s.ticket(1).expect("t").expect("exists").requester;
    assert_eq!(
        s.tickets_of(&requester, false, 10).expect("raised").len(),
        1
    );
    assert_eq!(s.ticket(1).expect("t").expect("exists").closed_at, None);
    assert_eq!(s.events_for(1).expect("ev").len(), 8);
    // Nothing to do, or no such ticket: refused, nothing written.
    assert!(matches!(
        s.act_on_ticket(&action(None, vec![])),
        Err(StoreError::Invalid(_))
    ));
    let mut missing = action(Some((Visibility::Internal, "x".into())), vec![]);
    missing.ticket = 9;
    assert!(matches!(
        s.act_on_ticket(&missing),
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.events_for(1).expect("ev").len(), 8);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_bell_counts_every_unread_entry_and_survives_a_restart() {
    let (s, dir) = temp_store("bell-unread");
    let at = OffsetDateTime::now_utc();
    let item = |event| BellItem {
        staff: "ann@ops.test".into(),
        event,
        ticket: 1,
        text: format!("entry {event}"),
        read: false,
        at,
    };
    let items: Vec<BellItem> = (1..=7).map(item).collect();
    s.enqueue_outbound("notifier", 7, &[], &items)
        .expect("enqueue");
    // The same entries again (a replayed batch) count once.
    s.enqueue_outbound("notifier", 7, &[], &items)
        .expect("again");
    let (shown, unread) = s.bell("ann@ops.test", 5).expect("bell");
    assert_eq!((shown.len(), unread), (5, 7));
    s.open_bell_item("ann@ops.test", 3).expect("open");
    s.open_bell_item("ann@ops.test", 3).expect("open twice");
    assert_eq!(s.bell("ann@ops.test", 5).expect("bell").1, 6);
    assert_eq!(s.bell("bob@ops.test", 5).expect("bell").1, 0);
    drop(s);
    let s = postdesk_store::testing::open(&dir).expect("reopen");
    assert_eq!(s.bell("ann@ops.test", 5).expect("bell").1, 6);
}

#[test]
fn deletion_removes_what_only_the_ticket_uses() {
    let (s, dir) = temp_store("delete");
    s.add_org(&org("acme")).expect("org");
    s.add_org(&org("beta")).expect("org");
    let ids = s
        .spool_batch(&[
            (&envelope(&["acme", "beta"]), b"to both".as_slice()),
            (&envelope(&["acme"]), b"to acme".as_slice()),
        ])
        .expect("spool");
    let file = |bytes: &[u8]| AttachmentRef {
        name: "f".into(),
        content_type: "application/octet-stream".into(),
        size: bytes.len() as u64,
        sha256: s.put_blob(bytes).expect("blob"),
    };
    let (shared, own) = (file(b"shared bytes"), file(b"own bytes"));
    let with = |c: DeliveryCommit, a: &AttachmentRef| DeliveryCommit {
        attachments: vec![a.clone()],
        ..c
    };
    let deliveries = [
        with(
            commit(ids[0], "acme", "<m1@x>", new_target(), false),
            &shared,
        ),
        with(
            commit(ids[0], "beta", "<m1@x>", new_target(), true),
            &shared,
        ),
        with(commit(ids[1], "acme", "<m2@x>", new_target(), true), &own),
    ];
    for d in &deliveries {
        s.commit_delivery(d).expect("commit");
    }
    let at = OffsetDateTime::now_utc();
    // Asked (and the answer kept in memory) before the block: the block is seen at once.
    assert!(!s.is_blocked("acme", "bob@c.test").expect("b"));

    let gone = s
        .delete_ticket(1, "admin@x.test", at, Some("Bob@C.test"))
        .expect("delete");
    assert_eq!(
        (gone.events, gone.blocked.as_deref()),
        (1, Some("bob@c.test"))
    );
    assert_eq!(s.ticket(1).expect("t"), None);
    assert!(s.events_for(1).expect("ev").is_empty());
    assert_eq!(s.ticket_for_message_id("acme", "<m1@x>").expect("m"), None);
    // The mail also made beta's ticket: its original and file stay.
    assert!(s.raw_message(ids[0]).expect("raw").is_some());
    assert!(s.blob(&shared.sha256).expect("blob").is_some());
    assert_eq!(
        s.ticket_for_message_id("beta", "<m1@x>").expect("m"),
        Some(2)
    );
    // The log keeps who deleted it, and nothing of what it said.
    let last = s
        .events_since(0, 100)
        .expect("log")
        .pop()
        .expect("an event");
    assert_eq!(
        (
            last.kind,
            last.ticket,
            last.author.as_str(),
            last.text.as_str()
        ),
        (EventKind::Deleted, 1, "admin@x.test", "")
    );
    assert!(s.is_blocked("acme", "BOB@c.test").expect("b"));
    // Every spelling of the same mailbox is the same block.
    for spelling in ["bob+sale@c.test", "\"bob\"@c.test", "bob@c.test."] {
        assert!(s.is_blocked("acme", spelling).expect("b"), "{spelling}");
    }
    assert!(!s.is_blocked("acme", "bobby@c.test").expect("b"));
    assert!(!s.is_blocked("beta", "bob@c.test").expect("b"));
    assert!(matches!(
        s.delete_ticket(1, "admin@x.test", at, None),
        Err(StoreError::NotFound(_))
    ));

    s.delete_ticket(3, "admin@x.test", at, None)
        .expect("delete");
    assert_eq!(s.raw_message(ids[1]).expect("raw"), None);
    assert_eq!(s.blob(&own.sha256).expect("blob"), None);
    s.delete_ticket(2, "admin@x.test", at, None)
        .expect("delete");
    assert_eq!(s.raw_message(ids[0]).expect("raw"), None);
    assert_eq!(s.blob(&shared.sha256).expect("blob"), None);
    assert!(s
        .tickets(&TicketFilter::default())
        .expect("list")
        .is_empty());
    assert!(s
        .ticket_counts()
        .expect("counts")
        .iter()
        .all(|(_, _, _, n)| *n == 0));

    assert!(s.unblock_sender("acme", "Bob+x@c.test.").expect("unblock"));
    assert!(!s.unblock_sender("acme", "bob@c.test").expect("unblock"));
    assert!(!s.is_blocked("acme", "bob@c.test").expect("b"));
    assert!(s.blocked_senders("acme").expect("list").is_empty());
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn deletion_takes_the_originals_of_duplicates_too() {
    let (s, dir) = temp_store("delete-dup");
    s.add_org(&org("acme")).expect("org");
    let ids = spool_to(&s, "acme", &[b"first", b"the same, again"]);
    s.commit_delivery(&commit(ids[0], "acme", "<m@x>", new_target(), true))
        .expect("first");
    let again = s
        .commit_delivery(&commit(ids[1], "acme", "<m@x>", new_target(), true))
        .expect("again");
    assert_eq!(again.outcome, Outcome::Duplicate { ticket: 1 });
    s.delete_ticket(1, "admin@x.test", OffsetDateTime::now_utc(), None)
        .expect("delete");
    assert_eq!(s.raw_message(ids[0]).expect("raw"), None);
    assert_eq!(s.raw_message(ids[1]).expect("raw"), None);
    for d in s.decisions(10).expect("log") {
        assert_eq!(d.subject, "(ticket 1 deleted)", "inbound {}", d.inbound);
    }
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_sign_in_request_becomes_one_outbox_mail() {
    let (s, dir) = temp_store("signin-requests");
    let request = |to: &str| SignInRequest {
        org: "acme".into(),
        recipient: to.into(),
        place: "the Acme Support portal".into(),
        intro: String::new(),
        link: "https://desk.test/portal/link/secret".into(),
        hours: 12,
        uses: 5,
        at: OffsetDateTime::now_utc(),
    };
    s.request_sign_in_mail(&request("a@c.test")).expect("asked");
    s.request_sign_in_mail(&request("b@c.test")).expect("asked");
    let asked = s.sign_in_requests(10).expect("requests");
    assert_eq!(
        asked
            .iter()
            .map(|(_, r)| r.recipient.as_str())
            .collect::<Vec<_>>(),
        ["a@c.test", "b@c.test"],
        "oldest first"
    );
    let mail = OutboxItem {
        key: "signin:one".into(),
        event: 0,
        ticket: 0,
        org: "acme".into(),
        recipient: "a@c.test".into(),
        kind: "sign_in_link".into(),
        message_id: "signin.one@x.test".into(),
        raw: b"mail".to_vec(),
        files: Default::default(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
        created_at: OffsetDateTime::now_utc(),
    };
    s.fulfil_sign_in_request(asked[0].0, Some(&mail))
        .expect("queued");
    // Done twice (a pass that died after the commit): nothing more is queued.
    s.fulfil_sign_in_request(
        asked[0].0,
        Some(&OutboxItem {
            key: "signin:two".into(),
            ..mail.clone()
        }),
    )
    .expect("again");
    // One that cannot be made is dropped without mail.
    s.fulfil_sign_in_request(asked[1].0, None).expect("dropped");
    assert!(s.sign_in_requests(10).expect("requests").is_empty());
    let queued = s.outbox(10).expect("outbox");
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].key, "signin:one");
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn held_mail_opened_as_a_ticket_takes_over_no_one_elses_message_id() {
    let (s, dir) = temp_store("held-mid");
    s.add_org(&org("acme")).expect("org");
    let ids = spool_to(
        &s,
        "acme",
        &[b"bob's", b"eve's copy", b"bob again", b"eve again"],
    );
    s.commit_delivery(&commit(
        ids[0],
        "acme",
        "<bob-1@c.test>",
        new_target(),
        true,
    ))
    .expect("bob's ticket");
    // Eve, copied on Bob's mail, sends one with its Message-ID into his ticket: held.
    let eve = DeliveryCommit {
        from: "eve@evil.test".into(),
        held: true,
        kind: EventKind::Reply,
        ..commit(
            ids[1],
            "acme",
            "<bob-1@c.test>",
            TicketTarget::Existing(1),
            true,
        )
    };
    s.commit_delivery(&eve).expect("held");
    let held = s
        .events_for(1)
        .expect("events")
        .into_iter()
        .find(|e| e.held)
        .expect("held entry");
    let now = OffsetDateTime::now_utc();
    let open = HeldAction::OpenTicket {
        summary: "eve's".into(),
        ticket_type: TicketType::Question,
    };
    let opened = s
        .resolve_held(1, held.seq, &open, "alex@acme.test", now)
        .expect("opened");
    let HeldOutcome::OpenedAsTicket { ticket: eves, .. } = opened else {
        panic!("{opened:?}");
    };
    // Replies to Bob's id still go to Bob's ticket; each sender's retry to their own.
    assert_eq!(
        s.ticket_for_message_id("acme", "bob-1@c.test").expect("t"),
        Some(1)
    );
    let retry = |inbound, from: &str| DeliveryCommit {
        from: from.into(),
        ..commit(inbound, "acme", "<bob-1@c.test>", new_target(), true)
    };
    assert_eq!(
        s.commit_delivery(&retry(ids[2], "bob@c.test"))
            .expect("c")
            .outcome,
        Outcome::Duplicate { ticket: 1 }
    );
    assert_eq!(
        s.commit_delivery(&retry(ids[3], "eve@evil.test"))
            .expect("c")
            .outcome,
        Outcome::Duplicate { ticket: eves }
    );
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn deletion_reads_the_tickets_own_mail_and_bell_entries_and_leaves_the_rest() {
    let (s, dir) = temp_store("delete-mail");
    s.add_org(&org("acme")).expect("org");
    let ids = spool_to(&s, "acme", &[b"one", b"two"]);
    for (id, mid) in ids.iter().zip(["<d1@x>", "<d2@x>"]) {
        s.commit_delivery(&commit(*id, "acme", mid, new_target(), true))
            .expect("commit");
    }
    let seq = |n| s.events_for(n).expect("events")[0].seq;
    let (e1, e2) = (seq(1), seq(2));
    let at = OffsetDateTime::now_utc();
    let mail = |event, ticket| OutboxItem {
        key: event_mail_key(event, "bob@c.test"),
        event,
        ticket,
        org: "acme".into(),
        recipient: "bob@c.test".into(),
        kind: "ack".into(),
        message_id: format!("m{event}@x.test"),
        raw: b"mail".to_vec(),
        files: Default::default(),
        status: OutboxStatus::Pending,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
        created_at: at,
    };
    let bell = |staff: &str, event, ticket| BellItem {
        staff: staff.into(),
        event,
        ticket,
        text: "t".into(),
        read: false,
        at,
    };
    s.add_staff(&staff("ann@ops.test", "Ann", Role::Admin))
        .expect("ann");
    // gone@ops.test has bell entries but is no longer staff: they go with the ticket too.
    s.enqueue_outbound(
        "notifier",
        e2,
        &[mail(e1, 1), mail(e2, 2)],
        &[
            bell("ann@ops.test", e1, 1),
            bell("ann@ops.test", e2, 2),
            bell("gone@ops.test", e1, 1),
        ],
    )
    .expect("enqueue");

    s.delete_ticket(1, "ann@ops.test", at, None)
        .expect("delete");
    let left: Vec<u64> = s
        .outbox(10)
        .expect("outbox")
        .iter()
        .map(|m| m.ticket)
        .collect();
    assert_eq!(left, [2]);
    let (entries, unread) = s.bell("ann@ops.test", 10).expect("bell");
    assert_eq!((entries.len(), entries[0].ticket, unread), (1, 2, 1));
    assert_eq!(s.bell("gone@ops.test", 10).expect("bell"), (vec![], 0));

    // A removed employee's bell goes with them.
    s.remove_staff("ann@ops.test").expect("remove");
    assert_eq!(s.bell("ann@ops.test", 10).expect("bell"), (vec![], 0));
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_deactivated_organization_is_deleted_once_its_tickets_are_gone() {
    let (s, dir) = temp_store("org-deletion");
    s.add_org(&org("acme")).expect("org");
    s.add_org(&org("beta")).expect("org");
    let ids = s
        .spool_batch(&[
            (&envelope(&["acme", "beta"]), b"to both".as_slice()),
            (&envelope(&["acme"]), b"to acme".as_slice()),
            (&envelope(&["acme"]), b"still pending".as_slice()),
        ])
        .expect("spool");
    for d in [
        commit(ids[0], "acme", "<m1@x>", new_target(), false),
        commit(ids[0], "beta", "<m1@x>", new_target(), true),
        commit(ids[1], "acme", "<m2@x>", new_target(), true),
    ] {
        s.commit_delivery(&d).expect("commit");
    }
    let at = OffsetDateTime::now_utc();
    let watch = Monitor::new(MonitorKind::Unassigned, Some(4));
    s.set_monitors("acme", &[watch]).expect("monitors");
    let gone = |_: &Org| true;

    let acme = s.set_org_deactivated("acme", Some(at)).expect("deactivate");
    assert_eq!(acme.deactivated_at, Some(at));
    // Deactivating again keeps the first date; a settings save never changes it.
    let later = at + time::Duration::days(3);
    assert_eq!(
        s.set_org_deactivated("acme", Some(later))
            .expect("again")
            .deactivated_at,
        Some(at)
    );
    s.update_org(&Org {
        name: "Acme Inc".into(),
        deactivated_at: None,
        ..acme.clone()
    })
    .expect("save");
    let seen = s.org_for_address("acme@x.test").expect("l").expect("org");
    assert_eq!(
        (seen.name.as_str(), seen.deactivated_at),
        ("Acme Inc", Some(at))
    );
    assert_eq!(acme.deleted_on(), Some(at + time::Duration::days(90)));

    // Not while it has tickets, nor when the check fails as it commits.
    assert_eq!(s.org_ticket_count("acme").expect("n"), 2);
    assert_eq!(s.delete_org_if("acme", gone).expect("d"), None);
    for n in [1, 3] {
        s.delete_ticket(n, "retention", at, None).expect("delete");
    }
    assert_eq!(
        s.delete_org_if("acme", |o| o.deactivated_at.is_none())
            .expect("d"),
        None
    );
    assert!(s.org("acme").expect("o").is_some());

    assert_eq!(s.delete_org_if("acme", gone).expect("d"), Some(0));
    assert_eq!(s.org("acme").expect("o"), None);
    assert!(s.org_for_address("acme@x.test").expect("l").is_none());
    assert!(s.monitors("acme").expect("m").is_empty());
    assert_eq!(s.ticket_for_message_id("acme", "<m1@x>").expect("m"), None);
    assert_eq!(s.org_ticket_count("acme").expect("n"), 0);
    assert!(s
        .decisions(100)
        .expect("log")
        .iter()
        .all(|d| d.org != "acme"));
    assert!(s
        .decisions(100)
        .expect("log")
        .iter()
        .any(|d| d.org == "beta"));
    // Mail that also went to beta, and mail not yet through the pipeline, stay.
    assert!(s.raw_message(ids[0]).expect("raw").is_some());
    assert!(s.raw_message(ids[2]).expect("raw").is_some());
    assert_eq!(
        s.ticket_for_message_id("beta", "<m1@x>").expect("m"),
        Some(2)
    );
    // The slug and address are free again, with nothing of the old one.
    s.add_org(&org("acme")).expect("again");
    assert!(s.monitors("acme").expect("m").is_empty());
    assert_eq!(s.org("acme").expect("o").expect("org").deactivated_at, None);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_erased_person_is_a_pseudonym_and_their_words_and_files_are_gone() {
    let (s, dir) = temp_store("erasure");
    s.add_org(&org("acme")).expect("org");
    let ids = spool_to(&s, "acme", &[b"from bob", b"from carol", b"bob's spam"]);
    let file = |bytes: &[u8]| AttachmentRef {
        name: "f".into(),
        content_type: "application/octet-stream".into(),
        size: bytes.len() as u64,
        sha256: s.put_blob(bytes).expect("blob"),
    };
    let (his, hers) = (file(b"bob's own file"), file(b"carol's file"));
    let bob = DeliveryCommit {
        attachments: vec![his.clone()],
        text: "My printer jams".into(),
        ..commit(ids[0], "acme", "<m1@x>", new_target(), true)
    };
    let carol = DeliveryCommit {
        from: "carol@c.test".into(),
        attachments: vec![hers.clone()],
        text: "Same here, ask BOB@c.test".into(),
        participants: vec!["carol@c.test".into()],
        ..commit(ids[1], "acme", "<m2@x>", TicketTarget::Existing(1), true)
    };
    for d in [
        bob,
        carol,
        commit(ids[2], "acme", "<m3@x>", new_target(), true),
    ] {
        s.commit_delivery(&d).expect("commit");
    }
    let at = OffsetDateTime::now_utc();
    s.delete_ticket(2, "admin@x.test", at, Some("bob@c.test"))
        .expect("spam");
    s.set_contact_alerts("bob@c.test", false).expect("opt out");
    s.add_staff(&staff("ann@x.test", "Ann", Role::Admin))
        .expect("staff");
    assert!(matches!(
        s.erase_person("ann@x.test", &no_decoding),
        Err(StoreError::Invalid(_))
    ));

    let e = s.erase_person("bob@c.test", &no_decoding).expect("erase");
    let p = e.pseudonym.clone();
    assert!(
        p.starts_with("erased-") && p.ends_with("@erased.invalid"),
        "{p}"
    );
    assert_eq!(
        (e.tickets, e.entries, e.originals, e.files, e.left),
        (1, 1, 1, 1, 0)
    );
    let t = s.ticket(1).expect("t").expect("ticket");
    assert_eq!(
        (t.requester.as_str(), t.summary.as_str()),
        (p.as_str(), ERASED_TEXT)
    );
    assert!(!t.participants.contains(&"bob@c.test".to_string()));
    let events = s.events_for(1).expect("events");
    assert_eq!(
        (events[0].author.as_str(), events[0].text.as_str()),
        (p.as_str(), ERASED_TEXT)
    );
    assert_eq!(events[1].text, format!("Same here, ask {p}"));
    assert_eq!(s.raw_message(ids[0]).expect("raw"), None);
    assert!(s.raw_message(ids[1]).expect("raw").is_some());
    assert_eq!(s.blob(&his.sha256).expect("blob"), None);
    assert!(s.blob(&hers.sha256).expect("blob").is_some());
    assert_eq!(
        s.tickets_of("bob@c.test", false, 10).expect("index"),
        vec![]
    );
    assert_eq!(s.tickets_of(&p, false, 10).expect("index").len(), 1);
    // The opt-out and the block still hold, for every spelling of the address.
    assert!(!s.contact_alerts("Bob@C.test").expect("alerts"));
    assert!(s.is_blocked("acme", "bob+x@c.test").expect("blocked"));
    assert_eq!(s.blocked_senders("acme").expect("list")[0].sender, p);
    // The same pseudonym every time; a second run finds nothing left.
    assert_eq!(s.erased_as("bob@c.test").expect("as"), Some(p.clone()));
    let again = s.erase_person("bob@c.test", &no_decoding).expect("again");
    assert_eq!((again.pseudonym, again.entries, again.left), (p, 0, 0));
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn compaction_keeps_every_record_and_recovers_when_interrupted() {
    // Compaction rewrites sled's files: this test is sled's whichever engine the run tests.
    let dir =
        std::env::temp_dir().join(format!("postdesk-store-compaction-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = Store::open(&dir).expect("open");
    s.add_org(&org("acme")).expect("org");
    spool_to(&s, "acme", &[b"one", b"two"]);
    drop(s);
    let c = compact(&dir).expect("compact");
    assert!(c.records > 3, "{c:?}");
    let s = Store::open(&dir).expect("reopen");
    assert!(s.org("acme").expect("org").is_some());
    assert_eq!(s.pending_inbound().expect("pending").len(), 2);
    drop(s);
    // A crash between the two renames: the old database comes back at the next open.
    std::fs::rename(dir.join("db"), dir.join("db.old")).expect("rename");
    let s = Store::open(&dir).expect("recovered");
    assert!(s.org("acme").expect("org").is_some());
    assert!(!dir.join("db.old").exists());
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn imported_mail_keeps_its_date_and_live_mail_makes_the_ticket_live() {
    let (s, dir) = temp_store("imported");
    s.add_org(&org("acme")).expect("org");
    let ids = spool_to(&s, "acme", &[b"old one", b"old reply", b"live reply"]);
    let long_ago = OffsetDateTime::UNIX_EPOCH + time::Duration::days(19_000);
    let old = |c: DeliveryCommit, days: i64| DeliveryCommit {
        imported: true,
        at: long_ago + time::Duration::days(days),
        ..c
    };
    s.commit_delivery(&old(
        commit(ids[0], "acme", "<o1@x>", new_target(), true),
        0,
    ))
    .expect("first");
    s.commit_delivery(&old(
        commit(ids[1], "acme", "<o2@x>", TicketTarget::Existing(1), true),
        2,
    ))
    .expect("reply");
    let t = s.ticket(1).expect("t").expect("ticket");
    assert!(t.imported);
    assert_eq!(
        (t.created_at, t.updated_at),
        (long_ago, long_ago + time::Duration::days(2))
    );
    assert!(s.events_for(1).expect("ev").iter().all(|e| e.imported));
    s.commit_delivery(&commit(
        ids[2],
        "acme",
        "<l1@x>",
        TicketTarget::Existing(1),
        true,
    ))
    .expect("live");
    let t = s.ticket(1).expect("t").expect("ticket");
    assert!(!t.imported);
    assert!(!s.events_for(1).expect("ev").last().expect("event").imported);
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_guest_request_in_an_erased_name_is_erased_and_others_alike_stay() {
    let (s, dir) = temp_store("erasure-guest");
    s.add_org(&org("acme")).expect("org");
    let at = OffsetDateTime::now_utc();
    for (summary, text) in [
        (
            "Broken printer",
            guest_request_text("rita@c.test", "My words"),
        ),
        ("Toner", guest_request_text("margarita@c.test", "Her words")),
    ] {
        s.open_ticket(&NewTicket::by_requester(
            "acme",
            "Portal Guest",
            summary,
            &text,
            at,
        ))
        .expect("open");
    }
    let e = s.erase_person("rita@c.test", &no_decoding).expect("erase");
    assert_eq!((e.tickets, e.entries, e.left), (1, 1, 0));
    let t = s.ticket(1).expect("t").expect("ticket");
    assert_eq!(t.summary, ERASED_TEXT);
    assert_eq!(
        s.events_for(1).expect("ev")[0].text,
        guest_request_text(&e.pseudonym, ERASED_TEXT)
    );
    let other = s.ticket(2).expect("t").expect("ticket");
    assert_eq!(other.summary, "Toner");
    assert_eq!(
        s.events_for(2).expect("ev")[0].text,
        guest_request_text("margarita@c.test", "Her words")
    );
    drop(s);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn moving_a_sled_store_into_postgres_copies_all_resumes_and_never_doubles() {
    // The move reads sled: once per run, in the sled pass (scripts/test starts PostgreSQL).
    let (Ok(url), false) = (
        std::env::var("POSTDESK_TEST_DATABASE_URL"),
        testing::database_url().is_some(),
    ) else {
        eprintln!("the move is tested in scripts/test's sled pass, which has PostgreSQL");
        return;
    };
    let dir = std::env::temp_dir().join(format!("postdesk-store-move-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let s = Store::open(&dir).expect("open");
    s.add_org(&org("acme")).expect("org");
    let large: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let ids = spool_to(&s, "acme", &[b"small one", &large]);
    let hash = s.put_blob(&large).expect("blob");
    let small_hash = s.put_blob(b"a small file").expect("blob");
    let target = testing::schema_url(&url, "move-target", true).expect("schema");

    // Stopped while it copies the originals (as by a kill; quietly: no panic message in
    // the test's output): the next run goes on from there.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let stopped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.move_to_postgres(&target, |tree, _| assert_ne!(tree, "raw", "stopped"))
    }));
    std::panic::set_hook(hook);
    assert!(stopped.is_err());
    // The store changes before the next run (a server ran on it meanwhile): that run
    // copies what is new and removes from the copy what is gone.
    let later = spool_to(&s, "acme", &[b"after the stop"]);
    assert!(testing::lose_blob(&s, &small_hash).expect("gone"));
    let refused = Store::open_postgres(&dir.with_extension("early"), &target)
        .err()
        .expect("a database with an unfinished move is not served");
    assert!(
        refused.to_string().contains("has not finished"),
        "{refused}"
    );
    let moved = s.move_to_postgres(&target, |_, _| {}).expect("resumed");
    assert!(moved.resumed);
    assert_eq!(
        moved.entries[1], 3,
        "the originals, the large one from its file"
    );
    assert_eq!(moved.entries[2], 1, "the file left");
    let again = s.move_to_postgres(&target, |_, _| {}).expect_err("twice");
    assert!(again.to_string().contains("already"), "{again}");

    // Another store refuses that database; an empty one takes it.
    let other_dir = dir.with_extension("other");
    let _ = std::fs::remove_dir_all(&other_dir);
    let other = Store::open(&other_dir).expect("other");
    other.secret("reply-token").expect("its secret");
    let refused = other
        .move_to_postgres(&target, |_, _| {})
        .expect_err("another store");
    assert!(refused.to_string().contains("another store"), "{refused}");

    // The moved store reads as the old one did.
    let moved_dir = dir.with_extension("node");
    let _ = std::fs::remove_dir_all(&moved_dir);
    let pg = Store::open_postgres(&moved_dir, &target).expect("open moved");
    assert!(pg.org("acme").expect("org").is_some());
    assert_eq!(
        pg.pending_inbound().expect("pending"),
        [ids.clone(), later].concat()
    );
    assert_eq!(
        pg.raw_message(ids[0]).expect("raw").as_deref(),
        Some(&b"small one"[..])
    );
    assert_eq!(pg.raw_message(ids[1]).expect("raw"), Some(large.clone()));
    assert_eq!(pg.blob(&hash).expect("blob"), Some(large));
    assert_eq!(pg.blob(&small_hash).expect("blob"), None);
    drop((s, other, pg));
    // The sled store is not opened again by mistake.
    let reopened = Store::open(&dir).err().expect("moved");
    assert!(reopened.to_string().contains("already moved"), "{reopened}");
    for d in [dir.with_extension("early"), dir, other_dir, moved_dir] {
        let _ = std::fs::remove_dir_all(d);
    }
}
