"""How the scenarios print: show() flushes every line (README.md says
why), and attempt() prints what an action returns, or its exception as
`Type: message`."""


def show(*parts):
    print(*parts, flush=True)


def attempt(what, action):
    try:
        show(what, action())
    except Exception as err:
        show(what, f"{type(err).__name__}: {err}")
