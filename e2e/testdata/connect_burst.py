# connect_burst.py N HOST PORT TIMEOUT: open N non-blocking TCP connections
# at once from one thread and wait for them with epoll; then send a GET of
# /index.html (Connection: close) on every one established, at once, and
# read each answer to its end. Prints one line:
#   <established> <failed> <seconds until the last was established>
#   <answered> <seconds from the requests until the last answer>
# An answer counts when it starts with a 200 status line and the server
# then closes. Used by e2e/connect_test.go in the client namespace.
import select, socket, sys, time

n, host, port, timeout = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
start = time.monotonic()
socks = {}
for _ in range(n):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    socks[s.fileno()] = s
ep = select.epoll()
for fd in socks:
    ep.register(fd, select.EPOLLOUT)
ok = failed = 0
last = 0.0
up = []
while ok + failed < n and time.monotonic() - start < timeout:
    for fd, _ in ep.poll(0.05):
        ep.unregister(fd)
        if socks[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            ok += 1
            last = time.monotonic() - start
            up.append(fd)
        else:
            failed += 1

req = b"GET /index.html HTTP/1.1\r\nHost: burst\r\nConnection: close\r\n\r\n"
sent = time.monotonic()
got = {}
for fd in up:
    try:
        if socks[fd].send(req) == len(req):
            got[fd] = b""
            ep.register(fd, select.EPOLLIN)
    except OSError:
        pass
answered = 0
last_answer = 0.0
while got and time.monotonic() - sent < timeout:
    for fd, _ in ep.poll(0.05):
        try:
            b = socks[fd].recv(65536)
        except OSError:
            b = b""
            got[fd] = b"error"
        if b:
            got[fd] += b
            continue
        ep.unregister(fd)
        if got.pop(fd).startswith(b"HTTP/1.1 200 "):
            answered += 1
            last_answer = time.monotonic() - sent
print(ok, failed, f"{last:.3f}", answered, f"{last_answer:.3f}")
