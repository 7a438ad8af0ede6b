"""A plain WASI program in Python (no wmp imports): `plain ARGS...` prints
its arguments one a line, `plain env NAME` prints a variable (or <unset>),
`plain exit N` exits with code 0 if N is 0 and 1 otherwise (a WASI 0.2
command has only ok and err)."""

import os
import sys

from wit_world import exports


class Run(exports.Run):
    def run(self):
        argv = sys.argv
        if len(argv) == 3 and argv[1] == "env":
            print(os.environ.get(argv[2], "<unset>"))
        elif len(argv) == 3 and argv[1] == "exit":
            sys.exit(int(argv[2]))
        else:
            for arg in argv:
                print(arg)
