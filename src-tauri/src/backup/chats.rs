//! A Session as SillyTavern's chat file (JSONL): a header line naming the user and the
//! Character, then one line per Message with its swipes. What an export carries so the
//! conversations open in other apps too; Troupe itself restores from the database snapshot.

use serde_json::json;

use crate::store::{Message, Role};

/// The chat file of one Session: `user` and `character` are the names shown on its lines.
pub fn st_jsonl(user: &str, character: &str, created_at: i64, messages: &[Message]) -> String {
    let mut out = json!({
        "user_name": user,
        "character_name": character,
        "create_date": st_date(created_at),
        "chat_metadata": {},
    })
    .to_string();
    for m in messages {
        let is_user = m.role == Role::User;
        let mut line = json!({
            "name": if is_user { user } else { character },
            "is_user": is_user,
            "is_system": false,
            "send_date": st_date(m.created_at),
            "mes": m.content,
            "extra": {},
        });
        if !m.swipes.is_empty() {
            line["swipes"] = json!(m.swipes);
            line["swipe_id"] = json!(m.swipe);
        }
        out.push('\n');
        out.push_str(&line.to_string());
    }
    out.push('\n');
    out
}

/// SillyTavern's own date style, "2026-12-03@14h05m09s" (UTC).
fn st_date(ms: i64) -> String {
    let (y, mo, d, h, mi, s) = super::civil(ms);
    format!("{y:04}-{mo:02}-{d:02}@{h:02}h{mi:02}m{s:02}s")
}
