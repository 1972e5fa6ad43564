# download_gaps.py PCAP...: where a download's time goes, from a capture on the client end.
# For each capture, over the body of every download in it (first to last data frame from port 80),
# the gaps between frames, split by whose turn it was: the server's (a client frame, then the
# server's next data frame) and the client's (server data, then the client's next frame).
# Capture with tcpdump in the client namespace of a `testbed demo -keep -napi=false` testbed:
#   ip netns exec CLI tcpdump -i IFACE -s 96 -w F.pcap tcp port 80
#   ip netns exec CLI curl -s -o /dev/null -r 0-1048575 http://198.18.0.1/5m.bin   (a few times)
# IPv4 over Ethernet only; pcap (not pcapng), micro- or nanosecond stamps.
import collections, struct, sys

def frames(fn):
    d = open(fn, 'rb').read()
    nano = struct.unpack('<I', d[:4])[0] == 0xa1b23c4d
    off = 24
    while off + 16 <= len(d):
        ts, frac, incl, _ = struct.unpack('<IIII', d[off:off + 16])
        pkt = d[off + 16:off + 16 + incl]
        off += 16 + incl
        if struct.unpack('>H', pkt[12:14])[0] != 0x0800:
            continue
        ip = pkt[14:]
        ihl, total = (ip[0] & 15) * 4, struct.unpack('>H', ip[2:4])[0]
        tcp = ip[ihl:]
        sport, dport = struct.unpack('>HH', tcp[:4])
        payload = total - ihl - (tcp[12] >> 4) * 4
        yield ts + frac * (1e-9 if nano else 1e-6), sport, dport, payload

def summary(gaps):
    g = sorted(gaps)
    if not g:
        return 'none'
    return (f'n={len(g)} sum={sum(g) / 1e3:.2f} ms p50={g[len(g) // 2]:.0f} '
            f'p90={g[len(g) * 9 // 10]:.0f} max={g[-1]:.0f} us')

for fn in sys.argv[1:]:
    flows = collections.defaultdict(list)
    for f in frames(fn):
        flows[f[1] if f[2] == 80 else f[2]].append(f)
    server, client, bodies = [], [], []
    for fs in flows.values():
        data = [f for f in fs if f[1] == 80 and f[3] > 0]
        if not data:
            continue
        body = [f for f in fs if data[0][0] <= f[0] <= data[-1][0]]
        bodies.append((data[-1][0] - data[0][0]) * 1e3)
        for a, b in zip(body, body[1:]):
            gap = (b[0] - a[0]) * 1e6
            if a[2] == 80 and b[1] == 80:
                server.append(gap)
            elif a[1] == 80 and b[2] == 80:
                client.append(gap)
    print(f'{fn}: {len(bodies)} downloads, bodies ' + ' '.join(f'{b:.2f}' for b in bodies) + ' ms')
    print('  server\'s turn (client frame -> server data):', summary(server))
    print('  client\'s turn (server data -> client frame):', summary(client))
