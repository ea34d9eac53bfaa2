//! Who the planner tells of assignments, resolutions and colleagues' answers and notes,
//! over a real store in a temporary folder.

use super::*;
use postdesk_store::{NewTicket, Priority, Staff, TicketAction};

const BOSS: &str = "boss@ops.test";
const MIA: &str = "mia@ops.test";
const ALEX: &str = "alex@ops.test";
const CAROL: &str = "carol@customer.test";

/// A store with one organization, an admin (Boss), a manager (Mia) and a Tech (Alex).
fn desk(name: &str) -> Store {
    let dir = std::env::temp_dir().join(format!("postdesk-notifier-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = postdesk_store::testing::open(&dir).expect("open");
    let now = OffsetDateTime::now_utc();
    store
        .add_org(&Org::new(
            "acme",
            "Acme",
            vec!["acme@acme.test".into()],
            now,
        ))
        .expect("org");
    for (email, role) in [
        (BOSS, Role::Admin),
        (MIA, Role::Manager),
        (ALEX, Role::Tech),
    ] {
        store
            .add_staff(&Staff::new(
                email,
                email.split('@').next().unwrap_or(email),
                role,
                now,
            ))
            .expect("staff");
    }
    store
}

fn planner(store: &Store) -> Planner<'_> {
    Planner {
        store,
        secret: [7; 32],
        message_id_secret: [9; 32],
        unsubscribe_secret: [7; 32],
        hourly_cap: 10,
        max_message_bytes: 1 << 20,
        public_url: String::new(),
    }
}

/// A ticket its requester opened in the portal; returns its number.
fn ticket(store: &Store, requester: &str) -> u64 {
    let (t, _) = store
        .open_ticket(&NewTicket::by_requester(
            "acme",
            requester,
            "Printer jams",
            "It jams.",
            OffsetDateTime::now_utc(),
        ))
        .expect("ticket");
    t.number
}

/// `author`'s action on ticket `n`: a text (public or internal) or field changes.
fn act(
    store: &Store,
    n: u64,
    author: &str,
    text: Option<(Visibility, &str)>,
    changes: Vec<Change>,
) -> Event {
    let events = store
        .act_on_ticket(&TicketAction {
            ticket: n,
            author: author.into(),
            by_staff: store.staff(author).expect("read").is_some(),
            text: text.map(|(v, t)| (v, t.to_string())),
            attachments: vec![],
            changes,
            at: OffsetDateTime::now_utc(),
        })
        .expect("act");
    events.last().cloned().expect("an event")
}

/// (recipient, kind) of each mail `event` causes.
fn mails(store: &Store, event: &Event) -> Vec<(String, String)> {
    planner(store)
        .plan(event, &[])
        .expect("plan")
        .into_iter()
        .map(|i| (i.recipient, i.kind))
        .collect()
}

fn bell(store: &Store, event: &Event) -> Vec<(String, String)> {
    planner(store)
        .bell(event)
        .expect("bell")
        .into_iter()
        .map(|b| (b.staff, b.text))
        .collect()
}

fn pair(who: &str, kind: &str) -> (String, String) {
    (who.to_string(), kind.to_string())
}

fn assign(to: &str) -> Vec<Change> {
    vec![Change::Assignee(Some(to.into()))]
}

#[test]
fn the_new_assignee_is_told_never_the_author_nor_of_other_changes() {
    let store = desk("assign");
    let n = ticket(&store, CAROL);
    let to_alex = act(&store, n, BOSS, None, assign(ALEX));
    assert_eq!(mails(&store, &to_alex), [pair(ALEX, "assigned_alert")]);
    let item = planner(&store).plan(&to_alex, &[]).expect("plan").remove(0);
    let parsed = mail_parser::MessageParser::default()
        .parse(&item.raw)
        .expect("parsed");
    let text = parsed.body_text(0).expect("text");
    assert!(
        text.contains(&format!("boss assigned #{n} to you.")),
        "{text}"
    );
    assert_eq!(
        parsed.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    let rung = bell(&store, &to_alex);
    assert_eq!(rung.len(), 1);
    assert_eq!(rung[0].0, ALEX);
    assert!(
        rung[0].1.contains(&format!("assigned #{n} to you")),
        "{rung:?}"
    );

    // Taking a ticket oneself tells nobody; other changes and unassigning are silent.
    for (author, changes) in [
        (MIA, assign(MIA)),
        (BOSS, vec![Change::Priority(Priority::High)]),
        (BOSS, vec![Change::Assignee(None)]),
        (BOSS, vec![Change::Status(Status::Waiting)]),
    ] {
        let e = act(&store, n, author, None, changes);
        assert_eq!(mails(&store, &e), [], "{:?}", e.change);
        assert_eq!(bell(&store, &e), [], "{:?}", e.change);
    }
    // Planned late, after the ticket went to someone else: stale news for Alex (a Tech
    // who may no longer see it), and for Mia, a manager who still may.
    let to_mia = act(&store, n, BOSS, None, assign(MIA));
    act(&store, n, BOSS, None, assign(BOSS));
    assert_eq!(mails(&store, &to_alex), []);
    assert_eq!(bell(&store, &to_alex), []);
    assert_eq!(mails(&store, &to_mia), []);
}

#[test]
fn alerts_off_still_rings_the_bell() {
    let store = desk("alerts-off");
    store.set_staff_alerts(MIA, false).expect("off");
    let n = ticket(&store, CAROL);
    let e = act(&store, n, BOSS, None, assign(MIA));
    assert_eq!(mails(&store, &e), []);
    assert_eq!(bell(&store, &e).len(), 1);
}

#[test]
fn the_requester_hears_once_when_staff_resolve_or_close() {
    let store = desk("resolve");
    let n = ticket(&store, CAROL);
    let resolved = act(
        &store,
        n,
        BOSS,
        None,
        vec![Change::Status(Status::Resolved)],
    );
    let items = planner(&store).plan(&resolved, &[]).expect("plan");
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].recipient.as_str(), items[0].kind.as_str()),
        (CAROL, "resolved_notice")
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&items[0].raw)
        .expect("parsed");
    let text = parsed.body_text(0).expect("text");
    assert!(text.contains("reply to this mail to reopen it"), "{text}");
    assert!(
        text.contains(&format!("marked your request #{n} as resolved")),
        "{text}"
    );
    let reply_to = parsed
        .reply_to()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default();
    let token = postdesk_threading::reply_address(&[7; 32], n, "acme@acme.test", CAROL);
    assert_eq!(reply_to, token);
    assert_eq!(bell(&store, &resolved), [], "the bell is for staff");
    // Closed after resolved: the requester was told already.
    let closed = act(&store, n, BOSS, None, vec![Change::Status(Status::Closed)]);
    assert_eq!(mails(&store, &closed), []);

    // The requester's answer reopens it (the store does), and a resolution planned after
    // that is stale: nothing.
    act(
        &store,
        n,
        CAROL,
        Some((Visibility::Public, "Still jams.")),
        vec![],
    );
    assert_eq!(
        store.ticket(n).expect("read").expect("t").status,
        Status::Open
    );
    assert_eq!(mails(&store, &resolved), []);
    // Done again: told again.
    let again = act(&store, n, MIA, None, vec![Change::Status(Status::Closed)]);
    assert_eq!(mails(&store, &again), [pair(CAROL, "resolved_notice")]);
}

#[test]
fn no_resolution_notice_to_staff_guests_or_those_who_opted_out() {
    let store = desk("resolve-not");
    store
        .set_contact_alerts("quiet@customer.test", false)
        .expect("off");
    for requester in [MIA, "Portal Guest", "quiet@customer.test", "acme@acme.test"] {
        let n = ticket(&store, requester);
        let e = act(
            &store,
            n,
            BOSS,
            None,
            vec![Change::Status(Status::Resolved)],
        );
        assert_eq!(mails(&store, &e), [], "{requester}");
    }
}

#[test]
fn followers_hear_colleagues_answers_and_notes_within_their_view() {
    let store = desk("follow");
    let n = ticket(&store, CAROL);
    for who in [BOSS, MIA, ALEX] {
        store.set_following(n, who, true).expect("follow");
    }
    // Alex, a Tech not involved, may not see the ticket: following is not enough.
    let answer = act(
        &store,
        n,
        BOSS,
        Some((Visibility::Public, "Try tray 2.")),
        vec![],
    );
    assert_eq!(
        mails(&store, &answer),
        [pair(CAROL, "staff_answer"), pair(MIA, "reply_alert")]
    );
    let item = planner(&store).plan(&answer, &[]).expect("plan").remove(1);
    let parsed = mail_parser::MessageParser::default()
        .parse(&item.raw)
        .expect("parsed");
    let text = parsed.body_text(0).expect("text");
    assert!(
        text.contains(&format!("boss answered {CAROL}:")) && text.contains("Try tray 2."),
        "{text}"
    );
    assert_eq!(
        bell(&store, &answer)
            .into_iter()
            .map(|b| b.0)
            .collect::<Vec<_>>(),
        [MIA]
    );

    let note = act(
        &store,
        n,
        MIA,
        Some((Visibility::Internal, "Tray 2 is broken.")),
        vec![],
    );
    assert_eq!(mails(&store, &note), [pair(BOSS, "note_alert")]);
    assert!(!bell(&store, &note).iter().any(|b| b.0 == MIA));

    // Assigned, Alex sees the ticket and hears of the next note, once.
    act(&store, n, BOSS, None, assign(ALEX));
    let note = act(
        &store,
        n,
        BOSS,
        Some((Visibility::Internal, "Order one.")),
        vec![],
    );
    assert_eq!(
        mails(&store, &note),
        [pair(ALEX, "note_alert"), pair(MIA, "note_alert")]
    );
}
