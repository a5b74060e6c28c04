#!/usr/bin/env python3
"""Resident memory of a postdesk server holding N IMAP connections in IDLE.

Opens N plain connections (LOGIN, SELECT INBOX, IDLE), then reads VmRSS and
RssAnon of the server process before and after from /proc. Usage:
  imap_idle_memory.py --pid PID --port P --user U --password PW [-n 1000]
The server must allow N connections per agent ([imap] max_connections_per_agent).
"""
import argparse, socket, time

def status_kib(pid, field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise SystemExit("no " + field)

def rss_kib(pid):
    return status_kib(pid, "VmRSS")

def anon_kib(pid):
    # The server's own memory. VmRSS also counts the pages of the SQLite
    # database it maps (RssFile): the kernel's file cache, shared and
    # dropped under pressure, which grows with what was read, not with
    # the connections.
    return status_kib(pid, "RssAnon")

def expect(sock, tag):
    buf = b""
    while not any(l.startswith(tag) for l in buf.split(b"\r\n")):
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("connection closed: " + buf.decode(errors="replace"))
        buf += chunk
    return buf

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("-n", type=int, default=1000)
    a = ap.parse_args()
    before, before_anon = rss_kib(a.pid), anon_kib(a.pid)
    socks = []
    t0 = time.time()
    for i in range(a.n):
        s = socket.create_connection((a.host, a.port), timeout=60)
        expect(s, b"* OK")
        s.sendall(f"a LOGIN {a.user} {a.password}\r\n".encode()); expect(s, b"a OK")
        s.sendall(b"b SELECT INBOX\r\n"); expect(s, b"b OK")
        s.sendall(b"c IDLE\r\n"); expect(s, b"+")
        socks.append(s)
    setup = time.time() - t0
    time.sleep(2)
    during, during_anon = rss_kib(a.pid), anon_kib(a.pid)
    print(f"connections in IDLE: {len(socks)} (set up in {setup:.1f} s)")
    print(f"server RSS before: {before/1024:.1f} MiB, with {len(socks)} in IDLE: {during/1024:.1f} MiB "
          f"({(during-before)/len(socks):.1f} KiB per connection)")
    print(f"server own memory (RssAnon) before: {before_anon/1024:.1f} MiB, with {len(socks)} in IDLE: "
          f"{during_anon/1024:.1f} MiB ({(during_anon-before_anon)/len(socks):.1f} KiB per connection)")
    for s in socks:
        s.sendall(b"DONE\r\nd LOGOUT\r\n")
        s.close()

if __name__ == "__main__":
    main()
