-- 0005: which process writes a `streaming` reply ("pid:start time", see store/owner.rs), so a
-- second process opening the library (the CLI beside the window) leaves a live reply alone and
-- marks interrupted only the replies whose writer is gone.
ALTER TABLE messages ADD COLUMN owner TEXT;
