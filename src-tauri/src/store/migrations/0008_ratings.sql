-- 0008: the person as the judge (the paper's human evaluation). A Session's rating: the seven
-- pointwise metrics, 1 to 5, and a comment, one per Session (rating again replaces it). A thumb:
-- up (1) or down (-1) on one reply. Each keeps what wrote the replies: the model file's name and
-- the setup (how the prompt was built and the sampling, JSON), so averages can be split by them.
CREATE TABLE ratings (
    session_id    INTEGER PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    model         TEXT NOT NULL,
    setup         TEXT NOT NULL,
    consistency   INTEGER NOT NULL CHECK (consistency BETWEEN 1 AND 5),
    human_likeness INTEGER NOT NULL CHECK (human_likeness BETWEEN 1 AND 5),
    engagement    INTEGER NOT NULL CHECK (engagement BETWEEN 1 AND 5),
    quality       INTEGER NOT NULL CHECK (quality BETWEEN 1 AND 5),
    safety        INTEGER NOT NULL CHECK (safety BETWEEN 1 AND 5),
    correctness   INTEGER NOT NULL CHECK (correctness BETWEEN 1 AND 5),
    overall       INTEGER NOT NULL CHECK (overall BETWEEN 1 AND 5),
    comment       TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL
);

CREATE TABLE thumbs (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    value       INTEGER NOT NULL CHECK (value IN (-1, 1)),
    model       TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
