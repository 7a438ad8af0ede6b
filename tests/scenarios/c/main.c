/* c-scenarios: runs the scenario named by argv[1]; a child runs the target its scenario started. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenarios.h"

MP_TARGET("worker");
MP_TARGET("spin");
MP_TARGET("echo");
MP_TARGET("producer");
MP_TARGET("signaller");
MP_TARGET("client");
const mp_target mp_targets[] = {
    {"worker", lifecycle_worker}, {"spin", lifecycle_spin},        {"echo", pipes_echo},
    {"producer", queues_producer}, {"signaller", wait_signaller}, {"client", listener_client},
    {0},
};

static const struct {
    const char *name;
    int (*run)(void);
} scenarios[] = {
    {"lang_lifecycle", lang_lifecycle}, {"lang_pipes", lang_pipes},       {"lang_queues", lang_queues},
    {"lang_wait", lang_wait},           {"lang_listener", lang_listener},
};

int mp_main(int argc, char **argv) {
    for (size_t i = 0; argc > 1 && i < sizeof scenarios / sizeof *scenarios; i++)
        if (strcmp(argv[1], scenarios[i].name) == 0)
            return scenarios[i].run();
    fprintf(stderr, "usage: c-scenarios.wasm lang_lifecycle|lang_pipes|lang_queues|lang_wait|lang_listener\n");
    return 2;
}

void show(const char *format, ...) {
    va_list args;
    va_start(args, format);
    vprintf(format, args);
    va_end(args);
    putchar('\n');
    fflush(stdout);
}

void show_error(const char *what, const mp_error *err) {
    show("%s %s: %s", what, err->type, err->message);
}

void show_received(const char *what, bool received, mp_bytes *message, const mp_error *err) {
    if (!received) {
        show_error(what, err);
        return;
    }
    char *repr = py_bytes(message->ptr, message->len);
    show("%s %s", what, repr);
    free(repr);
    mp_bytes_free(message);
}

const char *py_bool(bool value) {
    return value ? "True" : "False";
}

const char *py_int(int value, char buf[16]) {
    if (value == MP_NONE)
        return "None";
    snprintf(buf, 16, "%d", value);
    return buf;
}

char *py_bytes(const void *data, size_t len) {
    const unsigned char *bytes = data;
    char quote = memchr(bytes, '\'', len) && !memchr(bytes, '"', len) ? '"' : '\'';
    char *repr = malloc(4 * len + 4), *out = repr;
    *out++ = 'b';
    *out++ = quote;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = bytes[i];
        if (c == quote || c == '\\')
            out += sprintf(out, "\\%c", c);
        else if (c == '\t' || c == '\n' || c == '\r')
            out += sprintf(out, "\\%c", c == '\t' ? 't' : c == '\n' ? 'n' : 'r');
        else if (c < 0x20 || c >= 0x7f)
            out += sprintf(out, "\\x%02x", c);
        else
            *out++ = (char)c;
    }
    *out++ = quote;
    *out = 0;
    return repr;
}
