//! `Display` of a process object: CPython's repr in every state.

use crate::{Backend, Fixture, Job, PATIENCE};

crate::for_both_backends!(repr_through_the_lifecycle, repr_of_exit_codes_and_names);

fn repr_through_the_lifecycle(backend: Backend) {
    let f = Fixture::new(backend);
    let host = std::process::id();
    let (p, _) = f.child(Job::Spin);
    assert_eq!(p.to_string(), format!("<Process name='Process-1' parent={host} initial>"));
    p.set_daemon(true).unwrap();
    p.start().unwrap();
    let pid = p.pid().unwrap().unwrap();
    assert_eq!(p.to_string(), format!("<Process name='Process-1' pid={pid} parent={host} started daemon>"));
    p.terminate().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    assert_eq!(p.to_string(), format!("<Process name='Process-1' pid={pid} parent={host} stopped exitcode=-SIGTERM daemon>"));
    p.close().unwrap();
    assert_eq!(p.to_string(), format!("<Process name='Process-1' parent={host} closed daemon>"));

    let (q, _) = f.child(Job::Spin);
    q.start().unwrap();
    q.kill().unwrap();
    q.join(Some(PATIENCE)).unwrap();
    let qpid = q.pid().unwrap().unwrap();
    assert_eq!(q.to_string(), format!("<Process name='Process-2' pid={qpid} parent={host} stopped exitcode=-SIGKILL>"));
    assert_eq!(format!("{q:?}"), q.to_string());
}

fn repr_of_exit_codes_and_names(backend: Backend) {
    let f = Fixture::new(backend);
    let rt = &f.rt;
    let host = std::process::id();
    let p = f.builder(Job::ExitWith(3)).0.name("it's").build();
    p.start().unwrap();
    p.join(Some(PATIENCE)).unwrap();
    let pid = p.pid().unwrap().unwrap();
    assert_eq!(p.to_string(), format!("<Process name=\"it's\" pid={pid} parent={host} stopped exitcode=3>"));
    assert_eq!(rt.current_process().to_string(), "<_MainProcess name='MainProcess' parent=None started>");
}
