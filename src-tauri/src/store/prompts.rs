//! Prompt records: what each reply was given (a `PromptRecord` as JSON), for the prompt
//! inspector and `troupe prompt`.

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};

impl Store {
    /// Keeps what a reply was given (JSON), for the prompt inspector.
    pub fn save_prompt_record(&self, message_id: i64, record: &str) -> Result<()> {
        self.conn().execute(
            "INSERT OR REPLACE INTO prompts (message_id, record) VALUES (?1, ?2)",
            params![message_id, record],
        )?;
        Ok(())
    }

    pub fn prompt_record(&self, message_id: i64) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT record FROM prompts WHERE message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()?)
    }
}
