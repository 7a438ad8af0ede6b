"""Pipes between a parent and its child: a duplex pipe's end passed to a
child, messages both ways, EOF once the child's end is gone, and the
errors of a one-way pipe's wrong end, printed as `Type: message`."""

import multiprocessing as mp

from scenario_output import attempt, show


def echo(conn):
    while True:
        message = conn.recv_bytes()
        if message == b"bye":
            break
        conn.send_bytes(message.upper())
    conn.close()


def main():
    ours, theirs = mp.Pipe()
    p = mp.Process(target=echo, args=(theirs,))
    p.start()
    theirs.close()
    for word in (b"hello", b"pipes", b""):
        ours.send_bytes(word)
        show("echoed", ours.recv_bytes())
    ours.send_bytes(b"bye")
    p.join()
    show("child", p.exitcode)
    attempt("poll after the child ended", lambda: ours.poll(1))
    attempt("recv after the child ended", ours.recv_bytes)
    ours.close()
    attempt("send on a closed end", lambda: ours.send_bytes(b"x"))

    reader, writer = mp.Pipe(duplex=False)
    show("readable", reader.readable, reader.writable, "writable", writer.readable, writer.writable)
    attempt("poll with nothing sent", lambda: reader.poll(0.05))
    writer.send_bytes(b"one way")
    attempt("poll with a message", lambda: reader.poll(0))
    show("received", reader.recv_bytes())
    attempt("send on the reading end", lambda: reader.send_bytes(b"x"))
    attempt("recv on the writing end", writer.recv_bytes)
    reader.close()
    attempt("send with the reader gone", lambda: writer.send_bytes(b"x"))


if __name__ == "__main__":
    main()
