//! Which process writes a `streaming` reply. A reply row is `streaming` only while a process
//! writes it; when that process dies (a crash, kill -9), the next `Store::open` marks it
//! `interrupted`. The window and the CLI open the same library, so "every streaming row at
//! open" would also catch the reply the window is writing right now: each streaming row names
//! its writer (`owner`: the process id and its start time, so a reused id does not pass for
//! the dead writer), and only rows whose writer is gone are recovered.

/// This process, as a streaming row's `owner`.
pub(super) fn me() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or(0))
}

/// Whether the process `owner` names still runs. Where processes cannot be looked up (no
/// /proc), only this process counts as alive: other writers' rows are recovered, as before.
pub(super) fn alive(owner: &str) -> bool {
    if owner == me() {
        return true;
    }
    let Some((pid, start)) = owner.split_once(':') else {
        return false;
    };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
        return false;
    };
    start_time(pid) == Some(start)
}

/// When process `pid` started (clock ticks since boot: field 22 of /proc/PID/stat), if it runs.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_not() {
        assert!(alive(&me()));
        assert!(start_time(std::process::id()).is_some());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let tag = format!("{pid}:{}", start_time(pid).unwrap_or(0));
        child.wait().unwrap();
        assert!(!alive(&tag));
        assert!(!alive("garbage"));
        // Our own id with another start time: a reused id, not us.
        assert!(!alive(&format!("{}:1", std::process::id())));
    }
}
