//! A child's stdin: empty by default, or a pipe the host writes
//! ([`Stdin::pipe`]) with backpressure, a broken-pipe error once the child
//! has ended, and the end of the stream when the writer is closed; for wasm
//! core modules (WASI preview 1), components (preview 2) and native
//! children alike.

use std::time::Duration;

use wmp_host::{
    Capabilities, CaptureBuffer, NativeProgram, Process, ProcessError, Runtime, STDIO_PIPE_CAPACITY, Stdin, StdinClosed,
    Stdio,
};

use crate::{PATIENCE, probe, runtime};

/// The kinds of process that read a stdin.
#[derive(Clone, Copy, Debug)]
enum Reader {
    CoreModule,
    Component,
    Native,
}

const READERS: [Reader; 3] = [Reader::CoreModule, Reader::Component, Reader::Native];

/// What the process does.
#[derive(Clone, Copy, Debug)]
enum Does {
    /// Copies its stdin to its stdout until the end of its stdin.
    Cat,
    /// Ends at once, without reading.
    Exit,
    /// Runs until killed, without reading.
    Spin,
}

/// A process of `reader`'s kind doing `does`, with `stdin` and its stdout
/// captured; not started. (The wasm process that spins is the probe
/// component for both wasm kinds: what matters there is that it never reads.)
fn process(rt: &Runtime, reader: Reader, does: Does, stdin: Stdin) -> (Process, CaptureBuffer) {
    let (stdout, captured) = Stdio::capture();
    let caps = Capabilities::new().stdin(stdin).stdout(stdout);
    let builder = match (reader, does) {
        (Reader::CoreModule | Reader::Component, Does::Spin) => {
            rt.process(&probe(rt)).capabilities(caps.args(["probe"])).target("spin", serde_json::to_vec("").unwrap())
        }
        (Reader::CoreModule | Reader::Component, _) => {
            let plain = match reader {
                Reader::CoreModule => wmp_test_guests::PLAIN_P1,
                _ => wmp_test_guests::PLAIN_P2,
            };
            let args: &[&str] = if let Does::Cat = does { &["plain", "cat"] } else { &["plain", "exit", "0"] };
            rt.process(&rt.load(plain).unwrap()).capabilities(caps.args(args.iter().copied()))
        }
        (Reader::Native, Does::Cat) => rt.native_process(&NativeProgram::new("/bin/cat")).capabilities(caps),
        (Reader::Native, Does::Exit) => rt.native_process(&NativeProgram::new("/bin/true")).capabilities(caps),
        (Reader::Native, Does::Spin) => rt
            .native_process(&NativeProgram::new("/bin/sh"))
            .capabilities(caps.args(["sh", "-c", "exec sleep 600"])),
    };
    (builder.build(), captured)
}

/// `len` bytes that are not all alike, so a lost or reordered chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn join_to_end(p: &Process) {
    p.join(Some(PATIENCE)).unwrap();
    assert!(!p.is_alive().unwrap(), "{p} still running after {PATIENCE:?}");
}

#[test]
fn a_child_reads_an_empty_stdin_by_default() {
    let rt = runtime();
    for reader in READERS {
        let (p, stdout) = process(&rt, reader, Does::Cat, Stdin::default());
        p.start().unwrap();
        join_to_end(&p);
        assert_eq!((p.exitcode(), stdout.contents()), (Ok(Some(0)), Vec::new()), "{reader:?}");
    }
}

#[test]
fn a_piped_stdin_brings_the_child_all_the_host_writes_past_the_pipes_capacity() {
    let rt = runtime();
    let input = pattern(3 * STDIO_PIPE_CAPACITY + 17);
    for reader in READERS {
        let (stdin, mut writer) = Stdin::pipe();
        let (p, stdout) = process(&rt, reader, Does::Cat, stdin);
        p.start().unwrap();
        writer.write_blocking(&input).unwrap();
        writer.close();
        join_to_end(&p);
        assert_eq!(p.exitcode(), Ok(Some(0)), "{reader:?}");
        assert!(stdout.contents() == input, "{reader:?}: {} bytes came out of {}", stdout.contents().len(), input.len());
    }
}

#[test]
fn an_async_write_waits_for_room_and_dropping_the_writer_ends_the_stream() {
    use tokio::io::AsyncWriteExt;

    let rt = runtime();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let input = pattern(2 * STDIO_PIPE_CAPACITY);
    for reader in READERS {
        let (stdin, mut writer) = Stdin::pipe();
        let (p, stdout) = process(&rt, reader, Does::Cat, stdin);
        p.start().unwrap();
        tokio.block_on(async {
            writer.write(b"first ").await.unwrap();
            writer.write(&input).await.unwrap();
            AsyncWriteExt::write_all(&mut writer, b" last").await.unwrap(); // as a tokio AsyncWrite
        });
        drop(writer);
        join_to_end(&p);
        assert_eq!(p.exitcode(), Ok(Some(0)), "{reader:?}");
        assert!(stdout.contents() == [&b"first "[..], &input, b" last"].concat(), "{reader:?}");
    }
}

#[test]
fn a_writer_waits_while_the_child_does_not_read_and_fails_when_it_ends() {
    let rt = runtime();
    for reader in READERS {
        let (stdin, mut writer) = Stdin::pipe();
        let (p, _) = process(&rt, reader, Does::Spin, stdin);
        p.start().unwrap();
        let writing = std::thread::spawn(move || writer.write_blocking(&pattern(2 * STDIO_PIPE_CAPACITY)));
        p.join(Some(Duration::from_millis(100))).unwrap();
        assert!(!writing.is_finished(), "{reader:?}: the write waits for room, it neither ends nor fills memory");
        p.kill().unwrap();
        join_to_end(&p);
        assert_eq!(writing.join().unwrap(), Err(StdinClosed), "{reader:?}: a waiting write fails when the child ends");
    }
}

#[test]
fn writing_after_the_child_ended_is_a_broken_pipe() {
    let rt = runtime();
    for reader in READERS {
        let (stdin, mut writer) = Stdin::pipe();
        let (p, _) = process(&rt, reader, Does::Exit, stdin);
        p.start().unwrap();
        join_to_end(&p);
        assert_eq!(writer.write_blocking(b"late"), Err(StdinClosed), "{reader:?}");
        let error = std::io::Error::from(writer.write_blocking(b"late").unwrap_err());
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
    }
    // Never started: dropping the process object closes its stdin.
    let (stdin, mut writer) = Stdin::pipe();
    drop(process(&rt, Reader::Native, Does::Cat, stdin));
    assert_eq!(writer.write_blocking(b"nobody"), Err(StdinClosed));
}

#[test]
fn a_stdin_pipe_is_given_to_one_process_only() {
    let rt = runtime();
    for reader in READERS {
        let (stdin, writer) = Stdin::pipe();
        let (first, _) = process(&rt, reader, Does::Cat, stdin.clone());
        let (second, _) = process(&rt, reader, Does::Cat, stdin);
        first.start().unwrap();
        match second.start() {
            Err(ProcessError::SpawnFailed(why)) => {
                assert!(why.ends_with("its stdin pipe was given to another process"), "{reader:?}: {why}")
            }
            other => panic!("{reader:?}: a second process started with the same stdin pipe: {other:?}"),
        }
        drop(writer);
        join_to_end(&first);
        assert_eq!(first.exitcode(), Ok(Some(0)), "{reader:?}");
    }
}

#[test]
fn a_native_child_that_closes_its_stdin_breaks_the_pipe_while_it_runs() {
    let rt = runtime();
    let (stdin, mut writer) = Stdin::pipe();
    let (stdout, output) = Stdio::capture();
    let caps = Capabilities::new().args(["sh", "-c", "exec 0<&-; echo closed; exec sleep 600"]).stdin(stdin).stdout(stdout);
    let p = rt.native_process(&NativeProgram::new("/bin/sh")).capabilities(caps).build();
    p.start().unwrap();
    while output.text().is_empty() {
        p.join(Some(Duration::from_millis(5))).unwrap();
    }
    assert_eq!(writer.write_blocking(&pattern(2 * STDIO_PIPE_CAPACITY)), Err(StdinClosed));
    assert!(p.is_alive().unwrap(), "the pipe broke because the child closed its end, not because it ended");
    p.kill().unwrap();
    join_to_end(&p);
}
