#!/usr/bin/env python3
"""IMAP SEARCH TEXT every INTERVAL seconds while and after a burst of mail.

Logs in, selects FOLDER, and until the file DONE exists plus AFTER seconds
times `SEARCH TEXT word` (NOOP first, so that the view has every message
the server announced). One line per probe on stdout:

    <unix time> <milliseconds> <hits>

Used by bench/search_after_burst.sh.
"""
import argparse
import imaplib
import os
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--port", type=int, required=True)
ap.add_argument("--user", required=True)
ap.add_argument("--password", required=True)
ap.add_argument("--folder", default="Unassigned")
ap.add_argument("--word", default="vpn")
ap.add_argument("--interval", type=float, default=0.5)
ap.add_argument("--done", required=True, help="file that appears when the burst has ended")
ap.add_argument("--after", type=float, default=40.0, help="seconds to go on after the burst")
args = ap.parse_args()

imap = imaplib.IMAP4("127.0.0.1", args.port)
imap.login(args.user, args.password)
typ, data = imap.select(f'"{args.folder}"', readonly=True)
if typ != "OK":
    sys.exit(f"SELECT {args.folder}: {data}")
ended = None
next_probe = time.monotonic()
while True:
    if ended is None and os.path.exists(args.done):
        ended = time.monotonic()
    if ended is not None and time.monotonic() - ended > args.after:
        break
    typ, data = imap.noop()
    start = time.perf_counter()
    typ, data = imap.search(None, "TEXT", args.word)
    ms = (time.perf_counter() - start) * 1000
    hits = len(data[0].split()) if typ == "OK" and data and data[0] else 0
    print(f"{time.time():.3f} {ms:.1f} {hits}", flush=True)
    next_probe += args.interval
    time.sleep(max(0.0, next_probe - time.monotonic()))
imap.logout()
