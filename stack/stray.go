package stack

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/xhttpd/xhttpd/syncookie"
)

// A segment for no connection (a stray) goes to the port's listener, which
// answers an ACK with a reset (RFC 9293, 3.10.7.2) and drops the rest. One
// hping3 --flood --ack --rand-source made of that a denial of service: the
// netstack took each forged ACK through IP, a segment, the listener's
// queue and a reset, learned each forged source as a neighbour, and, on
// its one core at 350,000 a second, served nobody (docs/measured.md, "ACK floods").
// The XDP program now drops most of such a flood (xdp.Strays), by a flow
// table of its own, which may have lost a connection and so lets strays
// through within a budget; this check is exact, the connections are the
// netstack's.
//
// So the link endpoint looks each segment that is not a SYN up in the
// netstack's demultiplexer before anything else is done with it (a read
// lock and a map lookup, gVisor patch 0026, as the netstack does again
// after). A segment of a
// connection (TIME-WAIT and handshakes under way included) goes on, and so
// does the ACK that completes a handshake the XDP program answered with a
// SYN cookie, when the cookie checks. Of the strays, only ACKs get an
// answer, and only strayBudget of them a window go on to the listener for
// their reset; the rest are dropped and counted, as FreeBSD limits its
// resets to closed ports (net.inet.icmp.icmplim, 200 a second). A stray
// without ACK (a RST, a bare FIN) is dropped here as the listener would.

// strayWindow and strayBudget bound the strays handed to the listeners:
// 1,000 a second, a few milliseconds of a core.
const (
	strayWindow = 100 * time.Millisecond
	strayBudget = 100
)

// strayFilter is the check above. Every queue's loop calls it, so its
// window is kept in atomics; two loops that roll it over at once may let a
// few more strays through than the budget.
type strayFilter struct {
	stack *gvstack.Stack
	key   *syncookie.Key // nil: no SYN cookies to check

	start   atomic.Int64  // the window's start, Unix nanoseconds
	passed  atomic.Int64  // strays handed on in it
	period  atomic.Uint32 // the SYN cookie period when it started
	dropped atomic.Uint64
}

// drop reports whether the frame's IP packet ip (of network protocol
// proto), received at now (Unix nanoseconds), is a stray beyond the budget
// or one the listener would drop anyway, and counts it if so. Anything it
// cannot read as a TCP segment goes on, for the netstack to judge.
func (f *strayFilter) drop(proto tcpip.NetworkProtocolNumber, ip []byte, now int64) bool {
	var id gvstack.TransportEndpointID
	var seg []byte
	switch proto {
	case header.IPv4ProtocolNumber:
		ihl := int(ip[0]&0xf) * 4
		if ip[0]>>4 != 4 || ip[9] != uint8(header.TCPProtocolNumber) || ihl < header.IPv4MinimumSize ||
			len(ip) < ihl+header.TCPMinimumSize || binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
			return false
		}
		id.LocalAddress, id.RemoteAddress = tcpip.AddrFrom4([4]byte(ip[16:20])), tcpip.AddrFrom4([4]byte(ip[12:16]))
		seg = ip[ihl:]
	case header.IPv6ProtocolNumber:
		if ip[0]>>4 != 6 || ip[6] != uint8(header.TCPProtocolNumber) || len(ip) < header.IPv6MinimumSize+header.TCPMinimumSize {
			return false
		}
		id.LocalAddress, id.RemoteAddress = tcpip.AddrFrom16([16]byte(ip[24:40])), tcpip.AddrFrom16([16]byte(ip[8:24]))
		seg = ip[header.IPv6MinimumSize:]
	default:
		return false
	}
	t := header.TCP(seg)
	flags := t.Flags()
	if flags&(header.TCPFlagSyn|header.TCPFlagAck) == header.TCPFlagSyn {
		return false // a SYN: the XDP program bounds those
	}
	id.LocalPort, id.RemotePort = t.DestinationPort(), t.SourcePort()
	if f.stack.HasTransportEndpoint(proto, header.TCPProtocolNumber, id) {
		return false // a connection's
	}

	// A stray, or a handshake's last ACK the listener is to complete.
	if flags&(header.TCPFlagAck|header.TCPFlagRst) != header.TCPFlagAck {
		f.dropped.Add(1)
		return true
	}
	if s := f.start.Load(); now-s >= int64(strayWindow) || now < s {
		if f.start.CompareAndSwap(s, now) {
			f.passed.Store(0)
			f.period.Store(syncookie.Period())
		}
	}
	if f.key != nil {
		tu := syncookie.Tuple{Local: addr(id.LocalAddress), Remote: addr(id.RemoteAddress), LocalPort: id.LocalPort, RemotePort: id.RemotePort}
		if _, ok := f.key.Check(tu, t.AckNumber()-1, t.SequenceNumber()-1, f.period.Load()); ok {
			return false
		}
	}
	if f.passed.Add(1) <= strayBudget {
		return false
	}
	f.dropped.Add(1)
	return true
}
