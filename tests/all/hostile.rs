//! Hostile and bad input: each gets a clear error or is contained, the
//! host never panics, and it keeps serving other processes afterwards.

use std::time::Duration;

use wmp_host::{Capabilities, Error, ExitReason, Limit, Limits, Preopen, Runtime, Stdio};

use crate::{PATIENCE, child_builder, probe, run_child, runtime};

#[test]
fn programs_that_are_not_runnable_are_refused_at_load_or_start() {
    let rt = runtime();
    let plain = std::fs::read(wmp_test_guests::PLAIN_P1).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("empty", Vec::new(), "not a WebAssembly module or component"),
        ("text", b"#!/bin/sh\necho hi\n".to_vec(), "not a WebAssembly module or component"),
        ("truncated", plain[..plain.len() / 3].to_vec(), "invalid program truncated"),
    ];
    for (name, bytes, expected) in cases {
        let err = rt.load_bytes(name, &bytes).err().unwrap_or_else(|| panic!("{name} loaded"));
        assert!(matches!(err, Error::InvalidProgram { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
        assert!(!err.to_string().contains('\n'), "{name}: one line: {err}");
    }
    // No command: loaded (for its functions to be invoked), refused at start.
    let no_commands: [(&str, &[u8], &str); 1] = [("library component", b"(component)", "not a WASI command component")];
    for (name, bytes, expected) in no_commands {
        let program = rt.load_bytes(name, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let err = rt.process(&program).build().start().err().unwrap_or_else(|| panic!("{name} started"));
        assert!(matches!(err, wmp_host::ProcessError::SpawnFailed(_)), "{name}: {err:?}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
        assert!(!err.to_string().contains('\n'), "{name}: one line: {err}");
    }
    let err = rt.load_bytes("imports", b"(module (import \"env\" \"f\" (func)) (func (export \"_start\")))").unwrap_err();
    assert!(err.to_string().contains("env"), "names the missing import: {err}");
    let (p, _) = run_child(&rt, &probe(&rt), "noop", "");
    assert_eq!(p.exitcode(), Ok(Some(0)), "the runtime still works");
}

#[test]
fn a_program_file_over_the_runtimes_size_limit_is_refused() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-program-size");
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = std::fs::read(wmp_test_guests::PLAIN_P1).unwrap();
    let artifact = dir.join("plain.cwasm");
    std::fs::write(&artifact, Runtime::new().unwrap().precompile("plain", &wasm).unwrap()).unwrap();
    let artifact_size = std::fs::metadata(&artifact).unwrap().len();
    let wasm_size = wasm.len() as u64;
    let capped = |max: u64| Runtime::builder().max_program_size(max).build().unwrap();
    let too_large = |result: wmp_host::Result<wmp_host::Program>, max: u64| match result {
        Err(Error::ProgramTooLarge { max_size, .. }) => assert_eq!(max_size, max),
        other => panic!("loaded past a limit of {max} bytes: {other:?}"),
    };
    too_large(capped(wasm_size - 1).load(wmp_test_guests::PLAIN_P1), wasm_size - 1);
    capped(wasm_size).load(wmp_test_guests::PLAIN_P1).expect("exactly the limit loads");
    // SAFETY: the artifact was made by precompile just above.
    too_large(unsafe { capped(artifact_size - 1).load_precompiled(&artifact) }, artifact_size - 1);
    // SAFETY: as above.
    unsafe { capped(artifact_size).load_precompiled(&artifact) }.expect("exactly the limit loads");
    let err = Runtime::new().unwrap().read_program("/dev/zero").unwrap_err();
    assert_eq!(err.to_string(), "cannot load /dev/zero: not a regular file (a character device)");
}

#[test]
fn huge_arguments_pass_through() {
    let rt = runtime();
    let program = probe(&rt);
    let big = "a".repeat(16 << 20);
    let (p, _) = run_child(&rt, &program, "noop", &big);
    assert_eq!(p.exitcode(), Ok(Some(0)), "16 MiB of target arguments");
    let many: Vec<String> = (0..100_000).map(|i| i.to_string()).collect();
    let argv = std::iter::once("probe".to_owned()).chain(many);
    let p = rt.process(&program).capabilities(Capabilities::new().args(argv).stdout(Stdio::Null)).build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exitcode(), Ok(Some(0)), "100,000 argv entries");
}

#[test]
fn a_flooding_guest_fills_only_its_capture_limit() {
    let rt = runtime();
    let program = probe(&rt);
    let (stdout, buffer) = Stdio::capture_up_to(1 << 20);
    let p = rt
        .process(&program)
        .capabilities(Capabilities::new().stdout(stdout))
        .target("flood", serde_json::to_vec("").unwrap())
        .limits(Limits { timeout: Some(Duration::from_millis(300)), ..Limits::new() })
        .build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.exit_reason(), Ok(Some(ExitReason::Limit(Limit::Timeout))));
    assert_eq!(buffer.contents().len(), 1 << 20);
    assert!(buffer.dropped() > 0, "the rest was dropped");
}

#[test]
fn a_guest_cannot_leave_its_preopened_directory() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-preopen");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("inside")).unwrap();
    std::fs::write(dir.join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("inside/link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", dir.join("inside/abs")).unwrap();
    let rt = runtime();
    for module in [wmp_test_guests::PLAIN_P1, wmp_test_guests::PLAIN_P2] {
        let program = rt.load(module).unwrap();
        for path in ["/data/../secret.txt", "/data/link", "/data/abs", "/etc/hostname"] {
            let (stdout, out) = Stdio::capture();
            let (stderr, err) = Stdio::capture();
            let caps = Capabilities::new()
                .args(["plain", "read", path])
                .preopen(Preopen { host: dir.join("inside"), guest: "/data".into(), read_only: false })
                .stdout(stdout)
                .stderr(stderr);
            let p = rt.process(&program).capabilities(caps).build();
            p.start().unwrap();
            p.join(Some(PATIENCE)).unwrap();
            assert_ne!(p.exitcode(), Ok(Some(0)), "{module} read {path}: {}", out.text());
            assert!(out.text().is_empty(), "{module} read {path}: {}", out.text());
            assert!(err.text().starts_with(&format!("read {path}: ")), "{module}: {}", err.text());
        }
    }
}

#[test]
fn a_read_only_directory_cannot_be_written() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hostile-read-only");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.txt"), "readable").unwrap();
    let rt = runtime();
    let program = rt.load(wmp_test_guests::PLAIN_P1).unwrap();
    let run = |args: &[&str]| {
        let (stdout, out) = Stdio::capture();
        let preopen = Preopen { host: dir.clone(), guest: "/data".into(), read_only: false }.read_only();
        let caps = Capabilities::new().args(args.iter().copied()).preopen(preopen).stdout(stdout).stderr(Stdio::Null);
        let p = rt.process(&program).capabilities(caps).build();
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        (p.exitcode().unwrap(), out.text())
    };
    assert_eq!(run(&["plain", "read", "/data/in.txt"]), (Some(0), "readable".to_owned()));
    assert_eq!(run(&["plain", "write", "/data/new.txt", "x"]).0, Some(2));
    assert!(!dir.join("new.txt").exists());
}

#[test]
fn a_trapping_looping_or_greedy_guest_leaves_the_host_serving() {
    let rt = runtime();
    let program = probe(&rt);
    let limits = Limits { timeout: Some(Duration::from_millis(200)), max_memory: Some(32 << 20), ..Limits::new() };
    let mut running = Vec::new();
    for (target, args) in [("trap", ""), ("spin", ""), ("alloc", "100"), ("panic", "x"), ("fork_bomb", "")] {
        let (builder, _) = child_builder(&rt, &program, target, args);
        let limits = Limits { max_processes: Some(4), ..limits.clone() };
        let p = builder.limits(limits).build();
        p.start().unwrap();
        running.push(p);
    }
    let (ok, _) = run_child(&rt, &program, "noop", "");
    assert_eq!(ok.exitcode(), Ok(Some(0)), "served while the others misbehave");
    for p in &running {
        p.join(Some(PATIENCE)).unwrap();
        assert_ne!(p.exitcode().unwrap(), Some(0), "{p}");
    }
    assert_eq!(rt.live_process_count(), 0);
}

#[test]
fn a_pipe_streams_output_and_holds_back_a_flood() {
    let rt = runtime();
    let program = probe(&rt);
    let (stdout, mut reader) = Stdio::pipe();
    let p = rt
        .process(&program)
        .capabilities(Capabilities::new().stdout(stdout))
        .target("nest", serde_json::to_vec("print through the pipe").unwrap())
        .build();
    p.start().unwrap();
    let mut text = Vec::new();
    while let Some(chunk) = reader.read_blocking() {
        text.extend(chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("through the pipe\n"), "the child's output: {text}");
    assert!(text.contains("Process-1:1 exitcode=Some(0)"), "{text}");
    assert_eq!(p.exitcode(), Ok(Some(0)), "end of stream once the writers are gone");

    // Nobody reads: the flooding guest waits instead of filling memory.
    let (stdout, mut reader) = Stdio::pipe();
    let p = rt
        .process(&program)
        .capabilities(Capabilities::new().stdout(stdout))
        .target("flood", serde_json::to_vec("").unwrap())
        .build();
    p.start().unwrap();
    p.join(Some(Duration::from_millis(100))).unwrap();
    assert!(p.is_alive().unwrap(), "blocked on the full pipe, not ended");
    p.kill().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let mut chunks = 0;
    while reader.read_blocking().is_some() {
        chunks += 1;
    }
    assert!(chunks <= 64 + 8, "the pipe held {chunks} chunks");
}

#[test]
fn the_network_is_closed_unless_granted() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let rt = runtime();
    let program = rt.load(wmp_test_guests::PLAIN_P2).unwrap();
    let connect = |granted: bool| {
        let (stdout, out) = Stdio::capture();
        let (stderr, err) = Stdio::capture();
        let caps = Capabilities::new().args(["plain", "connect", &address]).network(granted).stdout(stdout).stderr(stderr);
        let p = rt.process(&program).capabilities(caps).build();
        p.start().unwrap();
        p.join(Some(PATIENCE)).unwrap();
        (p.exitcode().unwrap(), out.text(), err.text())
    };
    let (code, _, err) = connect(false);
    assert_ne!(code, Some(0), "connected without a grant");
    assert!(err.starts_with(&format!("connect {address}: ")), "{err}");
    let (code, out, err) = connect(true);
    assert_eq!((code, out.as_str()), (Some(0), "connected\n"), "{err}");
}
