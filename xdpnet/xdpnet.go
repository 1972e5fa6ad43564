// Package xdpnet serves TCP over AF_XDP: it opens one AF_XDP socket per
// NIC queue, runs a loop per queue that moves frames between the socket's
// rings and a gVisor netstack (package stack), attaches the XDP program that
// steers the served ports on the served addresses to those sockets (package
// xdp), and hands out a net.Listener per port and address family. Any Go
// server runs on the listeners: httpd does, and so does net/http's
// http.Serve (example_test.go, examples/fileserver).
//
// The caller provides an interface with addresses (IPv4, or global IPv6)
// and root, or the capabilities CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and
// CAP_IPC_LOCK; Open says in one line which are missing. Everything else on
// the interface (ARP, ND, ICMP, other ports, other addresses) stays the
// kernel's, and the interface keeps its addresses. Close, or the process's
// end by any means, detaches the program; the kernel then answers the ports
// itself. With Options.NAPISuspend it also sets the kernel's NAPI knobs of
// the queues (napi.go), which Close puts back, and after a SIGKILL the next
// Open on the interface.
package xdpnet

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/stack"
	"github.com/xhttpd/xhttpd/syncookie"
	"github.com/xhttpd/xhttpd/xdp"
)

// Options says what to serve and how. The zero value of each field but
// Ports is a working default.
type Options struct {
	Ports []uint16 // TCP ports to serve (required)
	// Addrs are the addresses to serve; default: every IPv4 and global
	// IPv6 address of the interface (ServedAddrs).
	Addrs   []netip.Prefix
	Mode    irq.Mode     // how each queue's loop waits; default interrupt (the zero Mode)
	Queues  int          // serve rx queues 0..Queues-1; 0: all of them
	CPUs    []int        // pin queue i's loop to CPUs[i%len]; none: no pinning
	Bind    nic.BindMode // zero-copy or copy; default: the kernel's choice
	TxKicks nic.TxKicks  // who kicks the tx rings; default: a thread per queue in copy mode
	XDPMode xdp.Mode     // native or generic; default: native, else generic
	// RxChecksum is trust, verify or auto (the zero value): auto trusts drivers
	// whose frames never crossed a wire unchecked (nic.TrustRxChecksum).
	RxChecksum nic.RxChecksum
	Budget     int           // most frames per round; default irq.DefaultBudget
	MaxSpin    time.Duration // hybrid's longest spin; default irq.DefaultMaxSpin
	Frames     int           // UMEM frames per queue; default nic.DefaultFrames
	// SYNRate is the served SYNs per second per CPU the netstack answers
	// (with every TCP option); the XDP program answers the rest of a flood
	// with SYN cookies. 0: DefaultSYNRate; SYNCookiesOff: no cookies, every
	// SYN reaches the netstack; SYNCookiesAlways: cookies for every SYN.
	SYNRate int
	// StrayRate is the served segments per second per CPU of flows the
	// XDP program's flow table does not hold (strays: an ACK flood's, or a
	// connection's the table evicted) that go on to the netstack; the
	// program drops the rest (xdp.Strays). 0: DefaultStrayRate;
	// StraysOff: no table, every segment reaches the netstack;
	// StraysDropped: none does.
	StrayRate int
	// Flows is the size of the XDP program's flow table, which should
	// hold every connection at once and the handshakes under way; 0:
	// xdp.DefaultFlows (xdp.Strays.Flows).
	Flows int
	// NoGSO cuts TCP segments larger than a frame into AF_XDP frames in
	// the link endpoint instead of handing them whole to the kernel's GSO
	// (nic.GSOTx).
	NoGSO bool
	// MaxTimeWait bounds the connections in TIME-WAIT, as Linux's
	// net.ipv4.tcp_max_tw_buckets does; 0: stack.DefaultMaxTimeWait,
	// negative: no bound.
	MaxTimeWait int
	// NAPISuspend, in busy and hybrid mode, is the irq-suspend-timeout
	// (Linux 6.13+) set on the NAPI instance of each queue, with
	// NAPIDeferHardIRQs and NAPIGROFlushTimeout, while the path is open:
	// the kernel then keeps the queue's IRQ off while the loop's busy polls
	// keep finding work. 0: off; ignored, with a warning, in interrupt mode.
	// What a kernel or driver lacks is logged and reported (Path.NAPI),
	// never fatal. AF_XDP has nothing like epoll's end of a suspension when
	// a poll finds nothing (napi_resume_irqs): once a hybrid loop goes to
	// sleep, the IRQ stays off until the timeout runs out, so the first
	// frame after an idle spell may wait that long (from the kernel's code;
	// not measured here). Keep it short in hybrid mode.
	NAPISuspend time.Duration
	// NAPIStateDir is where the NAPI settings changed are recorded until
	// restored; Open first restores what a killed process left there,
	// NAPISuspend or not. Default nic.DefaultNAPIStateDir.
	NAPIStateDir string
}

// The NAPI settings that go with Options.NAPISuspend. napi.rst ("IRQ
// suspension") asks for defer-hard-irqs and gro-flush-timeout "set to low
// values" beside irq-suspend-timeout, "strongly recommended": without them
// the kernel's preferred busy polling never takes over from the IRQ, and
// the suspension "might not have any discernible effect". They also say
// how the IRQ comes back once the loop stops polling and the suspension
// times out: gro-flush-timeout's timer polls the queue instead, until
// defer-hard-irqs polls in a row found nothing. The values are those of
// the kernel's own test of the feature
// (tools/testing/selftests/net/busy_poll_test.sh, with 20 ms of
// suspension); napi.rst wants irq-suspend-timeout "much larger" than
// gro-flush-timeout, and CheckNAPISuspend refuses one that is not larger.
const (
	NAPIDeferHardIRQs   = 100
	NAPIGROFlushTimeout = 50 * time.Microsecond
)

// CheckNAPISuspend says whether d can be Options.NAPISuspend.
func CheckNAPISuspend(d time.Duration) error {
	if d < 0 || (d > 0 && d <= NAPIGROFlushTimeout) {
		return fmt.Errorf("%v: want 0 (off) or more than gro-flush-timeout (%v), which it overrides while the loops poll", d, NAPIGROFlushTimeout)
	}
	return nil
}

// DefaultSYNRate is Options.SYNRate's default: served SYNs per second per
// CPU before the XDP program answers with SYN cookies.
const DefaultSYNRate = 10000

// Options.SYNRate's two settings other than a rate.
const (
	SYNCookiesOff    = -1
	SYNCookiesAlways = -2
)

// DefaultStrayRate is Options.StrayRate's default: what the netstack's own
// check hands its listeners (package stack), and a few milliseconds of a
// core.
const DefaultStrayRate = 1000

// Options.StrayRate's two settings other than a rate.
const (
	StraysOff     = -1
	StraysDropped = -2
)

// Path is the AF_XDP path of one interface: a socket and a loop per queue,
// the netstack, the steering program, and the listeners.
type Path struct {
	socks     []*nic.Socket
	loops     []*irq.Loop
	stack     *stack.Stack
	steer     *xdp.Steering
	wakeCost  time.Duration // as measured at start
	busyPoll  []bool        // per queue: the kernel took the busy-poll socket options
	napi      []nic.NAPIResult
	undo      []func()
	failed    chan error // a queue or the interface is gone for good
	listeners []net.Listener
}

// fail reports a fault that leaves part of the data path dead: a loop that
// stopped, an interface that went away. The flows of a dead queue would go
// into a socket that nobody reads, a black hole until a restart; the caller
// learns of it from Failed and should close the path (xhttpd exits
// non-zero, so that a supervisor restarts it).
func (p *Path) fail(err error) {
	slog.Error("data path failed; exiting", "err", err)
	select {
	case p.failed <- err:
	default: // one is enough
	}
}

// Failed delivers the first fault that left part of the path dead: a
// queue's loop that stopped, the interface gone. A nil Path's is nil, a
// channel that never delivers.
func (p *Path) Failed() <-chan error {
	if p == nil {
		return nil
	}
	return p.failed
}

// Listeners are the path's listeners: one per port and address family
// served, in the order of Options.Ports, IPv4 first.
func (p *Path) Listeners() []net.Listener { return p.listeners }

// watchLink fails the data path when the interface is deleted (a driver
// reset, a NIC removed, a container's veth gone): its queues then take no
// frame again, and the loops would sleep on them for ever.
func (p *Path) watchLink(ifc *net.Interface) error {
	updates := make(chan netlink.LinkUpdate, 16)
	done := make(chan struct{})
	var closing atomic.Bool // the subscription reports its own close as an error
	err := netlink.LinkSubscribeWithOptions(updates, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			if !closing.Load() {
				slog.Warn("link watch", "iface", ifc.Name, "err", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("%s: watch for removal: %w", ifc.Name, err)
	}
	p.undo = append(p.undo, func() { closing.Store(true); close(done) })
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

// Open brings up the AF_XDP path on ifc and listens on every port: the
// sockets are bound, the netstack listens and the loops run before the
// program goes on, last; until then the kernel keeps the ports. On error
// it undoes what it did.
func Open(ifc *net.Interface, o Options) (_ *Path, err error) {
	if len(o.Ports) == 0 {
		return nil, fmt.Errorf("xdpnet: no port to serve")
	}
	if err := checkXDPCaps(); err != nil {
		return nil, err
	}
	if err := CheckNAPISuspend(o.NAPISuspend); err != nil {
		return nil, fmt.Errorf("xdpnet: NAPI suspension %w", err)
	}
	addrs := o.Addrs
	if len(addrs) == 0 {
		if addrs, err = ServedAddrs(ifc); err != nil {
			return nil, err
		}
	}
	stack.LogToSlog()
	p := &Path{failed: make(chan error, 1)}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	p.restoreNAPI(ifc, o)

	all, err := nic.RxQueues(ifc.Name)
	if err != nil {
		return nil, err
	}
	nq, err := servedOf(ifc.Name, all, o.Queues)
	if err != nil {
		return nil, err
	}
	if nq < all {
		if err := checkUnservedQueues(ifc.Name, nq, all); err != nil {
			return nil, err
		}
	}
	trust, err := trustChecksum(ifc.Name, o.RxChecksum)
	if err != nil {
		return nil, err
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
		s, err := nic.Open(nic.Config{Ifindex: ifc.Index, Queue: q, Bind: o.Bind, Frames: o.Frames, TxKicks: o.TxKicks})
		if err != nil {
			return nil, err
		}
		p.undo = append(p.undo, func() { s.Close() })
		p.socks = append(p.socks, s)
		busy := false
		if o.Mode != irq.Interrupt {
			if err := s.SetBusyPoll(20, cmp.Or(o.Budget, irq.DefaultBudget)); err != nil {
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
	if o.SYNRate != SYNCookiesOff {
		key, err := syncookie.NewKey()
		if err != nil {
			return nil, err
		}
		rate := cmp.Or(o.SYNRate, DefaultSYNRate)
		if rate == SYNCookiesAlways {
			rate = 0
		}
		if rate < 0 {
			return nil, fmt.Errorf("xdpnet: SYN rate %d", o.SYNRate)
		}
		cookies = synCookies(key, rate, mtu)
	}
	strays, err := strayBudget(o.StrayRate)
	if err != nil {
		return nil, err
	}
	if strays != nil {
		strays.Flows = o.Flows
	}

	txq := make([]stack.TxQueue, len(p.socks))
	for i, s := range p.socks {
		txq[i] = s
	}
	var gso []stack.GSOSender
	if !o.NoGSO {
		for _, s := range p.socks {
			g, err := nic.OpenGSOTx(ifc.Index)
			if err != nil {
				return nil, err
			}
			s.AttachGSO(g) // the socket closes g
			gso = append(gso, s)
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
		MaxTimeWait:     o.MaxTimeWait,
	})
	if err != nil {
		return nil, err
	}
	p.undo = append(p.undo, p.stack.Close)

	wake, err := irq.MeasureWakeup(100)
	if err != nil {
		return nil, err
	}
	p.wakeCost = wake
	for i, s := range p.socks {
		cpu := -1
		if len(o.CPUs) > 0 {
			cpu = o.CPUs[i%len(o.CPUs)]
		}
		l, err := irq.New(s, irq.Config{Mode: o.Mode, Budget: o.Budget, WakeCost: wake, MaxSpin: o.MaxSpin, Pin: cpu >= 0, CPU: cpu}, p.stack.DeliverBatch)
		if err != nil {
			return nil, err
		}
		go func() {
			if err := l.Run(); err != nil {
				p.fail(fmt.Errorf("queue %d: loop stopped: %w", s.Queue(), err))
			}
		}()
		p.undo = append(p.undo, l.Stop)
		p.loops = append(p.loops, l)
	}

	for _, port := range o.Ports {
		for _, network := range networks(addrs) {
			l, err := p.stack.Listen(network, port)
			if err != nil {
				return nil, err
			}
			p.listeners = append(p.listeners, l)
		}
	}

	fds := make([]int, len(p.socks))
	for i, s := range p.socks {
		fds[i] = s.FD()
	}
	p.steer, err = xdp.Attach(ifc.Index, xdp.Config{Ports: o.Ports, Addrs: prefixAddrs(addrs), Mode: o.XDPMode, Sockets: fds, SYNCookies: cookies, Strays: strays})
	if err != nil {
		return nil, err
	}
	p.undo = append(p.undo, func() {
		p.logCounters()
		p.steer.Close()
	})
	if strays != nil {
		p.undo = append(p.undo, keepFlows(p.steer, p.stack))
	}
	if err := p.watchLink(ifc); err != nil {
		return nil, err
	}
	// Last: attaching XDP may make the NAPI instances anew (veth makes
	// them only then), and Close restores before the program leaves.
	if err := p.suspendIRQs(ifc, o); err != nil {
		return nil, err
	}
	slog.Info("AF_XDP up", "iface", ifc.Name, "queues", nq, "xdp_mode", p.steer.Mode(),
		"trust_rx_checksum", trust, "mode", o.Mode, "wake_cost", wake)
	// What each queue got: the bind (zero-copy or copy; need_wakeup is
	// always asked for and the kernel has it since 5.4) and busy polling.
	for i, s := range p.socks {
		slog.Info("queue", "queue", s.Queue(), "zero_copy", s.ZeroCopy(), "tx_thread", s.TxThread(), "tx_thread_wake", s.TxThreadWake(), "tx_kick_cost", s.TxKickCost(), "need_wakeup", true, "busy_poll", p.busyPoll[i])
	}
	return p, nil
}

// ServedQueues is how many queues Open serves on the interface named for
// Options.Queues: that many, or all its rx queues for 0.
func ServedQueues(ifname string, queues int) (int, error) {
	all, err := nic.RxQueues(ifname)
	if err != nil {
		return 0, err
	}
	return servedOf(ifname, all, queues)
}

// servedOf is ServedQueues for an interface with all rx queues.
func servedOf(ifname string, all, queues int) (int, error) {
	if queues > all {
		return 0, fmt.Errorf("-queues %d: %s has %d rx queues", queues, ifname, all)
	}
	if queues > 0 {
		return queues, nil
	}
	return all, nil
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
		// What the netstack's listeners offer.
		WndScale: uint8(stack.CookieWndScale()),
		SACK:     stack.SACK,
	}
}

// strayBudget is the XDP program's stray setting for Options.StrayRate.
func strayBudget(rate int) (*xdp.Strays, error) {
	switch rate = cmp.Or(rate, DefaultStrayRate); {
	case rate == StraysOff:
		return nil, nil
	case rate == StraysDropped:
		return &xdp.Strays{Budget: 0, Window: synWindow}, nil
	case rate > 0:
		return &xdp.Strays{Budget: max(1, uint32(int64(rate)*int64(synWindow)/int64(time.Second))), Window: synWindow}, nil
	}
	return nil, fmt.Errorf("xdpnet: stray rate %d", rate)
}

func cookieKey(c *xdp.SYNCookies) *syncookie.Key {
	if c == nil {
		return nil
	}
	return &c.Key
}

// Close undoes Open in reverse: the program leaves first, so the kernel
// takes the ports back at once, then the loops stop, then the netstack
// (and with it the listeners) and the sockets go.
func (p *Path) Close() {
	for i := len(p.undo) - 1; i >= 0; i-- {
		p.undo[i]()
	}
	p.undo = nil
}

// Queue is one queue of the path: its socket, its loop, and whether the
// kernel took the busy-poll socket options for it.
type Queue struct {
	Socket   *nic.Socket
	Loop     *irq.Loop
	BusyPoll bool
}

// Queues are the path's queues, by queue number.
func (p *Path) Queues() []Queue {
	out := make([]Queue, len(p.socks))
	for i := range p.socks {
		out[i] = Queue{Socket: p.socks[i], Loop: p.loops[i], BusyPoll: p.busyPoll[i]}
	}
	return out
}

// Steering is the path's XDP program: its mode and verdict counters.
func (p *Path) Steering() *xdp.Steering { return p.steer }

// Stack is the path's netstack: its link and TCP counters.
func (p *Path) Stack() *stack.Stack { return p.stack }

// WakeCost is the cost of a loop's wake-up measured at Open, which
// hybrid loops spin at least.
func (p *Path) WakeCost() time.Duration { return p.wakeCost }

// logCounters reports, at shutdown, where the frames went.
func (p *Path) logCounters() {
	if c, err := p.steer.Counters(); err == nil {
		slog.Info("xdp counters", "steered", c.Steered, "redirected", c.Redirected, "no_socket", c.NoSocket, "passed", c.Passed, "syn_cookies", c.SYNCookies, "flood_rsts", c.FloodRSTs, "strays", c.Strays)
	}
	c := p.stack.Counters()
	slog.Info("link counters", "rx_malformed", c.RxMalformed, "rx_stray", c.RxStray, "rx_acks_coalesced", c.RxACKsCoalesced, "tx_gso", c.TxGSO, "tx_gso_errors", c.TxGSOErrors,
		"tx_no_neighbour", c.TxNoNeighbour, "tx_not_tcp", c.TxNoTCP)
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

func trustChecksum(ifname string, flag nic.RxChecksum) (bool, error) {
	switch flag {
	case nic.RxChecksumTrust:
		return true, nil
	case nic.RxChecksumVerify:
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

// ServedAddrs are the interface's addresses a server answers on by
// default: every IPv4 and every global IPv6 address. Link-local IPv6 is
// left to the kernel.
func ServedAddrs(ifc *net.Interface) ([]netip.Prefix, error) {
	ias, err := ifc.Addrs()
	if err != nil {
		return nil, fmt.Errorf("interface %s: addresses: %w", ifc.Name, err)
	}
	var out []netip.Prefix
	for _, ia := range ias {
		ipn, ok := ia.(*net.IPNet)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		if a.IsLinkLocalUnicast() || a.IsLoopback() || a.IsMulticast() {
			continue
		}
		ones, _ := ipn.Mask.Size()
		out = append(out, netip.PrefixFrom(a, ones))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("interface %s has no IPv4 or global IPv6 address to serve on", ifc.Name)
	}
	return out, nil
}
