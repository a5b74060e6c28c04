#!/usr/bin/env python3
"""Ingest with a team connected (issue 17's benchmark), against any SMTP + IMAP pair.

One process runs both halves so they share a clock:
- N IMAP clients sit in IDLE on one folder and, like Thunderbird, answer each
  EXISTS with DONE and a header FETCH of the new messages, then IDLE again;
- mail is offered at a steady RATE over SESSIONS persistent SMTP sessions.

Each message carries its sequence number in the subject ("team <run> <j>"), so a
client that fetches it knows when its 250 arrived: the notification latency is
the time from that 250 to the EXISTS that announced the message (0 when the
EXISTS came first). Prints one JSON line: achieved rate, accept p50/p99 (DATA
sent -> 250), notification p50/p99, how many of the (clients x accepted)
announcements arrived, errors, and the server's CPU seconds and RSS when
--pid is given.

Why asyncio and raw sockets: 100 clients and 1,000 msg/s in one Python thread
per role would spend the machine's two cores on the GIL; one event loop keeps
the load generator's own cost small and equal for both servers.
"""
import argparse
import asyncio
import json
import os
import re
import time
import uuid

FETCH_ITEMS = ("(UID RFC822.SIZE FLAGS BODY.PEEK[HEADER.FIELDS "
               "(From To Subject Date Message-ID References In-Reply-To)])")


def pct(values, q):
    if not values:
        return None
    s = sorted(values)
    return round(1000 * s[min(len(s) - 1, int(q * len(s)))], 2)


def proc_cpu_rss(pid):
    if not pid:
        return None, None
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = None
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return cpu, rss


def machine_busy_s():
    """CPU seconds all processes spent (load generator included), from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    idle = cpu[3] + cpu[4]
    return (sum(cpu[:8]) - idle) / os.sysconf("SC_CLK_TCK")


class Imap:
    def __init__(self, reader, writer, name):
        self.r, self.w, self.name, self.n = reader, writer, name, 0

    async def line(self):
        line = await self.r.readline()
        if not line:
            raise ConnectionError("closed")
        return line

    async def cmd(self, text):
        self.n += 1
        tag = f"{self.name}.{self.n}".encode()
        self.w.write(tag + b" " + text.encode() + b"\r\n")
        await self.w.drain()
        out = []
        while True:
            line = await self.line()
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                line += await self.r.readexactly(int(m.group(1)))
            out.append(line)
            if line.startswith(tag + b" "):
                if not line[len(tag) + 1:].startswith(b"OK"):
                    raise ConnectionError(line.decode(errors="replace"))
                return out


async def idle_client(a, idx, sent_at, stats, stop, ready):
    reader, writer = await asyncio.open_connection(a.host, a.imap_port)
    c = Imap(reader, writer, f"c{idx}")
    await c.line()
    await c.cmd(f'LOGIN "{a.user}" "{a.password}"')
    uidnext = 1
    for line in await c.cmd(f'SELECT "{a.mailbox}"'):
        m = re.search(rb"UIDNEXT (\d+)", line)
        if m:
            uidnext = int(m.group(1))
    ready.append(idx)
    try:
        while not stop.is_set():
            c.n += 1
            tag = f"c{idx}.{c.n}".encode()
            writer.write(tag + b" IDLE\r\n")
            await writer.drain()
            t_exists = None
            deadline = time.monotonic() + 25
            while not stop.is_set() and time.monotonic() < deadline:
                try:
                    line = await asyncio.wait_for(c.line(), 0.5)
                except asyncio.TimeoutError:
                    continue
                if b"EXISTS" in line:
                    t_exists = time.monotonic()
                    break
            writer.write(b"DONE\r\n")
            await writer.drain()
            while not (await c.line()).startswith(tag + b" "):
                pass
            if t_exists is None:
                continue
            lines = await c.cmd(f"UID FETCH {uidnext}:* {FETCH_ITEMS}")
            for line in lines:
                m = re.search(rb"UID (\d+)", line)
                if m and b" FETCH (" in line:
                    uidnext = max(uidnext, int(m.group(1)) + 1)
                s = re.search(rb"Subject: team " + a.run.encode() + rb" (\d+)", line)
                if s:
                    j = int(s.group(1))
                    stats["seen"] += 1
                    t250 = sent_at.get(j)
                    stats["notify"].append(max(0.0, t_exists - t250) if t250 else 0.0)
    finally:
        writer.close()


async def smtp_reply(reader):
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


async def smtp_session(a, jobs, sent_at, stats):
    reader, writer = await asyncio.open_connection(a.host, a.smtp_port)
    await smtp_reply(reader)
    writer.write(b"EHLO team.bench\r\n")
    await smtp_reply(reader)
    body = ("lorem ipsum dolor sit amet " * (a.size // 27 + 1))[:a.size]
    while True:
        j = await jobs.get()
        if j is None:
            break
        cust = f"c{j % 997}@cust.test"
        msg = (f"From: {cust}\r\nTo: {a.to}\r\nSubject: team {a.run} {j}\r\n"
               f"Message-ID: <{uuid.uuid4().hex}@team.bench>\r\n"
               f"Date: Thu, 03 Dec 2026 08:00:00 +0000\r\n\r\n{body}\r\n.\r\n")
        try:
            for command in (f"MAIL FROM:<{cust}>", f"RCPT TO:<{a.to}>", "DATA"):
                writer.write(command.encode() + b"\r\n")
                reply = await smtp_reply(reader)
                if reply[:1] not in (b"2", b"3"):
                    raise ConnectionError(reply.decode(errors="replace"))
            t0 = time.monotonic()
            writer.write(msg.encode())
            reply = await smtp_reply(reader)
            if not reply.startswith(b"250"):
                raise ConnectionError(reply.decode(errors="replace"))
            now = time.monotonic()
            sent_at[j] = now
            stats["accept"].append(now - t0)
        except (ConnectionError, OSError):
            stats["smtp_errors"] += 1
            writer.close()
            reader, writer = await asyncio.open_connection(a.host, a.smtp_port)
            await smtp_reply(reader)
            writer.write(b"EHLO team.bench\r\n")
            await smtp_reply(reader)
    writer.write(b"QUIT\r\n")
    writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--smtp-port", type=int, required=True)
    p.add_argument("--imap-port", type=int, required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--mailbox", default="INBOX")
    p.add_argument("--to", required=True)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--rate", type=float, default=50)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--sessions", type=int, default=8)
    p.add_argument("--size", type=int, default=4000)
    p.add_argument("--pid", type=int, help="the server process, for CPU and RSS")
    p.add_argument("--label", default="")
    a = p.parse_args()
    a.run = uuid.uuid4().hex[:8]

    sent_at, stop, ready = {}, asyncio.Event(), []
    stats = {"accept": [], "notify": [], "seen": 0, "smtp_errors": 0, "imap_errors": 0}

    async def guarded_client(i):
        try:
            await idle_client(a, i, sent_at, stats, stop, ready)
        except (ConnectionError, OSError) as e:
            stats["imap_errors"] += 1
            stats.setdefault("imap_error", str(e)[:200])

    clients = []
    for i in range(a.clients):
        clients.append(asyncio.create_task(guarded_client(i)))
        await asyncio.sleep(0.01)
    for _ in range(600):
        if len(ready) + stats["imap_errors"] >= a.clients:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)

    cpu0, _ = proc_cpu_rss(a.pid)
    busy0 = machine_busy_s()
    jobs = asyncio.Queue()
    senders = [asyncio.create_task(smtp_session(a, jobs, sent_at, stats))
               for _ in range(a.sessions)]
    t0 = time.monotonic()
    offered = 0
    while time.monotonic() - t0 < a.seconds:
        target = int((time.monotonic() - t0) * a.rate)
        while offered < target:
            # A queue that grows means the server fell behind: the offered
            # rate stays what was asked, the achieved rate shows the rest.
            jobs.put_nowait(offered)
            offered += 1
        await asyncio.sleep(0.002)
    # What the server did not take within the window is not sent late:
    # a backlog sent after the window would stretch the run and hide
    # that the rate was not sustained.
    backlog = 0
    while not jobs.empty():
        jobs.get_nowait()
        backlog += 1
    for _ in senders:
        jobs.put_nowait(None)
    await asyncio.gather(*senders, return_exceptions=True)
    elapsed = time.monotonic() - t0
    cpu1, rss = proc_cpu_rss(a.pid)
    busy1 = machine_busy_s()
    # The clients get a few seconds to hear of the last messages.
    await asyncio.sleep(5)
    stop.set()
    await asyncio.gather(*clients, return_exceptions=True)

    accepted = len(stats["accept"])
    print(json.dumps({
        "label": a.label,
        "clients": a.clients,
        "offered_per_s": a.rate,
        "accepted": accepted,
        "not_sent_backlog": backlog,
        "achieved_per_s": round(accepted / elapsed, 1),
        "accept_p50_ms": pct(stats["accept"], 0.5),
        "accept_p99_ms": pct(stats["accept"], 0.99),
        "notify_p50_ms": pct(stats["notify"], 0.5),
        "notify_p99_ms": pct(stats["notify"], 0.99),
        "seen_share": (round(stats["seen"] / (accepted * a.clients), 3)
                       if accepted and a.clients else None),
        "smtp_errors": stats["smtp_errors"],
        "imap_errors": stats["imap_errors"],
        "imap_error": stats.get("imap_error"),
        "server_cpu_s": round(cpu1 - cpu0, 1) if cpu0 is not None else None,
        "server_rss_kib": rss,
        "machine_cpu_s": round(busy1 - busy0, 1),
    }))


if __name__ == "__main__":
    asyncio.run(main())
