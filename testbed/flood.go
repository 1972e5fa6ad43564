package testbed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// FloodOptions describe a flood of SYNs, or of ACKs, from the client end.
type FloodOptions struct {
	Dst  netip.Addr // the server address to flood; its family is the flood's
	Port uint16
	// RandomSources sends each SYN from a random address of the client's
	// range (198.18.0.0/15 or 2001:2::/48), as a spoofing flooder does;
	// otherwise every SYN comes from the client's own address, whose
	// kernel answers each SYN-ACK with a RST.
	RandomSources bool
	// From is the client that sends; nil means Clients[0].
	From *Client
	// Src, if valid, is the source address of every SYN instead of From's
	// own: a host on a bridge forging a neighbour's address. Its family
	// must be Dst's; RandomSources overrides it.
	Src netip.Addr
	// Rate, if positive, paces the SYNs at about this many a second.
	Rate int
	// ACK sends ACKs for no connection instead of SYNs, with random
	// sequence and acknowledgement numbers and no option (hping3 --ack).
	ACK bool
}

// Flood sends SYNs (or ACKs, with opts.ACK) to opts.Dst from a client's
// end, as fast as one thread can write them to an AF_PACKET socket (or at
// opts.Rate), until ctx ends; it returns how many it sent. Each SYN has a
// random source port, ISN and MSS option 1460, each ACK random sequence
// and acknowledgement numbers, and both full checksums. hping3 floods IPv4
// only; this floods both.
func (tb *Testbed) Flood(ctx context.Context, opts FloodOptions) (sent uint64, err error) {
	if !opts.Dst.IsValid() || opts.Port == 0 {
		return 0, errors.New("testbed: flood: no destination")
	}
	from := opts.From
	if from == nil {
		from = tb.Clients[0]
	}
	src := from.V6
	if opts.Dst.Is4() {
		src = from.V4
	}
	if opts.Src.IsValid() {
		if opts.Src.Is4() != opts.Dst.Is4() {
			return 0, fmt.Errorf("testbed: flood: source %v and destination %v differ in family", opts.Src, opts.Dst)
		}
		src = opts.Src
	}
	var srvMAC net.HardwareAddr
	if err := tb.InServer(func() error {
		ifi, err := net.InterfaceByName(tb.ServerIf)
		if err == nil {
			srvMAC = ifi.HardwareAddr
		}
		return err
	}); err != nil {
		return 0, fmt.Errorf("testbed: flood: %w", err)
	}
	err = from.In(func() error {
		ifi, err := net.InterfaceByName(from.If)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		defer unix.Close(fd)
		// Past the qdisc, straight to the driver, as a packet generator.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], srvMAC)
		f := newFloodFrame(ifi.HardwareAddr, srvMAC, opts, src)
		burst, gap := 256, time.Duration(0)
		if opts.Rate > 0 {
			// Bursts of about a millisecond's worth.
			burst = max(1, opts.Rate/1000)
			gap = time.Duration(burst) * time.Second / time.Duration(opts.Rate)
		}
		next := time.Now()
		for ctx.Err() == nil {
			if gap > 0 {
				next = next.Add(gap)
				time.Sleep(time.Until(next))
			}
			// A burst between context checks.
			for range burst {
				f.next()
				if err := unix.Sendto(fd, f.b, 0, to); err != nil {
					if errors.Is(err, unix.ENOBUFS) || errors.Is(err, unix.EAGAIN) {
						continue
					}
					return fmt.Errorf("send: %w", err)
				}
				sent++
			}
		}
		return nil
	})
	if err != nil {
		return sent, fmt.Errorf("testbed: flood from %s: %w", from.If, err)
	}
	return sent, nil
}

// floodFrame is one SYN or ACK, rewritten in place for each send.
type floodFrame struct {
	b      []byte
	v4     bool
	random bool
	ip     int // offset of the IP header
	tcp    int // offset of the TCP header
	tcpLen int // 24 for a SYN with its MSS option, 20 for an ACK
	rng    *rand.Rand
}

func newFloodFrame(src, dst net.HardwareAddr, o FloodOptions, srcIP netip.Addr) *floodFrame {
	f := &floodFrame{v4: o.Dst.Is4(), random: o.RandomSources, ip: 14, tcpLen: 24, rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	if o.ACK {
		f.tcpLen = 20
	}
	ipLen := 40
	if f.v4 {
		ipLen = 20
	}
	f.tcp = f.ip + ipLen
	f.b = make([]byte, f.tcp+f.tcpLen)
	copy(f.b[0:], dst)
	copy(f.b[6:], src)
	ip := f.b[f.ip:f.tcp]
	if f.v4 {
		binary.BigEndian.PutUint16(f.b[12:], unix.ETH_P_IP)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+f.tcpLen))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8] = 64
		ip[9] = unix.IPPROTO_TCP
		a, d := srcIP.As4(), o.Dst.As4()
		copy(ip[12:], a[:])
		copy(ip[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(f.b[12:], unix.ETH_P_IPV6)
		ip[0] = 6 << 4
		binary.BigEndian.PutUint16(ip[4:], uint16(f.tcpLen))
		ip[6] = unix.IPPROTO_TCP
		ip[7] = 64
		a, d := srcIP.As16(), o.Dst.As16()
		copy(ip[8:], a[:])
		copy(ip[24:], d[:])
	}
	tcp := f.b[f.tcp:]
	binary.BigEndian.PutUint16(tcp[2:], o.Port)
	tcp[12] = byte(f.tcpLen/4) << 4 // data offset
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	if o.ACK {
		tcp[13] = 0x10 // ACK
		return f
	}
	tcp[13] = 0x02                           // SYN
	copy(tcp[20:], []byte{2, 4, 0x05, 0xb4}) // MSS 1460
	return f
}

// next gives the frame a new source port, sequence number (and
// acknowledgement number, which a SYN ignores), and a new source address
// if random, and sets its checksums.
func (f *floodFrame) next() {
	r := f.rng.Uint64()
	ip := f.b[f.ip:f.tcp]
	tcp := f.b[f.tcp:]
	binary.BigEndian.PutUint16(tcp[0:], uint16(r)|1024)
	binary.BigEndian.PutUint32(tcp[4:], uint32(r>>16))
	if f.tcpLen == 20 {
		binary.BigEndian.PutUint32(tcp[8:], f.rng.Uint32())
	}
	var pseudo uint32
	if f.v4 {
		if f.random {
			// 198.18.0.0/15, the host part random.
			binary.BigEndian.PutUint32(ip[12:], 198<<24|18<<16|uint32(r>>48)&0x1ffff)
		}
		ip[10], ip[11] = 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum(ip, 0)))
		pseudo = sum(ip[12:20], unix.IPPROTO_TCP+uint32(f.tcpLen))
	} else {
		if f.random {
			// 2001:2::/48, the rest random.
			binary.BigEndian.PutUint64(ip[8+8:], f.rng.Uint64())
			binary.BigEndian.PutUint16(ip[8+6:], uint16(r>>48))
		}
		pseudo = sum(ip[8:40], unix.IPPROTO_TCP+uint32(f.tcpLen))
	}
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], ^fold(sum(tcp, pseudo)))
}

// sum adds b's big-endian 16-bit words (b has an even length) to s.
func sum(b []byte, s uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return s
}

func fold(s uint32) uint16 {
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return uint16(s)
}

// ClientNAPI puts the client end in NAPI mode, by attaching loss programs
// that drop nothing. A veth end takes frames a peer's XDP program sends
// back (XDP_TX, as xhttpd's SYN cookies do) only in NAPI mode; without it
// the kernel drops them and counts xdp_tx_errors on the sending end. A real
// NIC has no such condition. Close undoes it.
func (tb *Testbed) ClientNAPI() (*Loss, error) { return tb.AddLoss(LossOptions{}) }

// RouteThroughClient gives the server end default routes through the
// client end, as a real server's lead to its gateway, until the returned
// undo runs. With them the kernel stack answers a SYN flood's forged
// sources as it would on a network, as xhttpd's XDP program does
// regardless; without them it has no route there and sends nothing, which
// on one small machine spares it and the client end the cost of every
// answer. The testbed does not keep them for good: with a default route, a
// name lookup in the server namespace waits for a resolver that is not
// there instead of failing at once (Python's http.server looks its own
// address up).
func (tb *Testbed) RouteThroughClient() (undo func() error, err error) {
	h, err := handleIn(tb.ServerNS)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	link, err := h.LinkByName(tb.ServerIf)
	if err != nil {
		return nil, fmt.Errorf("testbed: find %s: %w", tb.ServerIf, err)
	}
	var routes []*netlink.Route
	undo = func() error {
		h, err := handleIn(tb.ServerNS)
		if err != nil {
			return err
		}
		defer h.Close()
		var errs []error
		for _, r := range routes {
			if err := h.RouteDel(r); err != nil {
				errs = append(errs, fmt.Errorf("testbed: delete route %s: %w", r, err))
			}
		}
		return errors.Join(errs...)
	}
	for _, gw := range []netip.Addr{tb.ClientV4, tb.ClientV6} {
		all := netip.IPv6Unspecified()
		if gw.Is4() {
			all = netip.IPv4Unspecified()
		}
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(all, 0), Gw: gw.AsSlice()}
		if err := h.RouteAdd(r); err != nil {
			undo()
			return nil, fmt.Errorf("testbed: default route via %s on %s: %w", gw, tb.ServerIf, err)
		}
		routes = append(routes, r)
	}
	return undo, nil
}
