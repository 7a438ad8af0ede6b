/* lang_listener.py in C: a listener and its clients, authenticated by a key: a client with the key is accepted
 * and talks both ways; a client with a wrong key is refused on both sides. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenarios.h"

/* args: ["ADDRESS", "AUTHKEY"]. */
int listener_client(const char *args) {
    char *address = mp_arg(args, 0), *key = mp_arg(args, 1);
    mp_error err;
    mp_connection conn;
    if (!mp_connect(address, key, &conn, &err)) {
        show_error("client", &err);
        return 0;
    }
    char hello[64], *name = mp_process_name(mp_current_process());
    int len = snprintf(hello, sizeof hello, "hello from %s", name);
    mp_connection_send_bytes(conn, hello, (size_t)len, NULL);
    mp_bytes reply;
    mp_connection_recv_bytes(conn, &reply, NULL);
    char *repr = py_bytes(reply.ptr, reply.len);
    show("client got %s", repr);
    free(repr);
    mp_bytes_free(&reply);
    mp_connection_close(conn);
    return 0;
}

/* A client of address proving key, started. */
static mp_process client(const char *address, const char *key) {
    char args[128];
    snprintf(args, sizeof args, "[\"%s\", \"%s\"]", address, key);
    mp_process p = mp_process_new((mp_spec){.target = "client", .args = args});
    mp_process_start(p, NULL);
    return p;
}

int lang_listener(void) {
    /* a name unique to this run: a path under CPython, a name in the runtime under wmp */
    char address[64];
    int64_t pid;
    mp_process_pid(mp_current_process(), &pid, NULL);
    snprintf(address, sizeof address, "/tmp/wmp-scenario-listener-%lld", (long long)pid);
    mp_listener listener;
    mp_listen(address, "secret", &listener, NULL);

    mp_process good = client(address, "secret");
    mp_connection conn;
    mp_listener_accept(listener, &conn, NULL);
    mp_bytes message;
    mp_connection_recv_bytes(conn, &message, NULL);
    char *repr = py_bytes(message.ptr, message.len);
    show("server got %s", repr);
    free(repr);
    mp_bytes_free(&message);
    mp_connection_send_bytes(conn, "welcome", 7, NULL);
    mp_process_join(good, MP_FOREVER, NULL);
    mp_connection_close(conn);

    mp_process bad = client(address, "wrong");
    mp_error err;
    char refusal[300] = "accepted";
    if (!mp_listener_accept(listener, &conn, &err))
        snprintf(refusal, sizeof refusal, "%s: %s", err.type, err.message);
    mp_process_join(bad, MP_FOREVER, NULL); /* the client's line first: the two would race */
    show("server %s", refusal);
    int codes[2];
    mp_process_exitcode(good, &codes[0], NULL);
    mp_process_exitcode(bad, &codes[1], NULL);
    show("exitcodes %d %d", codes[0], codes[1]);
    mp_listener_close(listener);
    return 0;
}
