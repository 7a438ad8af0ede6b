//! The authkey: random for the main process, inherited, settable per
//! object, redacted, and never serializable.

use wmp_host::AuthKey;

use crate::{child, probe, run_child, runtime};

fn hex(key: &AuthKey) -> String {
    key.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_main_process_gets_32_random_bytes() {
    let (a, b) = (runtime(), runtime());
    let key = a.current_process().authkey();
    assert_eq!(key.as_bytes().len(), 32);
    assert_ne!(key, b.current_process().authkey(), "each runtime draws its own key");
    assert_eq!(format!("{key:?}"), "AuthKey(<redacted>)");
    assert_eq!(key.to_string(), "AuthKey(<redacted>)");
}

#[test]
fn children_inherit_the_key_unless_it_is_set() {
    let rt = runtime();
    let program = probe(&rt);
    let main_key = rt.current_process().authkey();
    let (p, out) = run_child(&rt, &program, "identity", "");
    assert_eq!(p.authkey(), main_key);
    assert_eq!(out.value("authkey"), hex(&main_key));
    assert_eq!(out.value("authkey_debug"), "AuthKey(<redacted>)");

    let (q, out) = child(&rt, &program, "identity", "");
    let own = AuthKey::new(*b"secret");
    q.set_authkey(own.clone());
    q.start().unwrap();
    q.join(None).unwrap();
    assert_eq!(out.value("authkey"), hex(&own));
    assert_eq!(rt.current_process().authkey(), main_key, "setting a child's key leaves main's alone");

    // Setting the main process's key affects processes created afterwards.
    let newer = AuthKey::new(*b"newer");
    rt.current_process().set_authkey(newer.clone());
    assert_eq!(rt.process(&program).build().authkey(), newer);
    assert_eq!(p.authkey(), main_key);
}

#[test]
fn serde_refuses_the_key_in_host_and_guest() {
    let rt = runtime();
    let err = serde_json::to_string(&rt.current_process().authkey()).unwrap_err();
    assert_eq!(err.to_string(), "Pickling an AuthenticationString object is disallowed for security reasons");
    let program = probe(&rt);
    let (_, out) = run_child(&rt, &program, "authkey_serde", "");
    assert_eq!(out.value("refused"), "Pickling an AuthenticationString object is disallowed for security reasons");
    assert_eq!(
        out.value("as_args"),
        "Err(\"cannot encode the arguments of target \\\"print\\\": Pickling an AuthenticationString object is disallowed for security reasons\")"
    );
}
