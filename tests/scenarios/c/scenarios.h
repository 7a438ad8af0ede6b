/* The C renderings of tests/scenarios/lang_*.py, built into one component (c-scenarios.wasm) whose main runs the
 * scenario named by argv[1]: each scenario's main and targets, and the helpers that print values as Python does. */
#ifndef WMP_C_SCENARIOS_H
#define WMP_C_SCENARIOS_H

#include "multiprocessing.h"

/* Prints a line (printf's format) and flushes it, as the scripts' show(). */
void show(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* Prints `WHAT Type: message`, as the scripts' attempt() does for an exception. */
void show_error(const char *what, const mp_error *err);
/* Prints `WHAT b'...'` for a message received (and frees it), else `WHAT Type: message`: the scripts'
 * attempt() of a receive. */
void show_received(const char *what, bool received, mp_bytes *message, const mp_error *err);
/* Python's str() of a bool, and of an int that may be None; text lives in buf. */
const char *py_bool(bool value);
const char *py_int(int value, char buf[16]);
/* Python's repr() of a byte string, e.g. b'HELLO', malloc'd. */
char *py_bytes(const void *data, size_t len);

int lang_lifecycle(void);
int lifecycle_worker(const char *args);
int lifecycle_spin(const char *args);
int lang_pipes(void);
int pipes_echo(const char *args);
int lang_queues(void);
int queues_producer(const char *args);
int lang_wait(void);
int wait_signaller(const char *args);
int lang_listener(void);
int listener_client(const char *args);

#endif
