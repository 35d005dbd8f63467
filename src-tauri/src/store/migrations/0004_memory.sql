-- 0004: what a conversation keeps beyond its messages.
--
-- Personas: who the user is in a Session (the paper's user_info). One is the default.
CREATE TABLE personas (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    is_default   INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);
INSERT INTO personas (name, description, is_default, created_at) VALUES ('User', '', 1, 0);
ALTER TABLE sessions ADD COLUMN persona_id INTEGER REFERENCES personas(id) ON DELETE SET NULL;
-- A deleted Session waits here until undone or the trash empties (as Characters do).
ALTER TABLE sessions ADD COLUMN deleted_at INTEGER;

-- Memories: the rolling summary of what fell out of the window (one row per summarised chunk,
-- `until_message` the last message it covers), pinned memories (a message pinned, or written
-- by the user), and facts about the user gathered in companionship Sessions. A memory with a
-- NULL session_id belongs to the Character (every Session with it sees it).
CREATE TABLE memories (
    id             INTEGER PRIMARY KEY,
    character_id   TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    session_id     INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('summary', 'pinned', 'fact')),
    content        TEXT NOT NULL,
    message_id     INTEGER,            -- pinned: the message; summary: the last message covered
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX memories_by_session ON memories(session_id, kind, id);
CREATE INDEX memories_by_character ON memories(character_id, kind, id);

-- The versions of a reply the user had written again ("swipes"): JSON {"all": [...], "at": n};
-- `content` is always all[at]. NULL for a message written once.
ALTER TABLE messages ADD COLUMN swipes TEXT;

-- What each reply was given: the prompt section by section (JSON of conversation::PromptRecord),
-- for the prompt inspector.
CREATE TABLE prompts (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    record      TEXT NOT NULL
);

-- Full-text search over every message, kept in sync by triggers (the table stores no second
-- copy of the text: it reads `messages`).
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2',
    prefix='2 3'   -- short prefixes ("ka*") read a prefix index instead of every matching word
);
-- A reply being streamed is rewritten after every piece; it is indexed once it is finished
-- (the index must be told the exact text it holds to remove a row, so a row is indexed only
-- while it is not 'streaming').
INSERT INTO messages_fts(rowid, content) SELECT id, content FROM messages WHERE status != 'streaming';
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages WHEN new.status != 'streaming' BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages WHEN old.status != 'streaming' BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content, status ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content)
        SELECT 'delete', old.id, old.content WHERE old.status != 'streaming';
    INSERT INTO messages_fts(rowid, content)
        SELECT new.id, new.content WHERE new.status != 'streaming';
END;
