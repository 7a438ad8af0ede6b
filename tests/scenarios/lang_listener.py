"""A listener and its clients, authenticated by a key: a client with the
key is accepted and talks both ways; a client with a wrong key is refused
on both sides with multiprocessing's AuthenticationError messages."""

import multiprocessing as mp
from multiprocessing.connection import Client, Listener

from scenario_output import show


def client(address, key):
    try:
        with Client(address, authkey=key) as conn:
            conn.send_bytes(b"hello from " + mp.current_process().name.encode())
            show("client got", conn.recv_bytes())
    except Exception as err:
        show("client", f"{type(err).__name__}: {err}")


def main():
    # a name unique to this run: a path under CPython, a name in the runtime under wmp
    address = f"/tmp/wmp-scenario-listener-{mp.current_process().pid}"
    with Listener(address, authkey=b"secret") as listener:
        good = mp.Process(target=client, args=(address, b"secret"))
        good.start()
        with listener.accept() as conn:
            show("server got", conn.recv_bytes())
            conn.send_bytes(b"welcome")
            good.join()
        bad = mp.Process(target=client, args=(address, b"wrong"))
        bad.start()
        try:
            listener.accept()
            refusal = "accepted"
        except Exception as err:
            refusal = f"{type(err).__name__}: {err}"
        bad.join()  # the client's line first: the two would race
        show("server", refusal)
        show("exitcodes", good.exitcode, bad.exitcode)


if __name__ == "__main__":
    main()
