//! Prints the stripped text of a file or stdin: `cargo run -p postdesk-threading --example strip FILE`.
use std::io::Read;
fn main() {
    let mut text = String::new();
    match std::env::args().nth(1) {
        Some(p) => {
            text = String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned()
        }
        None => {
            let _ = std::io::stdin().read_to_string(&mut text);
        }
    }
    println!("{}", postdesk_threading::strip_reply(&text));
}
