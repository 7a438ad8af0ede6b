"""connection.wait over connections and sentinels together: a timeout
with nothing ready, a message ready while its child still runs, then the
child's sentinel once it has ended."""

import multiprocessing as mp
from multiprocessing.connection import wait

from scenario_output import show


def signaller(out, go):
    out.send_bytes(b"ready")
    go.recv_bytes()


def main():
    inbox, out = mp.Pipe(duplex=False)
    go_in, go_out = mp.Pipe(duplex=False)
    show("nothing yet", wait([inbox], timeout=0.05))
    p = mp.Process(target=signaller, args=(out, go_in))
    p.start()
    out.close()
    go_in.close()
    labels = {id(inbox): "inbox", id(p.sentinel): "sentinel"}
    ready = wait([inbox, p.sentinel], timeout=10)
    show("while it runs", [labels[id(x)] for x in ready])
    show("message", inbox.recv_bytes())
    go_out.send_bytes(b"go")
    ready = wait([p.sentinel], timeout=10)
    show("after go", [labels[id(x)] for x in ready])
    p.join()
    show("exitcode", p.exitcode)


if __name__ == "__main__":
    main()
