package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/stack"
	"github.com/xhttpd/xhttpd/xdp"
)

// listenXDP brings up the AF_XDP path: a socket per queue, the steering
// program, the netstack and a loop per queue, and listens on every port.
// The returned cleanup undoes it in the order that keeps traffic flowing:
// the program goes first, so the kernel takes the ports back at once.
func listenXDP(ifc *net.Interface, addrs []netip.Prefix, o options) (ls []net.Listener, cleanup func(), err error) {
	if os.Geteuid() != 0 {
		return nil, nil, errors.New("-stack xdp needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW)")
	}
	var undo []func()
	undoAll := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	defer func() {
		if err != nil {
			undoAll()
		}
	}()

	nq, err := nic.RxQueues(ifc.Name)
	if err != nil {
		return nil, nil, err
	}
	if o.queues > nq {
		return nil, nil, fmt.Errorf("-queues %d: %s has %d rx queues", o.queues, ifc.Name, nq)
	}
	if o.queues > 0 {
		nq = o.queues
	}
	trust, err := trustChecksum(ifc.Name, o.rxChecksum)
	if err != nil {
		return nil, nil, err
	}

	if mtu, max := ifc.MTU, 2048-14; mtu > max {
		return nil, nil, fmt.Errorf("%s: MTU %d is more than an AF_XDP frame holds (%d)", ifc.Name, mtu, max)
	}

	socks := make([]*nic.Socket, 0, nq)
	for q := 0; q < nq; q++ {
		s, err := nic.Open(nic.Config{Ifindex: ifc.Index, Queue: q, Bind: o.bind})
		if err != nil {
			return nil, nil, err
		}
		undo = append(undo, func() { s.Close() })
		socks = append(socks, s)
	}

	txq := make([]stack.TxQueue, len(socks))
	for i, s := range socks {
		txq[i] = s
	}
	st, err := stack.New(stack.Config{
		LinkAddr:        ifc.HardwareAddr,
		MTU:             uint32(ifc.MTU),
		Addrs:           addrs,
		TrustRXChecksum: trust,
		Queues:          txq,
	})
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, st.Close)

	for _, s := range socks {
		l, err := irq.New(s, o.mode, o.budget, st.Deliver)
		if err != nil {
			return nil, nil, err
		}
		go func() {
			if err := l.Run(); err != nil {
				slog.Error("queue loop stopped", "queue", s.Queue(), "err", err)
			}
		}()
		undo = append(undo, l.Stop)
	}

	for _, p := range o.ports {
		for _, network := range networks(addrs) {
			l, err := st.Listen(network, p)
			if err != nil {
				return nil, nil, err
			}
			ls = append(ls, l)
		}
	}

	// The program goes on last, when every socket can take frames and the
	// netstack listens: until then the kernel keeps the ports.
	fds := make([]int, len(socks))
	for i, s := range socks {
		fds[i] = s.FD()
	}
	steer, err := xdp.Attach(ifc.Index, xdp.Config{Ports: o.ports, Addrs: prefixAddrs(addrs), Mode: o.xdpMode, Sockets: fds})
	if err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() {
		logCounters(steer, st, socks)
		steer.Close()
	})
	zc := socks[0].ZeroCopy()
	slog.Info("AF_XDP up", "iface", ifc.Name, "queues", nq, "xdp_mode", steer.Mode(), "zero_copy", zc, "trust_rx_checksum", trust, "mode", o.mode)
	return ls, undoAll, nil
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

// logCounters reports, at shutdown, where the frames went.
func logCounters(steer *xdp.Steering, st *stack.Stack, socks []*nic.Socket) {
	if c, err := steer.Counters(); err == nil {
		slog.Info("xdp counters", "steered", c.Steered, "redirected", c.Redirected, "no_socket", c.NoSocket, "passed", c.Passed)
	}
	c := st.Counters()
	slog.Info("link counters", "rx", c.RxFrames, "rx_malformed", c.RxMalformed, "tx", c.TxFrames,
		"tx_no_neighbour", c.TxNoNeighbour, "tx_not_tcp", c.TxNoTCP, "tx_ring_full", c.TxRingFull)
	for _, s := range socks {
		if st, err := s.Stats(); err == nil {
			slog.Info("socket counters", "queue", s.Queue(), "rx_dropped", st.Rx_dropped, "rx_ring_full", st.Rx_ring_full,
				"fill_ring_empty", st.Rx_fill_ring_empty_descs, "tx_drops", st.TxDrops)
		}
	}
}
