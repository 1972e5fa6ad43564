# conntime.py HOST PORT N GAP: connect, GET /1k.bin, close, N times, GAP seconds apart;
# prints the medians and p90 of connect and of the request after it (README, "Latest make compare").
# Run from the client namespace of a `testbed demo -keep` testbed: ip netns exec NS python3 docs/conntime.py 198.18.0.1 80 150 0.05
import socket, time, sys, statistics
host=sys.argv[1]; port=int(sys.argv[2]); n=int(sys.argv[3]); gap=float(sys.argv[4])
ts=[]; rs=[]
for i in range(n):
    s=socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t0=time.perf_counter(); s.connect((host,port)); t1=time.perf_counter()
    s.sendall(b"GET /1k.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    d=b""
    while len(d) < 1024+100:
        c=s.recv(65536)
        if not c: break
        d+=c
        if b"\r\n\r\n" in d and len(d.split(b"\r\n\r\n",1)[1])>=1024: break
    t2=time.perf_counter()
    s.close()
    ts.append((t1-t0)*1e6); rs.append((t2-t1)*1e6)
    time.sleep(gap)
ts.sort(); rs.sort()
q=lambda a,p: a[int(p*(len(a)-1))]
print(f"connect p50 {q(ts,.5):.0f} p90 {q(ts,.9):.0f} us; request p50 {q(rs,.5):.0f} p90 {q(rs,.9):.0f} us (n={n}, gap {gap}s)")
