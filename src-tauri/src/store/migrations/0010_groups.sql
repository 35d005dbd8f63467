-- 0010: group Sessions. A Session with rows in `session_members` is a group; its
-- `sessions.character_id` is a member (the host, whose page lists it too) and moves to another
-- member before a purge would delete it (`purge_trash`). `character_id` here has no foreign
-- key: a member purged for good leaves the group's history as it was, shown under its id.
CREATE TABLE session_members (
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    character_id  TEXT NOT NULL,
    position      INTEGER NOT NULL,
    muted         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, character_id)
);
-- When each member was in the room: they saw the messages with after_message < id and, once
-- they left, id <= until_message. A member who left and came back has two rows.
CREATE TABLE session_presence (
    session_id     INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    character_id   TEXT NOT NULL,
    after_message  INTEGER NOT NULL,
    until_message  INTEGER
);
CREATE INDEX session_presence_by_session ON session_presence(session_id, character_id);
ALTER TABLE sessions ADD COLUMN group_name TEXT;
-- natural, list, pooled or manual (who speaks next); NULL for a one-Character Session.
ALTER TABLE sessions ADD COLUMN strategy TEXT;
-- Which member wrote a reply in a group (NULL elsewhere: the Session's Character).
ALTER TABLE messages ADD COLUMN speaker_id TEXT;
