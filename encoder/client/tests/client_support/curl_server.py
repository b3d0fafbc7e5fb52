# The HTTP service of the `hop get` curl-flag tests (client_curl.rs, client_plain_url.rs):
# what curl's flags need a server for. `curl_server.py PORT` serves HTTP/1.1 on [::1]:PORT;
# `curl_server.py PORT silent` accepts, reads and never answers (for -m).
#
#   /hello                 200 "hello\n"
#   /echo                  200 "METHOD CONTENT-TYPE BODY" (any method)
#   /redirect              302 to /hello          /see-other  303 to /echo
#   /redirect-abs          301 to http://yc/hello /redirect-away 302 to another host
#   /loop                  302 to /loop
#   /missing               404 "no such thing\n"
#   /flaky/KEY/N           503 the first N times KEY is asked, then 200 "recovered\n"
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

asked = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path = self.path.split("?")[0]
        if path == "/hello":
            self.answer(200, b"hello\n", [("Content-Type", "text/plain")])
        elif path == "/echo":
            ctype = self.headers.get("Content-Type") or "-"
            self.answer(200, f"{self.command} {ctype} ".encode() + body)
        elif path == "/redirect":
            self.answer(302, b"moved\n", [("Location", "/hello")])
        elif path == "/redirect-abs":
            self.answer(301, b"moved\n", [("Location", "http://yc/hello")])
        elif path == "/redirect-away":
            self.answer(302, b"moved\n", [("Location", "http://elsewhere.example/hello")])
        elif path == "/see-other":
            self.answer(303, b"", [("Location", "/echo")])
        elif path == "/loop":
            self.answer(302, b"", [("Location", "/loop")])
        elif path.startswith("/flaky/"):
            _, _, key, times = path.split("/")
            with lock:
                asked[key] = asked.get(key, 0) + 1
                failing = asked[key] <= int(times)
            if failing:
                self.answer(503, b"busy\n")
            else:
                self.answer(200, b"recovered\n")
        else:
            self.answer(404, b"no such thing\n")

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = handle_any

    def log_message(self, fmt, *args):
        sys.stderr.write("curl_server: " + (fmt % args) + "\n")


class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


def silent(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("::1", port))
    s.listen(16)
    print("listening", file=sys.stderr, flush=True)
    held = []
    while True:
        c, _ = s.accept()
        held.append(c)  # never closed, never answered
        threading.Thread(target=lambda c=c: [None for _ in iter(lambda: c.recv(65536), b"")],
                         daemon=True).start()


if __name__ == "__main__":
    port = int(sys.argv[1])
    if sys.argv[2:] == ["silent"]:
        silent(port)
    else:
        server = Server(("::1", port), Handler)
        print("listening", file=sys.stderr, flush=True)
        server.serve_forever()
