/* The C wrapper over the wmp bindings (see multiprocessing.h): CPython's exception for each WIT error case, the
 * wasi:cli/run export that runs a child's target or the program's main, and thin calls for the rest. */
#include "multiprocessing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROCESS(p) wmp_process_process_borrow_process(p)
#define CONNECTION(c) wmp_process_connection_borrow_connection(c)
#define QUEUE(q) wmp_process_connection_borrow_queue(q)
#define LISTENER(l) wmp_process_connection_borrow_listener(l)

static char *string_dup(command_string_t *s) {
    char *copy = strndup((const char *)s->ptr, s->len);
    command_string_free(s);
    return copy;
}

static command_string_t string_of(const char *text) {
    return (command_string_t){(uint8_t *)text, strlen(text)};
}

static bool equals(command_string_t s, const char *text) {
    return s.len == strlen(text) && memcmp(s.ptr, text, s.len) == 0;
}

/* A timeout in seconds as the host's optional nanoseconds: NULL for MP_FOREVER. */
static uint64_t *nanos(double seconds, uint64_t *storage) {
    if (seconds < 0)
        return NULL;
    *storage = (uint64_t)(seconds * 1e9);
    return storage;
}

/* Fills err (or, with err NULL, ends the process as an uncaught exception would); returns false for the caller. */
static bool raise(mp_error *err, const char *type, command_string_t message) {
    mp_error uncaught;
    mp_error *e = err ? err : &uncaught;
    e->type = type;
    snprintf(e->message, sizeof e->message, "%.*s", (int)message.len, (const char *)message.ptr);
    if (!err) {
        fflush(stdout);
        fprintf(stderr, "%s: %s\n", e->type, e->message);
        mp_exit(1);
    }
    return false;
}

static const char *process_error_type(uint8_t tag) {
    switch (tag) {
    case WMP_PROCESS_PROCESS_ERROR_CLOSED:
    case WMP_PROCESS_PROCESS_ERROR_NOT_STARTED:
    case WMP_PROCESS_PROCESS_ERROR_CLOSE_RUNNING:
        return "ValueError";
    case WMP_PROCESS_PROCESS_ERROR_UNKNOWN_TARGET:
    case WMP_PROCESS_PROCESS_ERROR_SPAWN_FAILED:
    case WMP_PROCESS_PROCESS_ERROR_LIMIT_REACHED:
        return "OSError";
    default: /* the asserts of multiprocessing/process.py */
        return "AssertionError";
    }
}

/* Every case of a process error holds its (CPython's) message in the same place. */
static bool process_error(mp_error *err, wmp_process_process_error_t *e) {
    raise(err, process_error_type(e->tag), e->val.closed);
    wmp_process_process_error_free(e);
    return false;
}

/* A connection error: refused and address-in-use carry the address, so their message is the OS's, as CPython
 * shows it; the other cases carry CPython's message. */
static bool connection_error(mp_error *err, wmp_process_connection_error_t *e) {
    static const char *const types[] = {
        [WMP_PROCESS_CONNECTION_ERROR_EOF] = "EOFError",
        [WMP_PROCESS_CONNECTION_ERROR_CLOSED] = "OSError",
        [WMP_PROCESS_CONNECTION_ERROR_BROKEN_PIPE] = "BrokenPipeError",
        [WMP_PROCESS_CONNECTION_ERROR_WRITE_ONLY] = "OSError",
        [WMP_PROCESS_CONNECTION_ERROR_READ_ONLY] = "OSError",
        [WMP_PROCESS_CONNECTION_ERROR_EMPTY] = "Empty",
        [WMP_PROCESS_CONNECTION_ERROR_FULL] = "Full",
        [WMP_PROCESS_CONNECTION_ERROR_AUTHENTICATION] = "AuthenticationError",
        [WMP_PROCESS_CONNECTION_ERROR_REFUSED] = "ConnectionRefusedError",
        [WMP_PROCESS_CONNECTION_ERROR_ADDRESS_IN_USE] = "OSError",
    };
    command_string_t message = e->val.eof;
    if (e->tag == WMP_PROCESS_CONNECTION_ERROR_REFUSED)
        message = string_of("[Errno 111] Connection refused");
    else if (e->tag == WMP_PROCESS_CONNECTION_ERROR_ADDRESS_IN_USE)
        message = string_of("[Errno 98] Address already in use");
    raise(err, types[e->tag], message);
    wmp_process_connection_error_free(e);
    return false;
}

void mp_bytes_free(mp_bytes *bytes) {
    command_list_u8_free(bytes);
}

_Noreturn void mp_exit(int code) {
    fflush(stdout);
    fflush(stderr);
    wmp_process_process_exit(code);
    abort(); /* exit does not return */
}

char *mp_arg(const char *args, size_t index) {
    const char *at = args;
    for (size_t i = 0;; i++) {
        at = strchr(at, '"');
        if (!at)
            return NULL;
        char *text = malloc(strlen(at)), *out = text;
        for (at++; *at && *at != '"'; at++)
            *out++ = *at == '\\' && at[1] ? *++at : *at;
        *out = 0;
        if (i == index)
            return text;
        free(text);
        at += *at == '"';
    }
}

/* --- the entry point: a child runs its target (CPython's spawn_main), the main process mp_main --- */

static int run_target(wmp_process_process_spawn_request_t *request) {
    for (const mp_target *t = mp_targets; t->name; t++) {
        if (equals(request->target, t->name)) {
            char *args = strndup((const char *)request->args.ptr, request->args.len);
            return t->run(args);
        }
    }
    fprintf(stderr, "unknown target %.*s\n", (int)request->target.len, (const char *)request->target.ptr);
    return 1;
}

static int run_main(void) {
    command_list_string_t arguments;
    wasi_cli_environment_get_arguments(&arguments);
    char **argv = calloc(arguments.len + 1, sizeof *argv);
    for (size_t i = 0; i < arguments.len; i++)
        argv[i] = strndup((const char *)arguments.ptr[i].ptr, arguments.ptr[i].len);
    command_list_string_free(&arguments);
    return mp_main((int)arguments.len, argv);
}

bool exports_wasi_cli_run_run(void) {
    wmp_process_process_spawn_request_t request;
    mp_exit(wmp_process_process_spawn_context(&request) ? run_target(&request) : run_main());
}

/* --- processes --- */

mp_process mp_process_new(mp_spec spec) {
    wmp_process_process_spec_t wit = {0};
    wit.target = string_of(spec.target);
    const char *args = spec.args ? spec.args : "[]";
    wit.args = (command_list_u8_t){(uint8_t *)args, strlen(args)};
    if (spec.name)
        wit.name = (command_option_string_t){true, string_of(spec.name)};
    if (spec.daemon)
        wit.daemon = (command_option_bool_t){true, true};
    if (spec.program)
        wit.program = (command_option_string_t){true, string_of(spec.program)};
    return wmp_process_process_constructor_process(&wit);
}

/* The process calls that return nothing but may fail. */
#define PROCESS_CALL(call)                                                                                         \
    wmp_process_process_error_t e;                                                                                 \
    return (call) || process_error(err, &e)

bool mp_process_start(mp_process p, mp_error *err) {
    PROCESS_CALL(wmp_process_process_method_process_start(PROCESS(p), &e));
}

bool mp_process_join(mp_process p, double timeout, mp_error *err) {
    uint64_t storage;
    PROCESS_CALL(wmp_process_process_method_process_join(PROCESS(p), nanos(timeout, &storage), &e));
}

bool mp_process_is_alive(mp_process p, bool *alive, mp_error *err) {
    PROCESS_CALL(wmp_process_process_method_process_is_alive(PROCESS(p), alive, &e));
}

bool mp_process_exitcode(mp_process p, int *exitcode, mp_error *err) {
    command_option_s32_t code;
    wmp_process_process_error_t e;
    if (!wmp_process_process_method_process_exitcode(PROCESS(p), &code, &e))
        return process_error(err, &e);
    *exitcode = code.is_some ? code.val : MP_NONE;
    return true;
}

/* terminate() and kill(): before start, CPython calls that method of its _popen, still None. */
static bool signalled(bool sent, wmp_process_process_error_t *e, const char *method, mp_error *err) {
    if (sent)
        return true;
    if (e->tag != WMP_PROCESS_PROCESS_ERROR_NOT_STARTED)
        return process_error(err, e);
    wmp_process_process_error_free(e);
    char message[64];
    snprintf(message, sizeof message, "'NoneType' object has no attribute '%s'", method);
    return raise(err, "AttributeError", string_of(message));
}

bool mp_process_terminate(mp_process p, mp_error *err) {
    wmp_process_process_error_t e;
    return signalled(wmp_process_process_method_process_terminate(PROCESS(p), &e), &e, "terminate", err);
}

bool mp_process_kill(mp_process p, mp_error *err) {
    wmp_process_process_error_t e;
    return signalled(wmp_process_process_method_process_kill(PROCESS(p), &e), &e, "kill", err);
}

bool mp_process_close(mp_process p, mp_error *err) {
    PROCESS_CALL(wmp_process_process_method_process_close(PROCESS(p), &e));
}

bool mp_process_pid(mp_process p, int64_t *pid, mp_error *err) {
    wmp_process_process_option_pid_t value;
    wmp_process_process_error_t e;
    if (!wmp_process_process_method_process_pid(PROCESS(p), &value, &e))
        return process_error(err, &e);
    *pid = value.is_some ? value.val : MP_NONE;
    return true;
}

char *mp_process_name(mp_process p) {
    command_string_t name;
    wmp_process_process_method_process_name(PROCESS(p), &name);
    return string_dup(&name);
}

bool mp_process_daemon(mp_process p) {
    return wmp_process_process_method_process_daemon(PROCESS(p));
}

bool mp_process_set_daemon(mp_process p, bool daemon, mp_error *err) {
    PROCESS_CALL(wmp_process_process_method_process_set_daemon(PROCESS(p), daemon, &e));
}

bool mp_process_sentinel(mp_process p, mp_sentinel *sentinel, mp_error *err) {
    PROCESS_CALL(wmp_process_process_method_process_sentinel(PROCESS(p), sentinel, &e));
}

char *mp_process_display(mp_process p) {
    command_string_t repr;
    wmp_process_process_method_process_display(PROCESS(p), &repr);
    return string_dup(&repr);
}

void mp_process_free(mp_process p) {
    wmp_process_process_process_drop_own(p);
}

void mp_sentinel_free(mp_sentinel s) {
    wmp_process_process_sentinel_drop_own(s);
}

mp_process mp_current_process(void) {
    return wmp_process_process_current_process();
}

bool mp_parent_process(mp_process *parent) {
    return wmp_process_process_parent_process(parent);
}

size_t mp_active_children(mp_process **children) {
    wmp_process_process_list_own_process_t list;
    wmp_process_process_active_children(&list);
    *children = list.ptr;
    return list.len;
}

bool mp_process_pass_connection(mp_process child, mp_connection end, mp_error *err) {
    PROCESS_CALL(wmp_process_connection_pass_connection(PROCESS(child), end, &e));
}

bool mp_process_pass_queue(mp_process child, mp_queue queue, mp_error *err) {
    PROCESS_CALL(wmp_process_connection_pass_queue(PROCESS(child), QUEUE(queue), &e));
}

/* The host hands the inherited ends and queues over once; they are kept here for mp_inherited_*. */
static struct {
    bool taken;
    wmp_process_connection_list_own_connection_t connections;
    wmp_process_connection_list_own_queue_t queues;
} inherited;

static void take_inherited(void) {
    if (!inherited.taken) {
        inherited.taken = true;
        wmp_process_connection_inherited_connections(&inherited.connections);
        wmp_process_connection_inherited_queues(&inherited.queues);
    }
}

mp_connection mp_inherited_connection(size_t index) {
    take_inherited();
    if (index >= inherited.connections.len)
        raise(NULL, "IndexError", string_of("no such inherited connection"));
    return inherited.connections.ptr[index];
}

mp_queue mp_inherited_queue(size_t index) {
    take_inherited();
    if (index >= inherited.queues.len)
        raise(NULL, "IndexError", string_of("no such inherited queue"));
    return inherited.queues.ptr[index];
}

/* --- connections --- */

/* The connection calls that return nothing but may fail. */
#define CONNECTION_CALL(call)                                                                                      \
    wmp_process_connection_error_t e;                                                                              \
    return (call) || connection_error(err, &e)

void mp_pipe(bool duplex, mp_connection *first, mp_connection *second) {
    wmp_process_connection_tuple2_own_connection_own_connection_t ends;
    wmp_process_connection_pipe(duplex, &ends);
    *first = ends.f0;
    *second = ends.f1;
}

bool mp_connection_send_bytes(mp_connection c, const void *message, size_t len, mp_error *err) {
    command_list_u8_t bytes = {(uint8_t *)message, len};
    CONNECTION_CALL(wmp_process_connection_method_connection_send_bytes(CONNECTION(c), &bytes, &e));
}

bool mp_connection_recv_bytes(mp_connection c, mp_bytes *message, mp_error *err) {
    CONNECTION_CALL(wmp_process_connection_method_connection_recv_bytes(CONNECTION(c), message, &e));
}

bool mp_connection_poll(mp_connection c, double timeout, bool *ready, mp_error *err) {
    uint64_t storage;
    CONNECTION_CALL(wmp_process_connection_method_connection_poll(CONNECTION(c), nanos(timeout, &storage), ready, &e));
}

bool mp_connection_readable(mp_connection c) {
    return wmp_process_connection_method_connection_readable(CONNECTION(c));
}

bool mp_connection_writable(mp_connection c) {
    return wmp_process_connection_method_connection_writable(CONNECTION(c));
}

void mp_connection_close(mp_connection c) {
    wmp_process_connection_method_connection_close(CONNECTION(c));
}

void mp_connection_free(mp_connection c) {
    wmp_process_connection_connection_drop_own(c);
}

mp_queue mp_queue_new(unsigned maxsize) {
    return wmp_process_connection_constructor_queue(maxsize);
}

bool mp_queue_put(mp_queue q, const void *message, size_t len, double timeout, mp_error *err) {
    command_list_u8_t bytes = {(uint8_t *)message, len};
    uint64_t storage;
    CONNECTION_CALL(wmp_process_connection_method_queue_put(QUEUE(q), &bytes, nanos(timeout, &storage), &e));
}

bool mp_queue_get(mp_queue q, double timeout, mp_bytes *message, mp_error *err) {
    uint64_t storage;
    wmp_process_connection_error_t e;
    if (wmp_process_connection_method_queue_get(QUEUE(q), nanos(timeout, &storage), message, &e))
        return true;
    /* The host answers eof at once when the queue is empty and no other process holds it, where CPython waits:
     * with a timeout, that is queue.Empty once the timeout has passed (without one, CPython would wait forever). */
    if (e.tag != WMP_PROCESS_CONNECTION_ERROR_EOF || timeout < 0)
        return connection_error(err, &e);
    wmp_process_connection_error_free(&e);
    nanosleep(&(struct timespec){.tv_sec = (time_t)timeout, .tv_nsec = (long)((timeout - (time_t)timeout) * 1e9)}, NULL);
    return raise(err, "Empty", string_of(""));
}

bool mp_queue_empty(mp_queue q) {
    return wmp_process_connection_method_queue_empty(QUEUE(q));
}

unsigned mp_queue_qsize(mp_queue q) {
    return wmp_process_connection_method_queue_qsize(QUEUE(q));
}

void mp_queue_close(mp_queue q) {
    wmp_process_connection_method_queue_close(QUEUE(q));
}

void mp_queue_free(mp_queue q) {
    wmp_process_connection_queue_drop_own(q);
}

/* An authkey as the host's optional bytes: NULL for the current process's. */
static command_list_u8_t *key_of(const char *authkey, command_list_u8_t *storage) {
    if (!authkey)
        return NULL;
    *storage = (command_list_u8_t){(uint8_t *)authkey, strlen(authkey)};
    return storage;
}

bool mp_listen(const char *address, const char *authkey, mp_listener *listener, mp_error *err) {
    command_string_t where = string_of(address);
    command_list_u8_t key;
    CONNECTION_CALL(wmp_process_connection_listen(&where, key_of(authkey, &key), listener, &e));
}

bool mp_listener_accept(mp_listener l, mp_connection *conn, mp_error *err) {
    CONNECTION_CALL(wmp_process_connection_method_listener_accept(LISTENER(l), conn, &e));
}

char *mp_listener_address(mp_listener l) {
    command_string_t address;
    wmp_process_connection_method_listener_address(LISTENER(l), &address);
    return string_dup(&address);
}

void mp_listener_close(mp_listener l) {
    wmp_process_connection_method_listener_close(LISTENER(l));
}

void mp_listener_free(mp_listener l) {
    wmp_process_connection_listener_drop_own(l);
}

bool mp_connect(const char *address, const char *authkey, mp_connection *conn, mp_error *err) {
    command_string_t where = string_of(address);
    command_list_u8_t key;
    CONNECTION_CALL(wmp_process_connection_connect(&where, key_of(authkey, &key), conn, &e));
}

size_t mp_wait(const mp_waitable *objects, size_t count, double timeout, bool *ready) {
    wmp_process_process_borrow_sentinel_t sentinels[count];
    wmp_process_connection_borrow_connection_t connections[count];
    size_t index[count], nsentinels = 0, nconnections = 0; /* index[k]: the object the host's k-th is */
    for (size_t i = 0; i < count; i++) {
        if (objects[i].sentinel) {
            index[nsentinels] = i;
            sentinels[nsentinels++] = wmp_process_process_borrow_sentinel(*objects[i].sentinel);
        }
    }
    for (size_t i = 0; i < count; i++) {
        if (objects[i].connection) {
            index[nsentinels + nconnections] = i;
            connections[nconnections++] = CONNECTION(*objects[i].connection);
        }
    }
    wmp_process_connection_list_borrow_sentinel_t sentinel_list = {sentinels, nsentinels};
    wmp_process_connection_list_borrow_connection_t connection_list = {connections, nconnections};
    uint64_t storage;
    command_list_u32_t found;
    wmp_process_connection_wait(&sentinel_list, &connection_list, nanos(timeout, &storage), &found);
    memset(ready, 0, count * sizeof *ready);
    for (size_t i = 0; i < found.len; i++)
        ready[index[found.ptr[i]]] = true;
    size_t n = found.len;
    command_list_u32_free(&found);
    return n;
}
