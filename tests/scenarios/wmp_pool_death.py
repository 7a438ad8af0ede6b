"""wmp only, for CPython's Pool waits forever here: a worker that dies
during its task fails that task with a ProcessError, and the pool goes on
with a new worker."""

import multiprocessing as mp
import sys


def die(code):
    sys.exit(code)


def square(x):
    return x * x


def main():
    with mp.Pool(1) as pool:
        try:
            pool.apply(die, (3,))
        except mp.ProcessError as err:
            print(f"{type(err).__name__}: {err}", flush=True)
        print("then", pool.map(square, range(4)), flush=True)


if __name__ == "__main__":
    main()
