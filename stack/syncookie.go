package stack

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/xhttpd/xhttpd/syncookie"
)

// useSYNCookies makes the netstack's listeners make and check SYN cookies
// with key, the key the XDP program answers SYN floods with: the ACK that
// completes a handshake the program answered reaches a listener that has no
// trace of it, and is accepted when its cookie checks. The listeners' own
// cookies (gVisor sends them when its SYN queue is full) use it too. It sets
// a hook of the patched gVisor (third_party/gvisor-patches/0003), which is
// global: the last stack built wins, and every stack of a process must use
// one key.
func useSYNCookies(key syncookie.Key) {
	tcp.SYNCookieHash = func(id gvstack.TransportEndpointID, ts uint32, i int) uint32 {
		return key.Hash(syncookie.Tuple{
			Local:      addr(id.LocalAddress),
			Remote:     addr(id.RemoteAddress),
			LocalPort:  id.LocalPort,
			RemotePort: id.RemotePort,
		}, ts, i)
	}
	tcp.SYNCookiePeriod = syncookie.Period
}

func addr(a tcpip.Address) netip.Addr {
	if a.Len() == 4 {
		return netip.AddrFrom4(a.As4())
	}
	return netip.AddrFrom16(a.As16())
}
