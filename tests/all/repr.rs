//! `Display` of a process object: CPython's repr in every state.

use wmp_host::Capabilities;

use crate::{PATIENCE, child, probe, runtime};

#[test]
fn repr_through_the_lifecycle() {
    let rt = runtime();
    let program = probe(&rt);
    let (p, _) = child(&rt, &program, "spin", "");
    assert_eq!(p.to_string(), "<Process name='Process-1' parent=1 initial>");
    p.set_daemon(true).unwrap();
    p.start().unwrap();
    let pid = p.pid().unwrap().unwrap();
    assert_eq!(p.to_string(), format!("<Process name='Process-1' pid={pid} parent=1 started daemon>"));
    p.terminate().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.to_string(), format!("<Process name='Process-1' pid={pid} parent=1 stopped exitcode=-SIGTERM daemon>"));
    p.close().unwrap();
    assert_eq!(p.to_string(), "<Process name='Process-1' parent=1 closed daemon>");

    let (q, _) = child(&rt, &program, "spin", "");
    q.start().unwrap();
    q.kill().unwrap();
    q.join(Some(PATIENCE)).unwrap();
    let qpid = q.pid().unwrap().unwrap();
    assert_eq!(q.to_string(), format!("<Process name='Process-2' pid={qpid} parent=1 stopped exitcode=-SIGKILL>"));
    assert_eq!(format!("{q:?}"), q.to_string());
}

#[test]
fn repr_of_exit_codes_and_names() {
    let rt = runtime();
    let program = probe(&rt);
    let p = rt
        .process(&program)
        .capabilities(Capabilities::new().stdout(wmp_host::Stdio::Null))
        .target("exit_with", b"\"3\"".to_vec())
        .name("it's")
        .build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let pid = p.pid().unwrap().unwrap();
    assert_eq!(p.to_string(), format!("<Process name=\"it's\" pid={pid} parent=1 stopped exitcode=3>"));
    assert_eq!(rt.current_process().to_string(), "<_MainProcess name='MainProcess' parent=None started>");
}
