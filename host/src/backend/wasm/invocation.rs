//! The library's face of `wasmtime run --invoke`: an [`Invocation`] is a
//! call of one exported function of a program, checked against the
//! function's type before anything runs, and [`Invoked`] is how the main
//! process that made it ended and what the function returned.

use std::sync::{Arc, OnceLock};

use crate::backend::wasm::entry::{Call, Entry};
use crate::backend::wasm::program::{Code, Program};
use crate::base::error::Result;
use crate::base::exit::ExitReason;

/// A call of one exported function of a program, checked against the
/// function's type; [`Runtime::invoke_main`](crate::Runtime::invoke_main)
/// makes it.
#[derive(Clone)]
pub struct Invocation {
    program: Program,
    call: Call,
}

impl Invocation {
    /// The call `wasmtime run --invoke FUNCTION` makes of `program` with
    /// the arguments after it, `args`.
    ///
    /// For a core module, `function` names the export, and `args` gives one
    /// argument per parameter (more are ignored): an i32 or i64 in decimal
    /// or `0x` hexadecimal, an f32 or f64 as Rust parses it; no other
    /// parameter type is supported. For a component, `function` is the
    /// whole call in WAVE (`add(1, 2)`, `my:pkg/iface.f("x")`; a bare
    /// name is searched for in the exported instances and must be
    /// unambiguous), and `args` are not looked at (wasmtime passes them only
    /// as the program's argv).
    ///
    /// Errors are [`Error::NoSuchFunction`](crate::Error::NoSuchFunction)
    /// and [`Error::InvalidArguments`](crate::Error::InvalidArguments), with
    /// wasmtime's message.
    pub fn new(program: &Program, function: &str, args: &[String]) -> Result<Invocation> {
        let call = match program.code() {
            Code::Module(pre) => Call::core(pre.module(), function, args)?,
            Code::Component { pre, .. } => Call::component(pre.component(), function)?,
        };
        Ok(Invocation { program: program.clone(), call })
    }

    /// The program whose function it calls.
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The function as it was named (for a component, the whole call).
    pub fn function(&self) -> &str {
        &self.call.function
    }

    /// Whether the function has parameters.
    pub fn takes_arguments(&self) -> bool {
        self.call.takes_arguments()
    }

    /// Whether the function has results.
    pub fn returns_values(&self) -> bool {
        self.call.returns_values()
    }

    /// The entry of a main process that makes this call, and where the
    /// lines of what the function returns will be.
    pub(crate) fn entry(&self) -> (Entry, Arc<OnceLock<Vec<String>>>) {
        let results = Arc::default();
        (Entry::Invoke(self.call.clone(), Arc::clone(&results)), results)
    }
}

/// How a main process that invoked a function ended, and what the
/// function returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoked {
    /// How the process ended: [`ExitReason::Returned`] once the function
    /// returned (and its children ended), else as a command ends.
    pub exit: ExitReason,
    /// What the function returned, as `wasmtime run --invoke` prints it on
    /// stdout, a line each: one value a line for a core function (none for
    /// none), one WAVE line for a component function (`()` for none). None
    /// if the function did not return (a trap, an exit, a stop).
    pub results: Option<Vec<String>>,
}

impl Invoked {
    /// How the process that made an invocation ended as `exit`, with what
    /// the function returned, if it did, in `results`.
    pub(crate) fn after(exit: ExitReason, results: &OnceLock<Vec<String>>) -> Invoked {
        Invoked { exit, results: results.get().cloned() }
    }
}
