package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/httpd"
	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/stack"
	"github.com/xhttpd/xhttpd/syncookie"
	"github.com/xhttpd/xhttpd/xdp"
)

// dataPath is the AF_XDP path of one interface: a socket and a loop per
// queue, the netstack, and the steering program.
type dataPath struct {
	socks    []*nic.Socket
	loops    []*irq.Loop
	stack    *stack.Stack
	steer    *xdp.Steering
	wakeCost float64 // seconds, as measured at start
	busyPoll []bool  // per queue: the kernel took the busy-poll socket options
	undo     []func()
	failed   chan error // a queue or the interface is gone for good
}

// fail reports a fault that leaves part of the data path dead: a loop that
// stopped, an interface that went away. The flows of a dead queue would go
// into a socket that nobody reads, a black hole until a restart; the
// process exits instead (run), non-zero, so that a supervisor restarts it,
// and the bpf_link goes with it, so the kernel answers meanwhile.
func (p *dataPath) fail(err error) {
	slog.Error("data path failed; exiting", "err", err)
	select {
	case p.failed <- err:
	default: // one is enough
	}
}

// failures is nil on the kernel stack, which has no data path to fail.
func (p *dataPath) failures() <-chan error {
	if p == nil {
		return nil
	}
	return p.failed
}

// watchLink fails the data path when the interface is deleted (a driver
// reset, a NIC removed, a container's veth gone): its queues then take no
// frame again, and the loops would sleep on them for ever.
func (p *dataPath) watchLink(ifc *net.Interface) error {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) { slog.Warn("link watch", "iface", ifc.Name, "err", err) },
	})
	if err != nil {
		return fmt.Errorf("%s: watch for removal: %w", ifc.Name, err)
	}
	p.undo = append(p.undo, func() { close(done) })
	go func() {
		for u := range updates {
			if u.Attrs().Index == ifc.Index && u.Header.Type == unix.RTM_DELLINK {
				p.fail(fmt.Errorf("interface %s went away", ifc.Name))
				return
			}
		}
	}()
	return nil
}

// startXDP brings up the AF_XDP path and listens on every port. The program
// goes on last, when every socket can take frames and the netstack listens;
// until then the kernel keeps the ports.
func startXDP(ifc *net.Interface, addrs []netip.Prefix, o options) (_ *dataPath, _ []net.Listener, err error) {
	if err := checkXDPCaps(); err != nil {
		return nil, nil, err
	}
	p := &dataPath{failed: make(chan error, 1)}
	var ls []net.Listener
	defer func() {
		if err != nil {
			p.close()
		}
	}()

	nq, err := nic.RxQueues(ifc.Name)
	if err != nil {
		return nil, nil, err
	}
	if o.queues > nq {
		return nil, nil, fmt.Errorf("-queues %d: %s has %d rx queues", o.queues, ifc.Name, nq)
	}
	if o.queues > 0 && o.queues < nq {
		if err := checkUnservedQueues(ifc.Name, o.queues, nq); err != nil {
			return nil, nil, err
		}
		nq = o.queues
	}
	trust, err := trustChecksum(ifc.Name, o.rxChecksum)
	if err != nil {
		return nil, nil, err
	}
	// An MTU larger than a frame holds (9000 in data centres) is served
	// with the netstack's MTU, and so the MSS it announces, clamped to what
	// a frame holds: TCP peers send no segment larger than that MSS. The
	// rest of the interface's traffic is the kernel's, at its own MTU.
	mtu := min(ifc.MTU, nic.MaxMTU(nic.DefaultFrameSize))
	if mtu < ifc.MTU {
		slog.Info("MTU larger than an AF_XDP frame: the netstack announces the MSS of a smaller one", "iface", ifc.Name, "mtu", ifc.MTU, "netstack_mtu", mtu)
	}

	for q := 0; q < nq; q++ {
		s, err := nic.Open(nic.Config{Ifindex: ifc.Index, Queue: q, Bind: o.bind, Frames: o.frames})
		if err != nil {
			return nil, nil, err
		}
		p.undo = append(p.undo, func() { s.Close() })
		p.socks = append(p.socks, s)
		busy := false
		if o.mode != irq.Interrupt {
			if err := s.SetBusyPoll(20, o.budget); err != nil {
				slog.Info("no driver busy polling", "queue", q, "err", err)
			} else {
				busy = true
			}
		}
		p.busyPoll = append(p.busyPoll, busy)
	}

	// One SYN cookie key for the XDP program, which answers floods, and
	// the netstack's listeners, which accept the handshakes it completes.
	var cookies *xdp.SYNCookies
	if o.synRate >= 0 {
		key, err := syncookie.NewKey()
		if err != nil {
			return nil, nil, err
		}
		cookies = synCookies(key, o.synRate, mtu)
	}

	txq := make([]stack.TxQueue, len(p.socks))
	for i, s := range p.socks {
		txq[i] = s
	}
	var gso []stack.GSOSender
	if o.gso {
		for range p.socks {
			g, err := nic.OpenGSOTx(ifc.Index)
			if err != nil {
				return nil, nil, err
			}
			p.undo = append(p.undo, func() { g.Close() })
			gso = append(gso, g)
		}
	}
	p.stack, err = stack.New(stack.Config{
		GSO:             gso,
		LinkAddr:        ifc.HardwareAddr,
		MTU:             uint32(mtu),
		Addrs:           addrs,
		TrustRXChecksum: trust,
		Queues:          txq,
		SYNCookies:      cookieKey(cookies),
	})
	if err != nil {
		return nil, nil, err
	}
	p.undo = append(p.undo, p.stack.Close)

	wake, err := irq.MeasureWakeup(100)
	if err != nil {
		return nil, nil, err
	}
	p.wakeCost = wake.Seconds()
	for i, s := range p.socks {
		cpu := -1
		if len(o.cpus) > 0 {
			cpu = o.cpus[i%len(o.cpus)]
		}
		l, err := irq.New(s, irq.Config{Mode: o.mode, Budget: o.budget, WakeCost: wake, MaxSpin: o.maxSpin, CPU: cpu}, p.stack.Deliver)
		if err != nil {
			return nil, nil, err
		}
		go func() {
			if err := l.Run(); err != nil {
				p.fail(fmt.Errorf("queue %d: loop stopped: %w", s.Queue(), err))
			}
		}()
		p.undo = append(p.undo, l.Stop)
		p.loops = append(p.loops, l)
	}

	for _, port := range o.ports {
		for _, network := range networks(addrs) {
			l, err := p.stack.Listen(network, port)
			if err != nil {
				return nil, nil, err
			}
			ls = append(ls, l)
		}
	}

	fds := make([]int, len(p.socks))
	for i, s := range p.socks {
		fds[i] = s.FD()
	}
	p.steer, err = xdp.Attach(ifc.Index, xdp.Config{Ports: o.ports, Addrs: prefixAddrs(addrs), Mode: o.xdpMode, Sockets: fds, SYNCookies: cookies})
	if err != nil {
		return nil, nil, err
	}
	p.undo = append(p.undo, func() {
		p.logCounters()
		p.steer.Close()
	})
	if err := p.watchLink(ifc); err != nil {
		return nil, nil, err
	}
	slog.Info("AF_XDP up", "iface", ifc.Name, "queues", nq, "xdp_mode", p.steer.Mode(),
		"trust_rx_checksum", trust, "mode", o.mode, "wake_cost", wake)
	// What each queue got: the bind (zero-copy or copy; need_wakeup is
	// always asked for and the kernel has it since 5.4) and busy polling.
	for i, s := range p.socks {
		slog.Info("queue", "queue", s.Queue(), "zero_copy", s.ZeroCopy(), "need_wakeup", true, "busy_poll", p.busyPoll[i])
	}
	return p, ls, nil
}

// checkUnservedQueues refuses to serve fewer queues than the interface has
// unless its RSS table already sends every flow to a served queue: the
// flows of an unserved queue would reach the kernel, which resets them (15
// of 20 new connections, with -queues 1 on four queues).
func checkUnservedQueues(ifname string, served, rxQueues int) error {
	table, err := nic.RSSTable(ifname)
	if err == nil && len(table) > 0 && slices.Max(table) < uint32(served) {
		return nil
	}
	why := "its RSS table sends flows to them"
	if err != nil || len(table) == 0 {
		why = "it has no RSS table to keep flows off them"
	}
	return fmt.Errorf("-queues %d: %s has %d rx queues and %s, so the kernel would reset the connections hashed there; "+
		"serve them all (-queues 0), or first run `ethtool -L %s combined %d` or `ethtool -X %s equal %d`",
		served, ifname, rxQueues, why, ifname, served, ifname, served)
}

// synWindow is the XDP program's budget window: short enough that a flood
// is met within it, long enough to hold a burst of a few hundred SYNs.
const synWindow = 100 * time.Millisecond

// synCookies is the XDP program's SYN cookie setting for a budget of rate
// SYNs per second per CPU. The SYN-ACK announces the MSS the netstack would
// (the MTU less the IP and TCP headers) and an unscaled 64 KiB window.
func synCookies(key syncookie.Key, rate int, mtu int) *xdp.SYNCookies {
	budget := uint32(int64(rate) * int64(synWindow) / int64(time.Second))
	if rate > 0 && budget == 0 {
		budget = 1 // a rate under one SYN per window still means some, not none
	}
	return &xdp.SYNCookies{
		Key:    key,
		Budget: budget,
		Window: synWindow,
		MSS4:   uint16(mtu - 20 - 20), // IPv4 and TCP headers without options
		MSS6:   uint16(mtu - 40 - 20),
		RcvWnd: 65535,
	}
}

func cookieKey(c *xdp.SYNCookies) *syncookie.Key {
	if c == nil {
		return nil
	}
	return &c.Key
}

// close undoes startXDP in reverse: the program leaves first, so the
// kernel takes the ports back at once, then the loops stop, then the
// netstack and the sockets go.
func (p *dataPath) close() {
	for i := len(p.undo) - 1; i >= 0; i-- {
		p.undo[i]()
	}
	p.undo = nil
}

// queueStatus is what /server-status shows of each queue; nil on the
// kernel stack.
func (p *dataPath) queueStatus() []httpd.QueueStatus {
	if p == nil {
		return nil
	}
	out := make([]httpd.QueueStatus, len(p.loops))
	for i, l := range p.loops {
		ls := l.Stats()
		out[i] = httpd.QueueStatus{Queue: ls.Queue, Mode: ls.Mode.String(), Polling: ls.Polling, RxFrames: ls.RoundSum, Wakeups: ls.Wakeups}
		if ns, err := p.socks[i].Stats(); err == nil {
			out[i].TxFrames = ns.TxFrames
		}
	}
	return out
}

// logCounters reports, at shutdown, where the frames went.
func (p *dataPath) logCounters() {
	if c, err := p.steer.Counters(); err == nil {
		slog.Info("xdp counters", "steered", c.Steered, "redirected", c.Redirected, "no_socket", c.NoSocket, "passed", c.Passed, "syn_cookies", c.SYNCookies, "flood_rsts", c.FloodRSTs)
	}
	c := p.stack.Counters()
	slog.Info("link counters", "rx", c.RxFrames, "rx_malformed", c.RxMalformed, "tx", c.TxFrames,
		"tx_gso", c.TxGSO, "tx_gso_errors", c.TxGSOErrors,
		"tx_no_neighbour", c.TxNoNeighbour, "tx_not_tcp", c.TxNoTCP, "tx_ring_full", c.TxRingFull)
	for i, s := range p.socks {
		st, err := s.Stats()
		if err != nil {
			continue
		}
		ls := p.loops[i].Stats()
		slog.Info("queue counters", "queue", s.Queue(), "mode", ls.Mode, "switches", ls.Switches, "wakeups", ls.Wakeups,
			"rx_frames", ls.RoundSum, "tx_frames", st.TxFrames, "rx_dropped", st.Rx_dropped, "rx_ring_full", st.Rx_ring_full,
			"fill_ring_empty", st.Rx_fill_ring_empty_descs, "tx_drops", st.TxDrops)
	}
}

func trustChecksum(ifname, flag string) (bool, error) {
	switch flag {
	case "trust":
		return true, nil
	case "verify":
		return false, nil
	}
	drv, err := nic.Driver(ifname)
	if err != nil {
		return false, err
	}
	return nic.TrustRxChecksum(drv), nil
}

func networks(addrs []netip.Prefix) []string {
	var v4, v6 bool
	for _, a := range addrs {
		v4 = v4 || a.Addr().Is4()
		v6 = v6 || a.Addr().Is6()
	}
	var out []string
	if v4 {
		out = append(out, "tcp4")
	}
	if v6 {
		out = append(out, "tcp6")
	}
	return out
}

func prefixAddrs(ps []netip.Prefix) []netip.Addr {
	out := make([]netip.Addr, len(ps))
	for i, p := range ps {
		out[i] = p.Addr()
	}
	return out
}
