//! What makes this program a wmp guest: the marker a runtime looks for
//! before it hands a program its identity and authkey (the note of
//! `wmp_host::declare_wmp_guest!`), and the reading of that handoff as
//! the program loads, before its `main`. By then the handoff fd is closed
//! and the fds it names are close-on-exec, so nothing the program execs
//! inherits them, and nothing it runs later finds the handoff.

use std::io;
use std::sync::{Mutex, OnceLock};

use wmp_host::Handoff;

wmp_host::declare_wmp_guest!(WMP_GUEST_NOTE);

type Received = Mutex<Option<io::Result<Option<Handoff>>>>;

/// The handoff as read, until taken.
fn received() -> &'static Received {
    static RECEIVED: OnceLock<Received> = OnceLock::new();
    RECEIVED.get_or_init(|| {
        // The code that reads the handoff names the note, so that linking
        // the one links the other.
        std::hint::black_box(&WMP_GUEST_NOTE);
        Mutex::new(Some(Handoff::from_environment()))
    })
}

/// Runs as the program loads (an ELF initializer), before `main`.
#[used]
#[unsafe(link_section = ".init_array")]
static READ_AT_LOAD: extern "C" fn() = read_at_load;

extern "C" fn read_at_load() {
    received();
}

/// The handoff this process was started with: None if no runtime started
/// it (or started it as a program that is no wmp guest). Taken once.
pub(super) fn take() -> io::Result<Option<Handoff>> {
    received().lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take().unwrap_or(Ok(None))
}
