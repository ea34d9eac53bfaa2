//! Unguessable tokens (sessions, form tokens, sign-in links, directory secrets): 32 random
//! bytes, base32, lowercase.

pub fn new_token() -> String {
    data_encoding::BASE32_NOPAD
        .encode(&postdesk_store::random_bytes::<32>())
        .to_ascii_lowercase()
}
