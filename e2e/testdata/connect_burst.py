# connect_burst.py N HOST PORT TIMEOUT: open N non-blocking TCP connections
# at once from one thread, wait for them with epoll, and print one line:
#   <established> <failed> <seconds until the last was established>
# Used by e2e/connect_test.go in the client namespace.
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
while ok + failed < n and time.monotonic() - start < timeout:
    for fd, _ in ep.poll(0.05):
        ep.unregister(fd)
        if socks[fd].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
            ok += 1
            last = time.monotonic() - start
        else:
            failed += 1
print(ok, failed, f"{last:.3f}")
