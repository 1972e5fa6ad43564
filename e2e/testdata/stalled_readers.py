"""Opens N connections to HOST:80 that each ask for /5m.bin and never read
the answer, holds them for SECS seconds, then exits (closing them).

usage: stalled_readers.py N HOST SECS
"""
import socket
import sys
import time

n, host, secs = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, 80))
    s.sendall(b"GET /5m.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
print("opened", len(socks), flush=True)
time.sleep(secs)
