-- 0007: evaluation runs (`troupe eval`, the Evaluate tab). One row per run and Character (NULL:
-- a run over several), with the model, the setup's name and the report as JSON (metrics with
-- their samples, problems, notes), so a person sees what an edit or a model switch changed.
CREATE TABLE eval_runs (
    id            INTEGER PRIMARY KEY,
    character_id  TEXT REFERENCES characters(id) ON DELETE CASCADE,
    model         TEXT NOT NULL,
    setup         TEXT NOT NULL,
    report        TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX eval_runs_by_character ON eval_runs(character_id, created_at);
