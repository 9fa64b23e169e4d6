#!/usr/bin/python3
# A small HTTP server for tests/integration/download.sh: serves the files of a directory with
# ETag, Last-Modified and byte ranges (python's http.server does no ranges), and can misbehave
# on purpose. Writes its port to PORTFILE, and one line per request to LOG:
# "METHOD PATH range=<Range header or -> status=<code> sent=<body bytes>".
#   httpd.py DIR PORTFILE LOG
# Behaviour per file, from DIR/.mode (re-read for every request):
#   normal        ranges honoured (206), If-Range and If-None-Match checked
#   drop-once     the first GET of a file sends its headers and half its body, then closes
#   no-range      Range ignored: always 200 with the whole file
#   wrong-range   206 whose Content-Range starts at 0, whatever was asked
import email.utils
import hashlib
import http.server
import os
import sys

root, portfile, logfile = sys.argv[1:4]
dropped = set()


def mode():
    try:
        with open(os.path.join(root, ".mode")) as f:
            return f.read().strip() or "normal"
    except FileNotFoundError:
        return "normal"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def log(self, status, sent):
        with open(logfile, "a") as f:
            f.write("%s %s range=%s status=%d sent=%d\n" % (
                self.command, self.path, self.headers.get("Range", "-"), status, sent))

    def do_GET(self):
        path = os.path.join(root, self.path.lstrip("/").split("?")[0])
        if self.path.startswith("/.") or not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.log(404, 0)
            return
        with open(path, "rb") as f:
            data = f.read()
        st = os.stat(path)
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:16]
        lm = email.utils.formatdate(st.st_mtime, usegmt=True)
        m = mode()
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            self.log(304, 0)
            return
        start = 0
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and m != "no-range" and (if_range is None or if_range in (etag, lm)):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % len(data))
                self.send_header("Content-Length", "0")
                self.end_headers()
                self.log(416, 0)
                return
        if m == "wrong-range" and rng:
            self.send_response(206)
            self.send_header("Content-Range", "bytes 0-%d/%d" % (len(data) - 1, len(data)))
            body = data
        elif start:
            self.send_response(206)
            self.send_header("Content-Range",
                             "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            body = data[start:]
        else:
            self.send_response(200)
            body = data
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", lm)
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if m == "drop-once" and self.path not in dropped:
            dropped.add(self.path)
            half = len(body) // 2
            self.log(0, half)
            self.wfile.write(body[:half])
            self.wfile.flush()
            self.close_connection = True
            return
        # Logged first: a client may hang up on a body it does not want.
        self.log(206 if start or (m == "wrong-range" and rng) else 200, len(body))
        try:
            self.wfile.write(body)
        except ConnectionError:
            self.close_connection = True


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
