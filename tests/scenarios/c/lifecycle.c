/* lang_lifecycle.py in C: reprs before start, while running and after the end, exit codes of exit(n), terminate
 * and kill, and the errors of misuse. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "scenarios.h"

int lifecycle_worker(const char *args) {
    char *code = mp_arg(args, 0), *name = mp_process_name(mp_current_process());
    show("worker %s exits with %s", name, code);
    return atoi(code);
}

int lifecycle_spin(const char *args) {
    (void)args;
    for (;;)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
}

/* Prints repr(p) and what follows it on the scripts' lines. */
static void show_repr(mp_process p, const char *rest) {
    char *repr = mp_process_display(p);
    show("%s%s", repr, rest);
    free(repr);
}

static void show_state(mp_process p) {
    int code;
    bool alive;
    char buf[16], rest[48];
    mp_process_exitcode(p, &code, NULL);
    mp_process_is_alive(p, &alive, NULL);
    snprintf(rest, sizeof rest, " %s %s", py_int(code, buf), py_bool(alive));
    show_repr(p, rest);
}

/* The scripts' attempt(): `WHAT ok`, or the exception. */
static void attempt(const char *what, bool ok, const mp_error *err) {
    if (ok)
        show("%s ok", what);
    else
        show_error(what, err);
}

int lang_lifecycle(void) {
    mp_error err;
    mp_process parent;
    char *name = mp_process_name(mp_current_process());
    if (mp_parent_process(&parent)) {
        char *repr = mp_process_display(parent);
        show("main %s %s", name, repr);
        free(repr);
    } else {
        show("main %s None", name);
    }
    free(name);

    mp_process p = mp_process_new((mp_spec){.target = "worker", .args = "[\"3\"]"});
    show_state(p);
    mp_process_start(p, NULL);
    mp_process_join(p, MP_FOREVER, NULL);
    show_state(p);
    int64_t pid;
    mp_process_pid(p, &pid, NULL);
    name = mp_process_name(p);
    show("%s %s %s", name, py_bool(mp_process_daemon(p)), py_bool(pid != MP_NONE)); /* CPython's ident is its pid */
    free(name);
    attempt("start again", mp_process_start(p, &err), &err);

    const char *stops[] = {"terminate", "kill"};
    for (int i = 0; i < 2; i++) {
        char spinner[32], buf[16], rest[24];
        snprintf(spinner, sizeof spinner, "spinner-%s", stops[i]);
        mp_process q = mp_process_new((mp_spec){.target = "spin", .name = spinner});
        mp_process_start(q, NULL);
        (i == 0 ? mp_process_terminate : mp_process_kill)(q, NULL);
        mp_process_join(q, MP_FOREVER, NULL);
        int code;
        mp_process_exitcode(q, &code, NULL);
        snprintf(rest, sizeof rest, " %s", py_int(code, buf));
        show_repr(q, rest);
        mp_process_free(q);
    }

    mp_process r = mp_process_new((mp_spec){.target = "spin", .daemon = true});
    show_repr(r, "");
    mp_process_start(r, NULL);
    attempt("close while running", mp_process_close(r, &err), &err);
    mp_process_kill(r, NULL);
    mp_process_join(r, MP_FOREVER, NULL);
    attempt("close", mp_process_close(r, &err), &err);
    bool alive;
    attempt("is_alive after close", mp_process_is_alive(r, &alive, &err), &err);
    mp_process unstarted = mp_process_new((mp_spec){.target = "spin"});
    attempt("join unstarted", mp_process_join(unstarted, MP_FOREVER, &err), &err);

    mp_process *children;
    size_t count = mp_active_children(&children);
    printf("active [");
    for (size_t i = 0; i < count; i++) {
        char *repr = mp_process_display(children[i]);
        printf(i ? ", %s" : "%s", repr);
        free(repr);
        mp_process_free(children[i]);
    }
    show("]");
    free(children);
    return 0;
}
