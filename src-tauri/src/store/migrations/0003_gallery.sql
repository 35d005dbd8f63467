-- 0003: the gallery's own state. Favourites; a restorable trash (a deleted Character keeps its
-- row, its Sessions and its avatar until the trash is emptied or 30 days pass); and the
-- built-ins the user removed for good, so that the next start does not install them again.
ALTER TABLE characters ADD COLUMN favourite INTEGER NOT NULL DEFAULT 0;
ALTER TABLE characters ADD COLUMN deleted_at INTEGER;   -- unix ms it went to the trash; NULL if not
CREATE TABLE removed_builtins (
    id          TEXT PRIMARY KEY,
    removed_at  INTEGER NOT NULL
);
