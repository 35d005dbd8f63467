-- 0009: the arena. One row per compared turn. The reply message holds both versions as swipes:
-- version 0 was shown as A, version 1 as B; `a` and `b` name the contenders behind them (which
-- one was A was drawn at random), with the prompt record each reply was given. `a_failed` and
-- `b_failed` say why a side stopped early, if it did. The person's choice is a, b, tie or bad
-- (both bad), NULL until picked.
CREATE TABLE arena_turns (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    message_id  INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    a           TEXT NOT NULL,
    b           TEXT NOT NULL,
    a_record    TEXT,
    b_record    TEXT,
    a_failed    TEXT,
    b_failed    TEXT,
    choice      TEXT CHECK (choice IN ('a', 'b', 'tie', 'bad')),
    created_at  INTEGER NOT NULL,
    picked_at   INTEGER
);
CREATE INDEX arena_turns_by_session ON arena_turns(session_id, id);
