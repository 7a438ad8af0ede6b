/* The C wmp guest: prints its identity, starts two children running the
 * target `worker` (exit codes 0 and 3), joins them and prints their exit
 * codes. A child is a fresh instance of this program, entered through the
 * wasi:cli/run export; it asks the host (spawn-context) whether it is a
 * child and, if so, runs the requested target. command.h comes from
 * `wit-bindgen c examples/wit --world wmp:guests/command` (README.md). The module
 * is a WASI preview 1 *reactor* (no main, no exit-time destructors), made a
 * component with the reactor adapter: a command module's exports, such as
 * the bindings' cabi_realloc, would each run the C destructors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

typedef wmp_process_process_own_process_t process_t;
#define BORROW(p) wmp_process_process_borrow_process(p)

/* The targets a child can run, one a line, in the custom section
 * wmp:targets, so the host refuses an unknown target at start(): wasm-ld
 * makes a section named ".custom_section.NAME" the custom section NAME. */
__asm__(".section \".custom_section.wmp:targets\",\"\",@\n.ascii \"worker\\n\"\n.text\n");

/* Prints an error's CPython message (every case carries one) and exits 1. */
static void fail(const char *what, wmp_process_process_error_t *err) {
    fflush(stdout);
    fprintf(stderr, "%s: %.*s\n", what, (int)err->val.closed.len, (const char *)err->val.closed.ptr);
    wmp_process_process_exit(1);
}

/* Prints "ROLE name=N pid=P identity=[a,b] parent_pid=Q" for a process. */
static void describe(const char *role, process_t p) {
    command_string_t name;
    wmp_process_process_option_pid_t pid;
    wmp_process_process_error_t err;
    command_list_u32_t identity;
    wmp_process_process_pid_t parent;

    wmp_process_process_method_process_name(BORROW(p), &name);
    if (!wmp_process_process_method_process_pid(BORROW(p), &pid, &err))
        fail("pid", &err);
    printf("%s name=%.*s pid=%u identity=[", role, (int)name.len, (const char *)name.ptr, pid.is_some ? pid.val : 0);
    wmp_process_process_method_process_identity(BORROW(p), &identity);
    for (size_t i = 0; i < identity.len; i++)
        printf(i ? ",%u" : "%u", identity.ptr[i]);
    if (wmp_process_process_method_process_parent_pid(BORROW(p), &parent))
        printf("] parent_pid=%u\n", parent);
    else
        printf("] parent_pid=none\n");
    fflush(stdout);
    command_string_free(&name);
    command_list_u32_free(&identity);
}

/* The child's target: its argument is the exit code as JSON (3 or "3"). */
static void worker(const char *args) {
    process_t me = wmp_process_process_current_process();
    describe("worker", me);
    wmp_process_process_process_drop_own(me);
    wmp_process_process_exit(atoi(args + (args[0] == '"')));
}

/* Creates and starts a child running `worker` with this exit code. */
static process_t start_worker(const char *code) {
    wmp_process_process_spec_t spec = {0};
    command_string_set(&spec.target, "worker");
    spec.args.ptr = (uint8_t *)code;
    spec.args.len = strlen(code);
    process_t child = wmp_process_process_constructor_process(&spec);
    wmp_process_process_error_t err;
    if (!wmp_process_process_method_process_start(BORROW(child), &err))
        fail("start", &err);
    return child;
}

/* Joins a child and prints "NAME exitcode=N". */
static void join(process_t child) {
    wmp_process_process_error_t err;
    command_option_s32_t code;
    command_string_t name;
    if (!wmp_process_process_method_process_join(BORROW(child), NULL, &err) ||
        !wmp_process_process_method_process_exitcode(BORROW(child), &code, &err))
        fail("join", &err);
    wmp_process_process_method_process_name(BORROW(child), &name);
    printf("%.*s exitcode=%d\n", (int)name.len, (const char *)name.ptr, code.val);
    fflush(stdout);
    command_string_free(&name);
    wmp_process_process_process_drop_own(child);
}

bool exports_wasi_cli_run_run(void) {
    wmp_process_process_spawn_request_t request;
    if (wmp_process_process_spawn_context(&request)) {
        if (request.target.len == strlen("worker") && memcmp(request.target.ptr, "worker", request.target.len) == 0) {
            char *args = strndup((const char *)request.args.ptr, request.args.len);
            worker(args);
        }
        fprintf(stderr, "unknown target %.*s\n", (int)request.target.len, (const char *)request.target.ptr);
        wmp_process_process_exit(1);
    }
    process_t me = wmp_process_process_current_process();
    describe("main", me);
    wmp_process_process_process_drop_own(me);
    process_t first = start_worker("0");
    process_t second = start_worker("3");
    join(first);
    join(second);
    return true;
}
