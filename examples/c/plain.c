/* A plain WASI program in C (no wmp imports), built as a preview 1 core
 * module: `plain ARGS...` prints its arguments one a line, `plain env NAME`
 * prints a variable (or <unset>), `plain exit N` exits with code N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "env") == 0) {
        const char *value = getenv(argv[2]);
        printf("%s\n", value ? value : "<unset>");
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    for (int i = 0; i < argc; i++)
        printf("%s\n", argv[i]);
    return 0;
}
