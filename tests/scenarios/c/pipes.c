/* lang_pipes.py in C: a duplex pipe's end passed to a child, messages both ways, EOF once the child's end is
 * gone, and the errors of a one-way pipe's wrong end. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "scenarios.h"

int pipes_echo(const char *args) {
    (void)args;
    mp_connection conn = mp_inherited_connection(0);
    for (;;) {
        mp_bytes message;
        mp_connection_recv_bytes(conn, &message, NULL);
        if (message.len == 3 && memcmp(message.ptr, "bye", 3) == 0)
            break;
        for (size_t i = 0; i < message.len; i++)
            message.ptr[i] = (uint8_t)toupper(message.ptr[i]);
        mp_connection_send_bytes(conn, message.ptr, message.len, NULL);
        mp_bytes_free(&message);
    }
    mp_connection_close(conn);
    return 0;
}

/* The scripts' attempt() for the calls below: `WHAT VALUE`, or the exception. */
static void attempt_poll(const char *what, mp_connection c, double timeout) {
    mp_error err;
    bool ready;
    if (mp_connection_poll(c, timeout, &ready, &err))
        show("%s %s", what, py_bool(ready));
    else
        show_error(what, &err);
}

static void attempt_send(const char *what, mp_connection c) {
    mp_error err;
    if (mp_connection_send_bytes(c, "x", 1, &err))
        show("%s None", what);
    else
        show_error(what, &err);
}

static void attempt_recv(const char *what, mp_connection c) {
    mp_error err;
    mp_bytes message;
    show_received(what, mp_connection_recv_bytes(c, &message, &err), &message, &err);
}

int lang_pipes(void) {
    mp_connection ours, theirs;
    mp_pipe(true, &ours, &theirs);
    mp_process p = mp_process_new((mp_spec){.target = "echo"});
    mp_process_pass_connection(p, theirs, NULL); /* theirs is the child's now: closed here */
    mp_process_start(p, NULL);
    const char *words[] = {"hello", "pipes", ""};
    for (int i = 0; i < 3; i++) {
        mp_connection_send_bytes(ours, words[i], strlen(words[i]), NULL);
        attempt_recv("echoed", ours);
    }
    mp_connection_send_bytes(ours, "bye", 3, NULL);
    mp_process_join(p, MP_FOREVER, NULL);
    int code;
    char buf[16];
    mp_process_exitcode(p, &code, NULL);
    show("child %s", py_int(code, buf));
    attempt_poll("poll after the child ended", ours, 1);
    attempt_recv("recv after the child ended", ours);
    mp_connection_close(ours);
    attempt_send("send on a closed end", ours);

    mp_connection reader, writer;
    mp_pipe(false, &reader, &writer);
    show("readable %s %s writable %s %s", py_bool(mp_connection_readable(reader)),
         py_bool(mp_connection_writable(reader)), py_bool(mp_connection_readable(writer)),
         py_bool(mp_connection_writable(writer)));
    attempt_poll("poll with nothing sent", reader, 0.05);
    mp_connection_send_bytes(writer, "one way", strlen("one way"), NULL);
    attempt_poll("poll with a message", reader, 0);
    attempt_recv("received", reader);
    attempt_send("send on the reading end", reader);
    attempt_recv("recv on the writing end", writer);
    mp_connection_close(reader);
    attempt_send("send with the reader gone", writer);
    return 0;
}
