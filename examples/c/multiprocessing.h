/* multiprocessing for C guests of wmp: CPython's `multiprocessing` names and semantics (Process, Pipe, Queue,
 * Listener/Client, connection.wait) over the wit-bindgen bindings of the world wmp:guests/command (command.h).
 *
 * Conventions:
 * - A call that can fail returns true on success; on failure it fills `err` with the exception CPython raises for
 *   the same mistake (its type's name and message) and returns false. With err NULL, a failure is uncaught: it
 *   prints `Type: message` to stderr and ends the process with exit code 1.
 * - Results come back through pointers; strings and byte strings the wrapper returns are the caller's to free
 *   (free() and mp_bytes_free()).
 * - A timeout is in seconds; MP_FOREVER is CPython's timeout=None. An int that may be CPython's None (an exit code,
 *   a pid) is MP_NONE when it is.
 * - Process, connection, queue, listener and sentinel values are handles: copy them freely, free each once with
 *   its _free function (freeing is not closing: close() stays CPython's close()).
 *
 * The program defines the targets children can run and its main; the wrapper owns the wasi:cli/run export:
 *
 *     MP_TARGET("worker");
 *     static int worker(const char *args) { ...; return 0; }
 *     const mp_target mp_targets[] = {{"worker", worker}, {0}};
 *     int mp_main(int argc, char **argv) { ... }
 */
#ifndef WMP_MULTIPROCESSING_H
#define WMP_MULTIPROCESSING_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command.h"

#define MP_FOREVER (-1.0)
#define MP_NONE INT_MIN

/* Declares a target in the program's `wmp:targets` custom section, so the host refuses an unknown target at
 * start() (wasm-ld makes a section named ".custom_section.NAME" the custom section NAME). At file scope. */
#define MP_TARGET(name) __asm__(".section \".custom_section.wmp:targets\",\"\",@\n.ascii \"" name "\\n\"\n.text\n")

/* What a child runs: a named function of the JSON text of its args, returning its exit code. */
typedef struct mp_target {
    const char *name;
    int (*run)(const char *args);
} mp_target;

/* Defined by the program: its targets (ended by {0}), and its main, whose return value is the exit code. */
extern const mp_target mp_targets[];
int mp_main(int argc, char **argv);

/* An exception as CPython would raise it: type is its class's name ("ValueError"), message its str(). */
typedef struct mp_error {
    const char *type;
    char message[256];
} mp_error;

typedef command_list_u8_t mp_bytes;
typedef wmp_process_process_own_process_t mp_process;
typedef wmp_process_process_own_sentinel_t mp_sentinel;
typedef wmp_process_connection_own_connection_t mp_connection;
typedef wmp_process_connection_own_queue_t mp_queue;
typedef wmp_process_connection_own_listener_t mp_listener;

void mp_bytes_free(mp_bytes *bytes);

/* Ends the current process at once with this exit code (sys.exit), after flushing stdout and stderr. */
_Noreturn void mp_exit(int code);

/* The i-th string of a JSON list of strings such as `["a", "b"]` (escapes \" and \\), malloc'd; NULL if absent. */
char *mp_arg(const char *args, size_t index);

/* --- processes --- */

/* Process(target=..., args=..., name=..., daemon=...), in a fresh instance of this program or of `program`, one
 * the host shared by that name. args is JSON text (NULL: `[]`), name NULL for the default `Process-N`, daemon
 * false for the default (the creator's flag). */
typedef struct mp_spec {
    const char *target;
    const char *args;
    const char *name;
    bool daemon;
    const char *program;
} mp_spec;

mp_process mp_process_new(mp_spec spec);
bool mp_process_start(mp_process p, mp_error *err);
bool mp_process_join(mp_process p, double timeout, mp_error *err);
bool mp_process_is_alive(mp_process p, bool *alive, mp_error *err);
bool mp_process_exitcode(mp_process p, int *exitcode, mp_error *err);
bool mp_process_terminate(mp_process p, mp_error *err);
bool mp_process_kill(mp_process p, mp_error *err);
bool mp_process_close(mp_process p, mp_error *err);
bool mp_process_pid(mp_process p, int64_t *pid, mp_error *err);
char *mp_process_name(mp_process p);
bool mp_process_daemon(mp_process p);
bool mp_process_set_daemon(mp_process p, bool daemon, mp_error *err);
bool mp_process_sentinel(mp_process p, mp_sentinel *sentinel, mp_error *err);
/* repr(p), e.g. `<Process name='Process-1' pid=7 parent=1 started>`. */
char *mp_process_display(mp_process p);
void mp_process_free(mp_process p);
void mp_sentinel_free(mp_sentinel s);

mp_process mp_current_process(void);
/* False in the main process (CPython's None). */
bool mp_parent_process(mp_process *parent);
/* The started children still running; *children is a malloc'd array of count handles. */
size_t mp_active_children(mp_process **children);

/* Hands a child, before its start, one end of a pipe (the end is the child's from then on) or a queue; the
 * child takes them, in the order passed, with mp_inherited_connection / mp_inherited_queue. */
bool mp_process_pass_connection(mp_process child, mp_connection end, mp_error *err);
bool mp_process_pass_queue(mp_process child, mp_queue queue, mp_error *err);
/* In a child: the index-th end or queue its parent passed (each taken once). */
mp_connection mp_inherited_connection(size_t index);
mp_queue mp_inherited_queue(size_t index);

/* --- connections --- */

/* Pipe(duplex): with duplex false, *first only receives and *second only sends. */
void mp_pipe(bool duplex, mp_connection *first, mp_connection *second);
bool mp_connection_send_bytes(mp_connection c, const void *message, size_t len, mp_error *err);
bool mp_connection_recv_bytes(mp_connection c, mp_bytes *message, mp_error *err);
bool mp_connection_poll(mp_connection c, double timeout, bool *ready, mp_error *err);
bool mp_connection_readable(mp_connection c);
bool mp_connection_writable(mp_connection c);
void mp_connection_close(mp_connection c);
void mp_connection_free(mp_connection c);

/* Queue(maxsize), 0 for no bound. */
mp_queue mp_queue_new(unsigned maxsize);
bool mp_queue_put(mp_queue q, const void *message, size_t len, double timeout, mp_error *err);
bool mp_queue_get(mp_queue q, double timeout, mp_bytes *message, mp_error *err);
bool mp_queue_empty(mp_queue q);
unsigned mp_queue_qsize(mp_queue q);
void mp_queue_close(mp_queue q);
void mp_queue_free(mp_queue q);

/* Listener(address, authkey=...) and Client(address, authkey=...); authkey NULL is the current process's. */
bool mp_listen(const char *address, const char *authkey, mp_listener *listener, mp_error *err);
bool mp_listener_accept(mp_listener l, mp_connection *conn, mp_error *err);
char *mp_listener_address(mp_listener l);
void mp_listener_close(mp_listener l);
void mp_listener_free(mp_listener l);
bool mp_connect(const char *address, const char *authkey, mp_connection *conn, mp_error *err);

/* connection.wait: one of connection or sentinel set. */
typedef struct mp_waitable {
    const mp_connection *connection;
    const mp_sentinel *sentinel;
} mp_waitable;

/* Waits until one of the objects is ready or the timeout passes; sets ready[i] for each ready objects[i] and
 * returns how many are (0 on timeout). */
size_t mp_wait(const mp_waitable *objects, size_t count, double timeout, bool *ready);

#endif
