/* lang_wait.py in C: connection.wait over connections and sentinels together: a timeout with nothing ready, a
 * message ready while its child still runs, then the child's sentinel once it has ended. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenarios.h"

/* Sends `ready` on its first inherited end, then waits for a message on its second. */
int wait_signaller(const char *args) {
    (void)args;
    mp_connection out = mp_inherited_connection(0), go = mp_inherited_connection(1);
    mp_connection_send_bytes(out, "ready", 5, NULL);
    mp_bytes message;
    mp_connection_recv_bytes(go, &message, NULL);
    mp_bytes_free(&message);
    return 0;
}

/* Waits on the objects and prints `WHAT [LABELS]` for the ready ones. */
static void show_ready(const char *what, const mp_waitable *objects, const char *const *labels, size_t count,
                       double timeout) {
    bool ready[count];
    mp_wait(objects, count, timeout, ready);
    char line[128] = "";
    for (size_t i = 0; i < count; i++)
        if (ready[i])
            snprintf(line + strlen(line), sizeof line - strlen(line), "%s'%s'", *line ? ", " : "", labels[i]);
    show("%s [%s]", what, line);
}

int lang_wait(void) {
    mp_connection inbox, out, go_in, go_out;
    mp_pipe(false, &inbox, &out);
    mp_pipe(false, &go_in, &go_out);
    const char *labels[] = {"inbox", "sentinel"};
    show_ready("nothing yet", (mp_waitable[]){{.connection = &inbox}}, labels, 1, 0.05);
    mp_process p = mp_process_new((mp_spec){.target = "signaller"});
    mp_process_pass_connection(p, out, NULL);
    mp_process_pass_connection(p, go_in, NULL);
    mp_process_start(p, NULL);
    mp_sentinel sentinel;
    mp_process_sentinel(p, &sentinel, NULL);
    show_ready("while it runs", (mp_waitable[]){{.connection = &inbox}, {.sentinel = &sentinel}}, labels, 2, 10);
    mp_bytes message;
    mp_connection_recv_bytes(inbox, &message, NULL);
    char *repr = py_bytes(message.ptr, message.len);
    show("message %s", repr);
    free(repr);
    mp_bytes_free(&message);
    mp_connection_send_bytes(go_out, "go", 2, NULL);
    show_ready("after go", (mp_waitable[]){{.sentinel = &sentinel}}, labels + 1, 1, 10);
    mp_process_join(p, MP_FOREVER, NULL);
    int code;
    char buf[16];
    mp_process_exitcode(p, &code, NULL);
    show("exitcode %s", py_int(code, buf));
    return 0;
}
