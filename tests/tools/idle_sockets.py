"""Opens N sockets that send nothing to a fresh `hookjar serve`, checks the API still
answers, and reports when the server closed them (docs/cli.md, Servers).

    python3 tests/tools/idle_sockets.py target/debug/hookjar 500
"""
import socket, subprocess, sys, time, select
bin_, n = sys.argv[1], int(sys.argv[2])
p = subprocess.Popen([bin_, "serve", "--in-memory", "--api-key", "k", "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
url = p.stdout.readline().strip().split()[-1]
host, port = url.replace("http://", "").split(":")
socks = [socket.create_connection((host, int(port))) for _ in range(n)]
t0 = time.monotonic()
def ping():
    s = socket.create_connection((host, int(port))); s.settimeout(5)
    s.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Basic azo=\r\nConnection: close\r\n\r\n")
    return s.recv(100).split(b"\r\n")[0].decode()
print("ping while %d idle sockets are open: %s" % (n, ping()))
open_ = set(socks); closed_at = []
while open_ and time.monotonic() - t0 < 30:
    r, _, _ = select.select(list(open_), [], [], 1)
    for s in r:
        try: data = s.recv(10)
        except OSError: data = b""
        if not data:
            closed_at.append(time.monotonic() - t0); open_.discard(s)
print("closed %d/%d idle sockets; first after %.2fs, last after %.2fs" % (len(closed_at), n, min(closed_at or [0]), max(closed_at or [0])))
print("ping after: %s" % ping())
p.terminate(); p.wait()
