//! Pipes, queues, listeners and `wait` between processes (issue 5):
//! host↔guest, parent↔child and sibling guests; EOF after a clean close or
//! a killed peer, never a hang; the authkey challenge, with a wrong key
//! failing both sides; large messages, floods of small ones, and
//! backpressure on a slow reader.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use wmp_host::{AuthKey, Connection, ConnectionError, PIPE_CAPACITY, Process, Waitable};

use crate::{Backend, Fixture, Output, PATIENCE, child, for_both_backends, probe, run_child, runtime, wait_for_output};

// Under the native backend the probe is a native process, and the ends
// and queues passed to it cross over inherited sockets.
for_both_backends!(
    a_guest_child_echoes_what_the_host_sends,
    the_host_receives_what_a_guest_child_sends_until_eof,
    a_message_reaches_its_reader_while_the_sender_computes_on,
    parent_and_child_guests_talk_over_a_pipe,
    sibling_guests_talk_over_a_pipe_their_parent_made,
    a_killed_peer_gives_eof_not_a_hang,
    a_48_mib_message_goes_through_whole,
    many_small_messages_all_arrive,
    messages_read_ahead_go_with_an_end_passed_on,
    wait_returns_connections_with_data_beside_ended_sentinels,
    workers_return_results_over_a_queue,
    the_host_gets_from_a_queue_its_guest_children_put_on,
    a_childs_handle_to_a_bounded_queue_waits_and_times_out,
);

/// Starts the probe's `target` with `args` under `fx`'s backend, with
/// `connection` passed to it.
fn started_with_connection(fx: &Fixture, target: &str, args: &str, connection: Connection) -> (Process, Output) {
    let (builder, out) = fx.probe_builder(target, args);
    let child = builder.build();
    child.pass_connection(connection).unwrap();
    child.start().unwrap();
    (child, out)
}

#[test]

fn a_pipe_delivers_values_in_order_then_eof_after_close() {
    let rt = runtime();
    let (a, b) = rt.pipe(true);
    for i in 0..100u32 {
        a.send(&i).unwrap();
    }
    b.send("back").unwrap();
    a.close();
    let got: Vec<u32> = (0..100).map(|_| b.recv().unwrap()).collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(b.recv_bytes(), Err(ConnectionError::Eof));
    assert_eq!(b.send_bytes(b"x"), Err(ConnectionError::BrokenPipe));
    assert_eq!(a.recv_bytes(), Err(ConnectionError::Closed));
    assert!(b.poll(Some(Duration::ZERO)).unwrap(), "EOF is ready to be read");
}

#[test]
fn a_one_way_pipe_reads_at_one_end_and_writes_at_the_other() {
    let rt = runtime();
    let (rx, tx) = rt.pipe(false);
    assert!(rx.readable() && !rx.writable() && tx.writable() && !tx.readable());
    assert_eq!(rx.send_bytes(b"x"), Err(ConnectionError::ReadOnly));
    assert_eq!(tx.recv_bytes(), Err(ConnectionError::WriteOnly));
    assert!(!rx.poll(Some(Duration::from_millis(20))).unwrap(), "nothing sent yet");
    tx.send_bytes(b"").unwrap();
    assert!(rx.poll(None).unwrap());
    assert_eq!(rx.recv_bytes().unwrap(), b"");
}

fn a_guest_child_echoes_what_the_host_sends(backend: Backend) {
    let fx = Fixture::new(backend);
    let (mine, theirs) = fx.rt.pipe(true);
    let (child, out) = started_with_connection(&fx, "echo", "", theirs);
    for i in 0..1000u32 {
        mine.send(&(i, "payload")).unwrap();
    }
    let back: Vec<(u32, String)> = (0..1000).map(|_| mine.recv().unwrap()).collect();
    assert!(back.iter().enumerate().all(|(i, (n, text))| *n as usize == i && text == "payload"));
    mine.close();
    child.join(Some(PATIENCE)).unwrap();
    assert_eq!(child.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert!(out.stdout().contains("echoed=1000 end=EOF"), "{}", out.stdout());
}

fn the_host_receives_what_a_guest_child_sends_until_eof(backend: Backend) {
    let fx = Fixture::new(backend);
    let (mine, theirs) = fx.rt.pipe(false);
    let (child, _out) = started_with_connection(&fx, "source", "5000 64 100", theirs);
    let mut received = 0;
    loop {
        match mine.recv_many(1 << 20) {
            Ok(batch) => {
                assert!(batch.iter().all(|m| m == &[7u8; 64]));
                received += batch.len();
            }
            Err(end) => {
                assert_eq!(end, ConnectionError::Eof);
                break;
            }
        }
    }
    assert_eq!(received, 5000);
    child.join(Some(PATIENCE)).unwrap();
}

/// A guest's send wakes its reader when the guest's poll returns: one
/// that computes on without another call still yields at its next epoch
/// tick, and the message is there.
fn a_message_reaches_its_reader_while_the_sender_computes_on(backend: Backend) {
    let fx = Fixture::new(backend);
    let (mine, theirs) = fx.rt.pipe(false);
    let (child, _out) = started_with_connection(&fx, "send_then_spin", "sent before computing", theirs);
    assert!(mine.poll(Some(PATIENCE)).unwrap(), "the message came while its sender still computes");
    assert_eq!(mine.recv_bytes().unwrap(), b"sent before computing");
    assert!(child.is_alive().unwrap(), "the sender is still computing");
    child.kill().unwrap();
    child.join(Some(PATIENCE)).unwrap();
}

fn parent_and_child_guests_talk_over_a_pipe(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("pipe_parent", "1000");
    assert_eq!(p.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert_eq!(out.value("in_order"), "true");
    assert_eq!(out.value("child_exitcode"), "Some(0)");
    assert_eq!(out.value("pass_after_start"), r#"Err("process has already started")"#);
    assert!(out.stdout().contains("echoed=1000 end=EOF"), "{}", out.stdout());
}

fn sibling_guests_talk_over_a_pipe_their_parent_made(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("siblings", "10000");
    assert_eq!(p.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert!(out.stdout().contains("consumed=10000 sum=49995000 end=EOF"), "{}", out.stdout());
}

fn workers_return_results_over_a_queue(backend: Backend) {
    let (p, out) = Fixture::new(backend).run_probe("queue_map", "4");
    assert_eq!(p.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert_eq!(out.value("results"), "[(1, 1), (2, 4), (3, 9), (4, 16)]");
    // Every worker has ended: with no other handle, get does not wait.
    assert!(out.value("after_workers").starts_with("Err(\"EOF"), "{}", out.stdout());
}

fn the_host_gets_from_a_queue_its_guest_children_put_on(backend: Backend) {
    let fx = Fixture::new(backend);
    let results = fx.rt.queue(0);
    let workers: Vec<_> = (1..=3u64)
        .map(|i| {
            let worker = fx.probe_builder("square", &i.to_string()).0.build();
            worker.pass_queue(&results).unwrap();
            worker.start().unwrap();
            worker
        })
        .collect();
    let mut got: Vec<(u64, u64)> = (0..3).map(|_| results.get(Some(PATIENCE)).unwrap()).collect();
    got.sort();
    assert_eq!(got, [(1, 1), (2, 4), (3, 9)]);
    for worker in workers {
        worker.join(Some(PATIENCE)).unwrap();
    }
    assert_eq!(results.get_bytes(Some(PATIENCE)), Err(ConnectionError::Eof));
}

#[test]
fn a_queue_hands_each_message_to_exactly_one_of_many_consumers() {
    let rt = runtime();
    let queue = rt.queue(16);
    let (producers, consumers, each) = (4u64, 4, 5000u64);
    let producing: Vec<_> = (0..producers)
        .map(|p| {
            let queue = queue.clone();
            std::thread::spawn(move || (0..each).for_each(|i| queue.put(&(p * each + i), None).unwrap()))
        })
        .collect();
    let consuming: Vec<_> = (0..consumers)
        .map(|_| {
            let queue = queue.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match queue.get::<u64>(Some(PATIENCE)).unwrap() {
                        u64::MAX => break got,
                        value => got.push(value),
                    }
                }
            })
        })
        .collect();
    producing.into_iter().for_each(|p| p.join().unwrap());
    (0..consumers).for_each(|_| queue.put(&u64::MAX, None).unwrap());
    let mut all: Vec<u64> = consuming.into_iter().flat_map(|c| c.join().unwrap()).collect();
    all.sort();
    assert_eq!(all, (0..producers * each).collect::<Vec<_>>());
}

#[test]
fn a_bounded_queue_makes_put_wait_and_time_out() {
    let rt = runtime();
    let (p, out) = run_child(&rt, &probe(&rt), "queue_bounds", "");
    assert_eq!(p.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert_eq!(out.value("third_put"), r#"Err("queue is full")"#);
    assert_eq!(out.value("waited"), "true");
    assert!(out.stdout().contains("qsize=2 empty=false"), "{}", out.stdout());
    assert_eq!(out.value("got"), "ab");
    assert!(out.value("get_alone").starts_with("Err(\"EOF"), "{}", out.stdout());
    assert_eq!(out.value("put_closed"), r#"Err("handle is closed")"#);

    // The same from the host, with a second handle so that get waits.
    let queue = rt.queue(1);
    let other = queue.clone();
    queue.put_bytes(b"one".to_vec(), None).unwrap();
    assert_eq!(queue.put_bytes(b"two".to_vec(), Some(Duration::from_millis(20))), Err(ConnectionError::Full));
    assert_eq!(other.get_bytes(None).unwrap(), b"one");
    assert!(other.empty());
    assert_eq!(other.get_bytes(Some(Duration::from_millis(20))), Err(ConnectionError::Empty));
    // A closed handle stays closed, also when cloned: with it gone, the
    // other handle is alone and get no longer waits.
    queue.close();
    assert_eq!(queue.clone().put_bytes(b"three".to_vec(), None), Err(ConnectionError::Closed));
    assert_eq!(other.get_bytes(None), Err(ConnectionError::Eof));
}

#[test]
fn a_guest_client_with_the_right_key_is_served_by_a_host_listener() {
    let rt = runtime();
    let program = probe(&rt);
    let listener = rt.listen("host-service", None).unwrap();
    assert_eq!(rt.listen("host-service", None).unwrap_err(), ConnectionError::AddressInUse("host-service".into()));
    // The child inherits the host's authkey and uses it by default.
    let (client, out) = child(&rt, &program, "client", "host-service");
    client.start().unwrap();
    let conn = listener.accept().unwrap();
    assert_eq!(conn.recv::<String>().unwrap(), "hello from a client");
    conn.send("welcome").unwrap();
    client.join(Some(PATIENCE)).unwrap();
    assert_eq!(out.value("client got"), "welcome");
}

#[test]
fn guests_not_created_together_connect_through_an_address() {
    let rt = runtime();
    let program = probe(&rt);
    let (server, server_out) = child(&rt, &program, "serve", "guest-service");
    server.start().unwrap();
    wait_for_output(&server, &server_out, "listening at guest-service");
    let (client, client_out) = run_child(&rt, &program, "client", "guest-service");
    server.join(Some(PATIENCE)).unwrap();
    assert_eq!(client.exitcode().unwrap(), Some(0));
    assert_eq!(server_out.value("server got"), "hello from a client");
    assert_eq!(client_out.value("client got"), "welcome");
}

#[test]
fn a_wrong_key_fails_both_sides_and_delivers_nothing() {
    let rt = runtime();
    let program = probe(&rt);

    // Host listener, guest client with the wrong key.
    let listener = rt.listen("guarded", Some(AuthKey::new(b"right key".to_vec()))).unwrap();
    let (client, client_out) = child(&rt, &program, "client", "guarded wrong-key");
    client.start().unwrap();
    assert_eq!(listener.accept().unwrap_err(), ConnectionError::Authentication("digest received was wrong".into()));
    client.join(Some(PATIENCE)).unwrap();
    assert_eq!(client_out.value("client error"), "digest sent was rejected");
    assert!(!client_out.stdout().contains("client got"));

    // Guest listener, host client with the wrong key: the guest serves no
    // one and gets none of the host's data.
    let (server, server_out) = child(&rt, &program, "serve", "guarded-guest right-key");
    server.start().unwrap();
    wait_for_output(&server, &server_out, "listening at guarded-guest");
    let refused = rt.connect("guarded-guest", Some(AuthKey::new(b"wrong-key".to_vec())));
    assert_eq!(refused.unwrap_err(), ConnectionError::Authentication("digest sent was rejected".into()));
    server.join(Some(PATIENCE)).unwrap();
    assert_eq!(server_out.value("server error"), "digest received was wrong");
    assert!(!server_out.stdout().contains("server got"), "{}", server_out.stdout());

    assert_eq!(rt.connect("nobody-here", None).unwrap_err(), ConnectionError::Refused("nobody-here".into()));
}

fn a_killed_peer_gives_eof_not_a_hang(backend: Backend) {
    let fx = Fixture::new(backend);
    let (mine, theirs) = fx.rt.pipe(true);
    let holder = fx.probe_builder("hold", "").0.build();
    holder.pass_connection(theirs).unwrap();
    holder.start().unwrap();
    assert_eq!(mine.recv::<String>().unwrap(), "holding");
    holder.kill().unwrap();
    holder.join(Some(PATIENCE)).unwrap();
    assert_eq!(mine.recv_bytes(), Err(ConnectionError::Eof));
    assert_eq!(mine.send_bytes(b"anyone?"), Err(ConnectionError::BrokenPipe));

    // The same seen from a guest parent.
    let (p, out) = fx.run_probe("killed_peer", "");
    assert_eq!(p.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert_eq!(out.value("child says"), "holding");
    assert!(out.value("recv").starts_with("Err(\"EOF"), "{}", out.stdout());
    assert!(out.value("send").starts_with("Err(\"broken pipe"), "{}", out.stdout());
}

#[test]
fn an_unstarted_child_closes_what_was_passed_to_it_when_dropped() {
    let rt = runtime();
    let (mine, theirs) = rt.pipe(true);
    let (child, _) = child(&rt, &probe(&rt), "echo", "");
    child.pass_connection(theirs).unwrap();
    drop(child);
    assert_eq!(mine.recv_bytes(), Err(ConnectionError::Eof));
}

fn a_48_mib_message_goes_through_whole(backend: Backend) {
    let fx = Fixture::new(backend);
    let (mine, theirs) = fx.rt.pipe(true);
    let (child, out) = started_with_connection(&fx, "echo", "", theirs);
    // Under the 64 MiB host-memory budget a guest has by default.
    let big: Vec<u8> = (0..48 << 20).map(|i: u32| (i % 251) as u8).collect();
    mine.send_bytes(&big).unwrap();
    let back = mine.recv_bytes().unwrap();
    assert!(back == big, "the echo differs (length {})", back.len());
    mine.close();
    child.join(Some(PATIENCE)).unwrap();
    assert_eq!(child.exitcode().unwrap(), Some(0), "{}", out.stderr());
}

fn many_small_messages_all_arrive(backend: Backend) {
    let fx = Fixture::new(backend);
    let (theirs, mine) = fx.rt.pipe(false);
    let (child, out) = started_with_connection(&fx, "drain", "batched", theirs);
    for batch in 0..200u32 {
        mine.send_many((0..1000u32).map(|i| (batch * 1000 + i).to_le_bytes().to_vec()).collect()).unwrap();
    }
    for i in 0..1000u32 {
        mine.send_bytes(&i.to_le_bytes()).unwrap();
    }
    mine.close();
    child.join(Some(PATIENCE)).unwrap();
    assert!(out.stdout().contains("received=201000 bytes=804000 end=EOF"), "{}", out.stdout());
}

fn messages_read_ahead_go_with_an_end_passed_on(backend: Backend) {
    // The wasm SDK's receive takes all ten at once; the nine it keeps are
    // handed back before the end goes to the grandchild.
    let fx = Fixture::new(backend);
    let (theirs, mine) = fx.rt.pipe(false);
    for i in 0..10 {
        mine.send_bytes(format!("m{i}").as_bytes()).unwrap();
    }
    mine.close();
    let (child, out) = started_with_connection(&fx, "recv_one_then_pass", "", theirs);
    child.join(Some(PATIENCE)).unwrap();
    assert_eq!(child.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert!(out.stdout().starts_with("first=m0\nreceived=9 bytes=18 end=EOF"), "{}", out.stdout());
}

#[test]
fn a_slow_reader_holds_the_writer_back() {
    let rt = runtime();
    let (rx, tx) = rt.pipe(false);
    let sent = Arc::new(AtomicUsize::new(0));
    const SIZE: usize = 1 << 10;
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            for _ in 0..(4 * PIPE_CAPACITY / SIZE) {
                tx.send_bytes(&[1; SIZE]).unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let held_back_at = sent.load(Ordering::Relaxed);
    assert!(held_back_at * SIZE <= PIPE_CAPACITY + SIZE, "{held_back_at} messages queued unread");
    assert!(!writer.is_finished());
    let mut received = 0;
    while rx.recv_bytes().is_ok() {
        received += 1;
    }
    writer.join().unwrap();
    assert_eq!(received, 4 * PIPE_CAPACITY / SIZE);
}

fn wait_returns_connections_with_data_beside_ended_sentinels(backend: Backend) {
    let fx = Fixture::new(backend);
    let rt = &fx.rt;
    let (mine, theirs) = rt.pipe(true);
    let child = fx.probe_builder("send_later", "100").0.build();
    child.pass_connection(theirs).unwrap();
    child.start().unwrap();
    let sentinel = child.sentinel().unwrap();
    let items = [Waitable::from(&sentinel), Waitable::from(&mine)];
    assert_eq!(rt.wait_for(&items, Some(Duration::ZERO)), Vec::<usize>::new());
    let started = Instant::now();
    assert_eq!(rt.wait_for(&items, Some(PATIENCE)), [1]);
    assert!(started.elapsed() < PATIENCE);
    assert_eq!(mine.recv::<String>().unwrap(), "late");
    mine.send("thanks").unwrap();
    child.join(Some(PATIENCE)).unwrap();
    // EOF follows the end (a moment later from a native child, whose
    // socket is read by a bridge).
    assert!(mine.poll(Some(PATIENCE)).unwrap());
    assert_eq!(rt.wait_for(&items, Some(PATIENCE)), [0, 1]);

    // And from inside a guest (the wait WIT function).
    let (p, out) = fx.run_probe("wait_both", "100");
    assert_eq!(p.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert_eq!(out.value("nothing_yet"), "[]");
    assert_eq!(out.value("first_ready"), "[1]");
    assert_eq!(out.value("message"), "late");
    assert_eq!(out.value("then_ready"), "[0, 1]");
}

/// A child's handle (remote for a native child) to the host's bounded
/// queue: its put times out, or waits for room; its `empty` and `get` see
/// what the host did; once the host's handle is closed it finds EOF.
fn a_childs_handle_to_a_bounded_queue_waits_and_times_out(backend: Backend) {
    let fx = Fixture::new(backend);
    let queue = fx.rt.queue(1);
    let (builder, out) = fx.probe_builder("queue_peer", "");
    let child = builder.build();
    child.pass_queue(&queue).unwrap();
    child.start().unwrap();
    wait_for_output(&child, &out, "second_put=Err(\"queue is full\")");
    assert_eq!(queue.get::<String>(Some(PATIENCE)).unwrap(), "first");
    wait_for_output(&child, &out, "waited_put=Ok(())");
    assert_eq!(queue.get::<String>(Some(PATIENCE)).unwrap(), "second");
    wait_for_output(&child, &out, "emptied");
    queue.put("from the host", None).unwrap();
    wait_for_output(&child, &out, "got=from the host");
    queue.close();
    child.join(Some(PATIENCE)).unwrap();
    assert_eq!(child.exitcode().unwrap(), Some(0), "{}", out.stderr());
    assert!(out.value("then").starts_with("Err(\"EOF"), "{}", out.stdout());
}
