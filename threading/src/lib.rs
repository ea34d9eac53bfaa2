//! Pure functions on a parsed message: classify it, read its subject, match it to a ticket,
//! strip quoted history for display, decode it whole for a search, and make and check
//! reply and unsubscribe tokens. No I/O here.

mod classify;
mod commands;
mod decoded;
mod html;
mod matching;
mod strip;
mod subject;
mod token;
mod unsubscribe;

pub use classify::{classify, Classification};
pub use commands::{parse_commands, valid_date, Command, ParsedCommands};
pub use decoded::decoded_text;
pub use html::{html_to_text, sanitize_html};
pub use matching::{match_ticket, MatchRule, ThreadingInput, TicketLookup, TicketMatch};
pub use strip::{new_text, strip_reply, strip_signature};
pub use subject::{normalize_subject, split_type_prefix, subject_tag, TypePrefix};
pub use token::{check_reply_token, make_reply_token, plus_part, reply_address};
pub use unsubscribe::{check_unsubscribe_token, make_unsubscribe_token};
