-- 0002: sampling settings per Character (its default) and per Session (an override), as JSON
-- of engine::Sampling. NULL inherits: Session → Character → the app's settings.
ALTER TABLE characters ADD COLUMN sampling TEXT;
ALTER TABLE sessions ADD COLUMN sampling TEXT;
