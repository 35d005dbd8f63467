-- 0001: the first tables. Characters keep their whole definition as JSON (the schema of a
-- Character evolves faster than SQL should) plus the columns the gallery sorts and filters on.
CREATE TABLE characters (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    category    TEXT NOT NULL CHECK (category IN ('celebrity', 'daily_life', 'fictional')),
    data        TEXT NOT NULL,            -- JSON of characters::Character
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,         -- unix milliseconds
    updated_at  INTEGER NOT NULL
);

CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    character_id  TEXT NOT NULL REFERENCES characters(id) ON DELETE CASCADE,
    scenario      TEXT NOT NULL CHECK (scenario IN ('chit_chat', 'interview', 'companionship')),
    title         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
-- The character page lists its sessions, most recent first.
CREATE INDEX sessions_by_character ON sessions(character_id, updated_at DESC);

-- One row per message. A streamed reply is inserted as 'streaming' and its content rewritten
-- as it grows, so a crash loses nothing that was shown; it ends 'complete' or 'interrupted'.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('user', 'character')),
    content     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'interrupted')),
    created_at  INTEGER NOT NULL
);
-- Opening a session reads its messages in order.
CREATE INDEX messages_by_session ON messages(session_id, id);
