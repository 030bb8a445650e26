#!/usr/bin/env python3
"""A small SS 12000 API for soffa's tests: serves saved pages on loopback.

    server.py --port-file F --token T [--persons P1,P2] [--organisations O]
              [--calendar C] [--break ENDPOINT:N] [--log L]

Each endpoint serves its files as pages: the first without pageToken, page N
for pageToken=sida-N (the fixtures' own pageToken values). Every request must
carry "Authorization: Bearer T" (else 401 with an SS 12000 error body).
--break persons:2 sends half of page 2 of /persons and closes the connection.
Requests are logged one a line (path, query, whether the token was right).
"""
import argparse
import http.server
import os
import socket
import sys
import urllib.parse


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--persons", default="")
    ap.add_argument("--organisations", default="")
    ap.add_argument("--calendar", default="")
    ap.add_argument("--break", dest="brk", default="")
    ap.add_argument("--log", default=os.devnull)
    a = ap.parse_args()
    files = {
        "/persons": [f for f in a.persons.split(",") if f],
        "/organisations": [f for f in a.organisations.split(",") if f],
        "/calendarEvents": [f for f in a.calendar.split(",") if f],
    }
    log = open(a.log, "a", buffering=1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send_json(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            url = urllib.parse.urlsplit(self.path)
            q = urllib.parse.parse_qs(url.query)
            ok = self.headers.get("Authorization") == "Bearer " + a.token
            log.write(f"{url.path} {url.query} token={'ok' if ok else 'bad'}\n")
            if not ok:
                self.send_json(401, '{"code":"unauthorized","message":"Ogiltig eller saknad token"}')
                return
            pages = files.get(url.path)
            if pages is None:
                self.send_json(404, '{"code":"not_found","message":"Okänd resurs"}')
                return
            if not pages:
                self.send_json(200, '{"data":[],"pageToken":null}')
                return
            tok = q.get("pageToken", [""])[0]
            n = int(tok.split("-")[1]) if tok.startswith("sida-") else 1
            if n < 1 or n > len(pages):
                self.send_json(400, '{"code":"bad_token","message":"Okänd pageToken"}')
                return
            with open(pages[n - 1], "rb") as f:
                data = f.read()
            if a.brk == f"{url.path[1:]}:{n}":
                # The server goes away in the middle of the page.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(a.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(a.port_file + ".tmp", a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
