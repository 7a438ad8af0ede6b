//! Invoking one exported function as the main process, as `wasmtime run
//! --invoke` does (`Invocation`, `Runtime::invoke_main`): core functions
//! with wasmtime's argument syntax and result printing, a reactor's
//! `_initialize` first, component functions by WAVE call, a bare name
//! searched for in the exported instances; wasmtime's messages for what it
//! refuses; a trap, an exit, a limit or a kill in the function ends the
//! process as in a command.

use std::time::Duration;

use wmp_host::{Capabilities, Error, ExitReason, Invocation, Invoked, Limit, Limits, Program, Runtime, Signal, Stdio};

use crate::runtime;

/// A reactor (no `_start`): `_initialize` sets what `initialized` returns.
const CORE: &str = r#"(module
    (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
    (memory (export "memory") 1)
    (global $initialized (mut i32) (i32.const 0))
    (func (export "_initialize") (global.set $initialized (i32.const 7)))
    (func (export "initialized") (result i32) (global.get $initialized))
    (func (export "step") (param i32 i64 f32 f64) (result i32 i64 f32 f64)
        (i32.add (local.get 0) (i32.const 1))
        (i64.mul (local.get 1) (i64.const 2))
        (f32.neg (local.get 2))
        (f64.div (local.get 3) (f64.const 2)))
    (func (export "nothing"))
    (func (export "vector") (param v128))
    (func (export "boom") (param i32) (result i32) unreachable)
    (func (export "exit") (param i32) (call $exit (local.get 0)))
    (func (export "spin") (loop (br 0))))"#;

/// Functions at the top level and in two instances, `neg` in both (the
/// differential tests invoke them under wasmtime too).
pub(crate) const COMPONENT: &str = r#"(component
    (core module $m
        (memory (export "mem") 1)
        (data (i32.const 0) "\10\00\00\00\05\00\00\00")
        (data (i32.const 16) "hello")
        (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
        (func (export "neg") (param f64) (result f64) (f64.neg (local.get 0)))
        (func (export "or-zero") (param i32 i32) (result i32) (select (local.get 1) (i32.const 0) (local.get 0)))
        (func (export "greet") (result i32) (i32.const 0))
        (func (export "nothing"))
        (func (export "boom") unreachable))
    (core instance $i (instantiate $m))
    (func $add (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add")))
    (func $neg (param "x" f64) (result f64) (canon lift (core func $i "neg")))
    (func $or-zero (param "x" (option u32)) (result u32) (canon lift (core func $i "or-zero")))
    (func $greet (result string) (canon lift (core func $i "greet") (memory (core memory $i "mem"))))
    (func $nothing (canon lift (core func $i "nothing")))
    (func $boom (canon lift (core func $i "boom")))
    (export "add" (func $add))
    (export "greet" (func $greet))
    (export "nothing" (func $nothing))
    (export "boom" (func $boom))
    (instance $ops (export "neg" (func $neg)) (export "or-zero" (func $or-zero)))
    (instance $more (export "neg" (func $neg)))
    (export "wmp:test/ops" (instance $ops))
    (export "wmp:test/more@0.1.0" (instance $more)))"#;

fn load(rt: &Runtime, name: &str, text: &str) -> Program {
    rt.load_bytes(name, text.as_bytes()).expect("loading")
}

fn invocation(program: &Program, function: &str, args: &[&str]) -> wmp_host::Result<Invocation> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Invocation::new(program, function, &args)
}

/// Invokes `function` of `text` as the main process of a new runtime.
fn invoke(name: &str, text: &str, function: &str, args: &[&str]) -> Invoked {
    let rt = runtime();
    let invocation = invocation(&load(&rt, name, text), function, args).expect("a valid invocation");
    rt.invoke_main(&invocation, Capabilities::new()).expect("invoking")
}

fn returned(results: &[&str]) -> Invoked {
    Invoked { exit: ExitReason::Returned, results: Some(results.iter().map(|r| r.to_string()).collect()) }
}

/// The message of an invocation `Invocation::new` refuses.
fn refusal(program: &Program, function: &str, args: &[&str]) -> Error {
    invocation(program, function, args).err().unwrap_or_else(|| panic!("{function} {args:?} was accepted"))
}

#[test]
fn a_core_function_takes_and_returns_each_number_type() {
    let invoked = invoke("core.wat", CORE, "step", &["41", "-4500000000", "2.5", "-0.25"]);
    assert_eq!(invoked, returned(&["42", "-9000000000", "-2.5", "-0.125"]));
    let invoked = invoke("core.wat", CORE, "step", &["0x10", "0X7fffffffffff", "1e3", "inf", "ignored"]);
    assert_eq!(invoked, returned(&["17", "281474976710654", "-1000", "inf"]), "hex integers; extra arguments ignored");
    assert_eq!(invoke("core.wat", CORE, "nothing", &[]), returned(&[]), "no results, no lines");
}

#[test]
fn an_invocation_says_whether_the_function_takes_and_returns_values() {
    let rt = runtime();
    let core = load(&rt, "core.wat", CORE);
    let step = invocation(&core, "step", &["1", "2", "3", "4"]).unwrap();
    assert!(step.takes_arguments() && step.returns_values());
    let initialized = invocation(&core, "initialized", &[]).unwrap();
    assert!(!initialized.takes_arguments() && initialized.returns_values());
    let nothing = invocation(&core, "nothing", &[]).unwrap();
    assert!(!nothing.takes_arguments() && !nothing.returns_values());
    assert_eq!(nothing.function(), "nothing");
    let component = load(&rt, "component.wat", COMPONENT);
    let add = invocation(&component, "add(1, 2)", &[]).unwrap();
    assert!(add.takes_arguments() && add.returns_values());
    let nothing = invocation(&component, "nothing()", &[]).unwrap();
    assert!(!nothing.takes_arguments() && !nothing.returns_values());
}

#[test]
fn bad_core_invocations_are_refused_with_wasmtimes_messages() {
    let rt = runtime();
    let core = load(&rt, "core.wat", CORE);
    let cases: [(&str, &[&str], &str); 6] = [
        ("step", &["1", "2"], "not enough arguments for `step`"),
        ("step", &["x", "1", "1", "1"], "invalid digit found in string"),
        ("step", &["0x80000000", "1", "1", "1"], "number too large to fit in target type"),
        ("step", &["1", "1", "y", "1"], "invalid float literal"),
        ("vector", &["1"], "unsupported argument type v128"),
        ("nope", &[], "no func export named `nope` found"),
    ];
    for (function, args, message) in cases {
        let err = refusal(&core, function, args);
        assert_eq!(err.to_string(), message, "{function} {args:?}");
        let expected_kind = if function == "nope" {
            matches!(err, Error::NoSuchFunction(_))
        } else {
            matches!(err, Error::InvalidArguments(_))
        };
        assert!(expected_kind, "{function} {args:?}: {err:?}");
    }
    assert!(matches!(refusal(&core, "memory", &[]), Error::NoSuchFunction(_)), "an export that is no function");
}

#[test]
fn a_reactor_is_initialized_before_the_invoked_function_and_as_its_command() {
    assert_eq!(invoke("core.wat", CORE, "initialized", &[]), returned(&["7"]), "_initialize ran first");
    // Run as a command (as `wasmtime run` runs it), a module without
    // `_start` is instantiated and initialized, and returns.
    let rt = runtime();
    let reason = rt.run_main(&load(&rt, "core.wat", CORE), Capabilities::new()).unwrap();
    assert_eq!(reason, ExitReason::Returned);
    let spins_in_initialize = r#"(module (func (export "_initialize") (loop (br 0))))"#;
    let p = rt.process(&load(&rt, "spin.wat", spins_in_initialize)).build();
    p.start().unwrap();
    p.join(Some(Duration::from_millis(200))).unwrap();
    assert_eq!(p.exitcode(), Ok(None), "its _initialize runs: {p}");
    p.kill().unwrap();
    p.join(None).unwrap();
}

#[test]
fn a_command_modules_initialize_runs_before_its_start() {
    let both = r#"(module
        (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
        (memory (export "memory") 1)
        (global $initialized (mut i32) (i32.const 0))
        (func (export "_initialize") (global.set $initialized (i32.const 7)))
        (func (export "_start") (call $exit (global.get $initialized))))"#;
    let rt = runtime();
    assert_eq!(rt.run_main(&load(&rt, "both.wat", both), Capabilities::new()).unwrap(), ExitReason::Exit(7));
}

#[test]
fn a_command_module_can_have_its_start_invoked() {
    let rt = runtime();
    let plain = rt.load(wmp_test_guests::PLAIN_P1).unwrap();
    let (stdout, captured) = Stdio::capture();
    let caps = Capabilities::new().args(["plain", "args", "x"]).stdout(stdout);
    let invoked = rt.invoke_main(&invocation(&plain, "_start", &[]).unwrap(), caps).unwrap();
    assert_eq!(invoked, returned(&[]));
    assert_eq!(captured.text(), "plain\nargs\nx\n", "its argv is the process's, not the function's");
}

#[test]
fn a_trap_in_an_invoked_function_ends_the_process_as_in_a_command() {
    let rt = runtime();
    let (stderr, captured) = Stdio::capture();
    let boom = invocation(&load(&rt, "core.wat", CORE), "boom", &["1"]).unwrap();
    let invoked = rt.invoke_main(&boom, Capabilities::new().stderr(stderr)).unwrap();
    assert!(matches!(&invoked.exit, ExitReason::Trap(why) if why.contains("unreachable")), "{invoked:?}");
    assert_eq!(invoked.results, None);
    let report = captured.text();
    assert!(report.starts_with("Error: failed to run main module `core.wat`\n"), "{report}");
    assert!(report.contains("failed to invoke `boom`"), "wasmtime's context: {report}");
    assert_eq!(invoke("core.wat", CORE, "exit", &["3"]), Invoked { exit: ExitReason::Exit(3), results: None });
}

#[test]
fn an_invoked_function_is_stopped_by_a_limit_and_by_a_kill() {
    let limits = Limits { timeout: Some(Duration::from_millis(100)), ..Limits::new() };
    let rt = Runtime::builder().limits(limits).build().unwrap();
    let spin = invocation(&load(&rt, "core.wat", CORE), "spin", &[]).unwrap();
    let invoked = rt.invoke_main(&spin, Capabilities::new()).unwrap();
    assert_eq!(invoked, Invoked { exit: ExitReason::Limit(Limit::Timeout), results: None });
    let rt = runtime();
    let spin = invocation(&load(&rt, "core.wat", CORE), "spin", &[]).unwrap();
    let invoked = std::thread::scope(|scope| {
        let running = scope.spawn(|| rt.invoke_main(&spin, Capabilities::new()).unwrap());
        while rt.live_process_count() == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        rt.signal_main(Signal::Kill);
        running.join().unwrap()
    });
    assert_eq!(invoked, Invoked { exit: ExitReason::Killed, results: None }, "a tight loop is killed");
}

#[test]
fn component_functions_take_wave_arguments_and_return_wave_results() {
    let cases: [(&str, &str); 7] = [
        ("add(3, 4)", "7"),
        ("greet()", "\"hello\""),
        ("nothing()", "()"),
        ("wmp:test/ops.neg(1.5)", "-1.5"),
        ("wmp:test/more.neg@0.1.0(2)", "-2"),
        // A bare name is found in the one instance that has it.
        ("or-zero(some(5))", "5"),
        ("or-zero(none)", "0"),
    ];
    for (call, result) in cases {
        assert_eq!(invoke("component.wat", COMPONENT, call, &[]), returned(&[result]), "{call}");
    }
}

#[test]
fn a_component_command_can_have_its_run_invoked_by_a_bare_name() {
    let rt = runtime();
    let plain = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    let (stdout, captured) = Stdio::capture();
    let caps = Capabilities::new().args(["plain", "args", "x"]).stdout(stdout);
    let invoked = rt.invoke_main(&invocation(&plain, "run()", &[]).unwrap(), caps).unwrap();
    assert_eq!(invoked, returned(&["ok"]), "wasi:cli/run's result<_, _>");
    assert_eq!(captured.text(), "plain\nargs\nx\n");
}

#[test]
fn bad_component_invocations_are_refused_with_wasmtimes_messages() {
    let rt = runtime();
    let component = load(&rt, "component.wat", COMPONENT);
    let not_found = [
        (
            "neg(1.5)",
            "Multiple instances contained funcs named `neg`, retry with a more specific name: \
             `wmp:test/ops.neg`, `wmp:test/more.neg@0.1.0`",
        ),
        ("nope()", "No exported func named `nope` in component."),
        ("wmp:test/ops.nope()", "No exported func named `wmp:test/ops.nope` in component."),
        ("wmp:test/more.neg(2)", "No exported func named `wmp:test/more.neg` in component."),
    ];
    for (call, message) in not_found {
        let err = refusal(&component, call, &[]);
        assert!(matches!(err, Error::NoSuchFunction(_)), "{call}: {err:?}");
        assert_eq!(err.to_string(), message, "{call}");
    }
    let invalid = [
        ("add(1)", "while interpreting parameters in invoke \"add(1)\": invalid params: missing required param(s) at 5..6"),
        ("add(1, \"x\")", "while interpreting parameters in invoke \"add(1, \"x\")\": invalid value type at 7..10"),
        (
            "add(1",
            "Failed to parse invoke 'add(1': See https://docs.wasmtime.dev/cli-options.html#run for syntax: \
             unexpected end of input at 5..5",
        ),
    ];
    for (call, message) in invalid {
        let err = refusal(&component, call, &[]);
        assert!(matches!(err, Error::InvalidArguments(_)), "{call}: {err:?}");
        assert_eq!(err.to_string(), message, "{call}");
    }
}

#[test]
fn a_trap_in_an_invoked_component_function_ends_the_process_as_in_a_command() {
    let invoked = invoke("component.wat", COMPONENT, "boom()", &[]);
    assert!(matches!(&invoked.exit, ExitReason::Trap(why) if why.contains("unreachable")), "{invoked:?}");
    assert_eq!(invoked.results, None);
}
