//! How processes and exit codes are named: default names from identities,
//! CPython's repr of a name, and signal names for negative exit codes.

/// Default name of a process with this identity: `Process-1`, `Process-2:1`.
/// The main process (empty identity) is `MainProcess`.
pub fn default_name(identity: &[u32]) -> String {
    if identity.is_empty() {
        return "MainProcess".to_owned();
    }
    let parts: Vec<String> = identity.iter().map(u32::to_string).collect();
    format!("Process-{}", parts.join(":"))
}

/// How CPython's process repr shows an exit code: `0`, `3`, or a signal
/// name for a negative code (`-SIGTERM`), falling back to the number.
pub fn exitcode_display(code: i32) -> String {
    if code < 0
        && let Some(name) = signal_name(-code)
    {
        return format!("-{name}");
    }
    code.to_string()
}

/// Linux signal names as CPython's `_exitcode_to_name` has them (where two
/// names share a number, the one CPython keeps: SIGABRT, SIGCHLD, SIGPOLL).
pub fn signal_name(signum: i32) -> Option<&'static str> {
    Some(match signum {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        16 => "SIGSTKFLT",
        17 => "SIGCHLD",
        18 => "SIGCONT",
        19 => "SIGSTOP",
        20 => "SIGTSTP",
        21 => "SIGTTIN",
        22 => "SIGTTOU",
        23 => "SIGURG",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        26 => "SIGVTALRM",
        27 => "SIGPROF",
        28 => "SIGWINCH",
        29 => "SIGPOLL",
        30 => "SIGPWR",
        31 => "SIGSYS",
        34 => "SIGRTMIN",
        64 => "SIGRTMAX",
        _ => return None,
    })
}

/// Python's `repr()` of a string: single quotes unless the text holds a
/// single quote and no double quote; backslashes, the chosen quote and
/// control characters escaped.
pub fn python_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_identity() {
        assert_eq!(default_name(&[]), "MainProcess");
        assert_eq!(default_name(&[1]), "Process-1");
        assert_eq!(default_name(&[2, 1]), "Process-2:1");
        assert_eq!(default_name(&[1, 2, 1]), "Process-1:2:1");
    }

    #[test]
    fn exitcodes_show_signal_names() {
        assert_eq!(exitcode_display(0), "0");
        assert_eq!(exitcode_display(3), "3");
        assert_eq!(exitcode_display(-15), "-SIGTERM");
        assert_eq!(exitcode_display(-9), "-SIGKILL");
        assert_eq!(exitcode_display(-11), "-SIGSEGV");
        assert_eq!(exitcode_display(-6), "-SIGABRT");
        assert_eq!(exitcode_display(-29), "-SIGPOLL");
        assert_eq!(exitcode_display(-40), "-40");
    }

    #[test]
    fn repr_quotes_like_python() {
        assert_eq!(python_repr("Process-1"), "'Process-1'");
        assert_eq!(python_repr("it's"), "\"it's\"");
        assert_eq!(python_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(python_repr("back\\slash\n"), "'back\\\\slash\\n'");
    }
}
