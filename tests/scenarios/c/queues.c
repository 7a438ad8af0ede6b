/* lang_queues.py in C: a queue shared by a parent and two children, a get on an empty queue timing out with
 * queue.Empty, and a full bounded queue refusing a put with queue.Full. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenarios.h"

/* args: ["TAG", "COUNT"]; puts TAG0, TAG1, ... on the inherited queue. */
int queues_producer(const char *args) {
    mp_queue q = mp_inherited_queue(0);
    char *tag = mp_arg(args, 0), *count = mp_arg(args, 1);
    for (int n = 0; n < atoi(count); n++) {
        char item[32];
        int len = snprintf(item, sizeof item, "%s%d", tag, n);
        mp_queue_put(q, item, (size_t)len, MP_FOREVER, NULL);
    }
    return 0;
}

static int by_bytes(const void *a, const void *b) {
    const mp_bytes *x = a, *y = b;
    int order = memcmp(x->ptr, y->ptr, x->len < y->len ? x->len : y->len);
    return order ? order : (x->len > y->len) - (x->len < y->len);
}

/* The scripts' attempt() for a get: `WHAT VALUE`, or the exception. */
static void attempt_get(const char *what, mp_queue q, double timeout) {
    mp_error err;
    mp_bytes message;
    show_received(what, mp_queue_get(q, timeout, &message, &err), &message, &err);
}

int lang_queues(void) {
    mp_queue q = mp_queue_new(0);
    mp_process children[] = {mp_process_new((mp_spec){.target = "producer", .args = "[\"a\", \"3\"]"}),
                             mp_process_new((mp_spec){.target = "producer", .args = "[\"b\", \"3\"]"})};
    for (int i = 0; i < 2; i++) {
        mp_process_pass_queue(children[i], q, NULL);
        mp_process_start(children[i], NULL);
    }
    mp_bytes got[6];
    for (int i = 0; i < 6; i++)
        mp_queue_get(q, 10, &got[i], NULL);
    qsort(got, 6, sizeof *got, by_bytes);
    int codes[2];
    for (int i = 0; i < 2; i++) {
        mp_process_join(children[i], MP_FOREVER, NULL);
        mp_process_exitcode(children[i], &codes[i], NULL);
    }
    printf("got [");
    for (int i = 0; i < 6; i++) {
        char *repr = py_bytes(got[i].ptr, got[i].len);
        printf(i ? ", %s" : "%s", repr);
        free(repr);
        mp_bytes_free(&got[i]);
    }
    show("] [%d, %d]", codes[0], codes[1]);
    show("empty %s", py_bool(mp_queue_empty(q)));
    attempt_get("get from an empty queue", q, 0.05);

    mp_queue bounded = mp_queue_new(1);
    mp_queue_put(bounded, "only", 4, MP_FOREVER, NULL);
    mp_error err;
    if (mp_queue_put(bounded, "more", 4, 0.05, &err))
        show("put into a full queue None");
    else
        show_error("put into a full queue", &err);
    attempt_get("get", bounded, MP_FOREVER);
    return 0;
}
