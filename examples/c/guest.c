/* The C wmp guest, on the wrapper multiprocessing.h. Its main prints its identity, starts two children running
 * the target `worker` (exit codes 0 and 3), joins them and prints their exit codes; with argv `mixed PROGRAM...`
 * it starts the target `echo` of each program the host shared by that name, hands it one end of a pipe and
 * prints the child's reply. A child is a fresh instance of a program, entered through wasi:cli/run, where the
 * wrapper runs the requested target. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multiprocessing.h"

/* Prints "ROLE name=N pid=P identity=[a,b] parent_pid=Q" for a process (identity through the bindings: CPython
 * keeps it private as _identity). */
static void describe(const char *role, mp_process p) {
    char *name = mp_process_name(p);
    int64_t pid;
    mp_process_pid(p, &pid, NULL);
    printf("%s name=%s pid=%lld identity=[", role, name, (long long)(pid == MP_NONE ? 0 : pid));
    command_list_u32_t identity;
    wmp_process_process_method_process_identity(wmp_process_process_borrow_process(p), &identity);
    for (size_t i = 0; i < identity.len; i++)
        printf(i ? ",%u" : "%u", identity.ptr[i]);
    wmp_process_process_pid_t parent;
    if (wmp_process_process_method_process_parent_pid(wmp_process_process_borrow_process(p), &parent))
        printf("] parent_pid=%u\n", parent);
    else
        printf("] parent_pid=none\n");
    fflush(stdout);
    free(name);
    command_list_u32_free(&identity);
}

/* The child's target: its argument is the exit code as JSON (3 or "3"). */
MP_TARGET("worker");
static int worker(const char *args) {
    describe("worker", mp_current_process());
    return atoi(args + (args[0] == '"'));
}

/* Replies to each message on its first inherited connection, upper-cased and tagged ` (c NAME)`, until `bye`. */
MP_TARGET("echo");
static int echo(const char *args) {
    (void)args;
    mp_connection conn = mp_inherited_connection(0);
    char *name = mp_process_name(mp_current_process());
    for (;;) {
        mp_bytes message;
        mp_connection_recv_bytes(conn, &message, NULL);
        if (message.len == 3 && memcmp(message.ptr, "bye", 3) == 0)
            break;
        char reply[message.len + strlen(name) + 8];
        for (size_t i = 0; i < message.len; i++)
            reply[i] = (char)toupper(message.ptr[i]);
        int tag = sprintf(reply + message.len, " (c %s)", name);
        mp_connection_send_bytes(conn, reply, message.len + (size_t)tag, NULL);
        mp_bytes_free(&message);
    }
    return 0;
}

const mp_target mp_targets[] = {{"worker", worker}, {"echo", echo}, {0}};

/* Joins a child and prints "LABEL exitcode=N". */
static void join(mp_process child, const char *label) {
    int code;
    mp_process_join(child, MP_FOREVER, NULL);
    mp_process_exitcode(child, &code, NULL);
    printf("%s exitcode=%d\n", label, code);
    fflush(stdout);
    mp_process_free(child);
}

static void two_workers(void) {
    describe("main", mp_current_process());
    mp_process workers[] = {mp_process_new((mp_spec){.target = "worker", .args = "0"}),
                            mp_process_new((mp_spec){.target = "worker", .args = "3"})};
    for (int i = 0; i < 2; i++)
        mp_process_start(workers[i], NULL);
    for (int i = 0; i < 2; i++) {
        char *name = mp_process_name(workers[i]);
        join(workers[i], name);
        free(name);
    }
}

/* Starts `echo` in the program shared as `program`, says hello over a pipe and prints the reply. */
static void mixed(const char *program) {
    mp_connection ours, theirs;
    mp_pipe(true, &ours, &theirs);
    mp_process child = mp_process_new((mp_spec){.target = "echo", .args = "[]", .program = program});
    mp_process_pass_connection(child, theirs, NULL);
    mp_process_start(child, NULL);
    mp_connection_send_bytes(ours, "hello from c", strlen("hello from c"), NULL);
    mp_bytes reply;
    mp_connection_recv_bytes(ours, &reply, NULL);
    printf("mixed %s: %.*s\n", program, (int)reply.len, (const char *)reply.ptr);
    mp_bytes_free(&reply);
    mp_connection_send_bytes(ours, "bye", 3, NULL);
    join(child, program);
    mp_connection_free(ours);
}

int mp_main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "mixed") == 0) {
        for (int i = 2; i < argc; i++)
            mixed(argv[i]);
    } else {
        two_workers();
    }
    return 0;
}
