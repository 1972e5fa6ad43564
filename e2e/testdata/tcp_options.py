# Usage: tcp_options.py HOST PORT PATH
# Fetches PATH over one connection and prints, from the kernel's TCP_INFO of
# the client's socket: the options in use (timestamps, SACK, window scaling
# as 0/1), the window scales (the server's, the client's) and the bytes of
# body read, then the body's SHA-256.
import hashlib
import socket
import struct
import sys

host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(10)
s.connect((host, port))
s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
data = b""
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    data += b
# struct tcp_info: state, ca_state, retransmits, probes, backoff, options,
# then snd_wscale:4 and rcv_wscale:4 in one byte.
info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)
s.close()
opts, wscale = info[5], info[6]
head, _, body = data.partition(b"\r\n\r\n")
print(opts & 1, (opts >> 1) & 1, (opts >> 2) & 1, wscale & 0xF, wscale >> 4, len(body), hashlib.sha256(body).hexdigest())
