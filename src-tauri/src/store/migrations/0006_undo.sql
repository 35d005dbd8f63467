-- 0006: undo instead of loss. A deleted Message, Memory or Persona is kept here, as JSON of its
-- row (a Message with its prompt record, a Persona with the Sessions that used it), until the
-- user undoes the delete or the trash empties (TRASH_DAYS, as for Characters and Sessions).
CREATE TABLE deleted (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('message', 'memory', 'persona')),
    row         TEXT NOT NULL,
    deleted_at  INTEGER NOT NULL
);
