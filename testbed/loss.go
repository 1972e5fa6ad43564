package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// Loss drops a share of the TCP frames on the client end of a testbed, in
// each direction on its own: what the client receives (an XDP program on the
// client's veth end, so a frame from the server is lost before the client's
// stack sees it) and what it sends (a tcx egress program on the same end,
// so a frame from the client never reaches the server, whether the kernel
// or an AF_XDP socket would have taken it there).
//
// This kernel has no netem; the programs are built from Go with cilium/ebpf,
// without C. Only TCP over IPv4 and IPv6 is dropped: ARP, ND and ICMP pass,
// so neighbour resolution never adds its own multi-second retries to a
// measurement. The receive side also drops every TCP frame addressed to
// anyone but the client, counted as foreign: a server's answers to a SYN
// flood's forged sources, which on a network leave the server and never
// reach the client, here arrive at the client's end and would cost the
// machine that runs both a sk_buff each. The native XDP program on the
// client end also makes the server's veth end segment before sending
// (veth does not hand GSO packets to a peer's XDP), so each dropped frame
// is one wire-sized segment, as on a real link, for the kernel stack and
// xhttpd alike. The send side is not so fine-grained: tcx egress runs
// before the client's stack segments, so a dropped send is a whole GSO
// packet (up to 64 KiB of an upload) and counts once. The client here
// sends requests and ACKs, one frame each.
type Loss struct {
	counts *ebpf.Map
	progs  []*ebpf.Program
	links  []link.Link
}

// LossOptions gives the share of TCP frames to drop, from 0 to 1, in each
// direction as seen from the client.
type LossOptions struct {
	Receive float64 // frames from the server, dropped as the client receives them
	Send    float64 // frames to the server, dropped as the client sends them
}

// Check reports a share outside 0 to 1.
func (o LossOptions) Check() error {
	for _, p := range []float64{o.Receive, o.Send} {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("testbed: loss share %v: want 0 to 1", p)
		}
	}
	return nil
}

// LossCounts is what the loss programs have seen and dropped: TCP frames
// only.
type LossCounts struct {
	ReceiveSeen, ReceiveDropped uint64
	SendSeen, SendDropped       uint64
	// ReceiveForeign are the TCP frames to another address than the
	// client's, all dropped; ReceiveSeen does not count them.
	ReceiveForeign uint64
}

// Counter slots in the counts map: receive seen, receive dropped, send
// seen, send dropped, received foreign.
const (
	slotRecvSeen = iota
	slotRecvDropped
	slotSendSeen
	slotSendDropped
	slotRecvForeign
	numSlots
)

// AddLoss attaches the loss programs to the client end. Close detaches them;
// they also go when the process that attached them exits (bpf_link) or the
// testbed is closed.
func (tb *Testbed) AddLoss(opts LossOptions) (*Loss, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	l, err := newLoss(opts, tb.ClientV4, tb.ClientV6)
	if err != nil {
		return nil, err
	}
	err = tb.InClient(func() error {
		ifi, err := net.InterfaceByName(tb.ClientIf)
		if err != nil {
			return err
		}
		xl, err := link.AttachXDP(link.XDPOptions{Program: l.progs[0], Interface: ifi.Index, Flags: link.XDPDriverMode})
		if err != nil {
			return fmt.Errorf("attach XDP: %w", err)
		}
		l.links = append(l.links, xl)
		tl, err := link.AttachTCX(link.TCXOptions{Program: l.progs[1], Interface: ifi.Index, Attach: ebpf.AttachTCXEgress})
		if err != nil {
			return fmt.Errorf("attach tcx egress: %w", err)
		}
		l.links = append(l.links, tl)
		return nil
	})
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("testbed: loss on %s: %w", tb.ClientIf, err)
	}
	return l, nil
}

// newLoss loads the two programs without attaching them. The receive side
// drops TCP frames to any address but own's (at most one per family); a
// family without an address in own is not checked.
func newLoss(opts LossOptions, own ...netip.Addr) (*Loss, error) {
	counts, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       "loss_counts",
		Type:       ebpf.Array,
		KeySize:    4,
		ValueSize:  8,
		MaxEntries: numSlots,
	})
	if err != nil {
		return nil, fmt.Errorf("testbed: loss counters: %w", err)
	}
	l := &Loss{counts: counts}
	specs := []*ebpf.ProgramSpec{
		{
			Name:         "loss_rx",
			Type:         ebpf.XDP,
			License:      "GPL",
			Instructions: lossProgram(xdpCtx, threshold(opts.Receive), counts.FD(), slotRecvSeen, own),
		},
		{
			Name:         "loss_tx",
			Type:         ebpf.SchedCLS,
			AttachType:   ebpf.AttachTCXEgress,
			License:      "GPL",
			Instructions: lossProgram(tcCtx, threshold(opts.Send), counts.FD(), slotSendSeen, nil),
		},
	}
	for _, s := range specs {
		p, err := ebpf.NewProgram(s)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("testbed: load %s: %w", s.Name, err)
		}
		l.progs = append(l.progs, p)
	}
	return l, nil
}

// threshold maps a share to the bound under which bpf_get_prandom_u32's
// value drops a frame: 0 never, 1 always (2^32 is above every u32).
func threshold(p float64) int64 { return int64(math.Round(p * (1 << 32))) }

// ctxLayout is where a program type keeps its packet pointers and what it
// returns to pass or drop.
type ctxLayout struct {
	data, dataEnd int16
	pass, drop    int32
}

var (
	// struct xdp_md: data, data_end; XDP_PASS, XDP_DROP.
	xdpCtx = ctxLayout{data: 0, dataEnd: 4, pass: 2, drop: 1}
	// struct __sk_buff: data at 76, data_end at 80; TCX_PASS (TC_ACT_OK),
	// TCX_DROP (TC_ACT_SHOT).
	tcCtx = ctxLayout{data: 76, dataEnd: 80, pass: 0, drop: 2}
)

// lossProgram returns a program that, for an Ethernet frame carrying TCP
// over IPv4 or IPv6, drops it if its destination is not the address of its
// family in own (when own has one) and counts it in slotRecvForeign;
// otherwise counts it in slot seen, drops it when a random u32 is below
// limit, and counts the drop in slot seen+1. Everything else passes.
func lossProgram(c ctxLayout, limit int64, countsFD int, seen int32, own []netip.Addr) asm.Instructions {
	const (
		ethType    = 12
		ipv4Proto  = 14 + 9
		ipv4Dst    = 14 + 16
		ipv6Next   = 14 + 6
		ipv6Dst    = 14 + 24
		needed     = ipv4Proto + 1
		tcp        = 6
		etherIPv4  = 0x0008 // 0x0800 as the little-endian u16 load sees it
		etherIPv6  = 0xdd86 // 0x86dd
		keyOnStack = -4
	)
	count := func(slot int32, label string) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.R10, keyOnStack, int64(slot), asm.Word).WithSymbol(label),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, keyOnStack),
			asm.LoadMapPtr(asm.R1, countsFD),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, label+"_done"),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R0, 0).WithSymbol(label + "_done"),
		}
	}
	var insns asm.Instructions
	insns = append(insns,
		asm.LoadMem(asm.R2, asm.R1, c.data, asm.Word),
		asm.LoadMem(asm.R3, asm.R1, c.dataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, needed),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ethType, asm.Half),
		asm.JEq.Imm(asm.R5, etherIPv6, "ipv6"),
		asm.JNE.Imm(asm.R5, etherIPv4, "pass"),
		asm.LoadMem(asm.R5, asm.R2, ipv4Proto, asm.Byte),
		asm.JNE.Imm(asm.R5, tcp, "pass"),
	)
	foreign := false // whether a jump to "foreign" was made
	// ours jumps to "foreign" unless the bytes at off are a's: one u32 for
	// IPv4, two u64s for IPv6, loaded little-endian as the packet holds
	// them.
	ours := func(off int16, a []byte) {
		foreign = true
		insns = append(insns,
			asm.Mov.Reg(asm.R4, asm.R2),
			asm.Add.Imm(asm.R4, int32(off)+int32(len(a))),
			asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		)
		if len(a) == 4 {
			insns = append(insns,
				asm.LoadMem(asm.R5, asm.R2, off, asm.Word),
				asm.LoadImm(asm.R1, int64(binary.LittleEndian.Uint32(a)), asm.DWord),
				asm.JNE.Reg(asm.R5, asm.R1, "foreign"),
			)
			return
		}
		for i := 0; i < len(a); i += 8 {
			insns = append(insns,
				asm.LoadMem(asm.R5, asm.R2, off+int16(i), asm.DWord),
				asm.LoadImm(asm.R1, int64(binary.LittleEndian.Uint64(a[i:])), asm.DWord),
				asm.JNE.Reg(asm.R5, asm.R1, "foreign"),
			)
		}
	}
	for _, a := range own {
		if a.Is4() {
			b := a.As4()
			ours(ipv4Dst, b[:])
		}
	}
	insns = append(insns,
		asm.Ja.Label("seen"),
		asm.LoadMem(asm.R5, asm.R2, ipv6Next, asm.Byte).WithSymbol("ipv6"),
		asm.JNE.Imm(asm.R5, tcp, "pass"),
	)
	for _, a := range own {
		if a.Is6() && !a.Is4In6() {
			b := a.As16()
			ours(ipv6Dst, b[:])
		}
	}
	insns = append(insns, count(seen, "seen")...)
	insns = append(insns,
		asm.FnGetPrandomU32.Call(),
		asm.LoadImm(asm.R1, limit, asm.DWord),
		asm.JGE.Reg(asm.R0, asm.R1, "pass"),
	)
	insns = append(insns, count(seen+1, "dropped")...)
	insns = append(insns,
		asm.Mov.Imm(asm.R0, c.drop),
		asm.Return(),
		asm.Mov.Imm(asm.R0, c.pass).WithSymbol("pass"),
		asm.Return(),
	)
	if foreign {
		insns = append(insns, count(slotRecvForeign, "foreign")...)
		insns = append(insns, asm.Mov.Imm(asm.R0, c.drop), asm.Return())
	}
	return insns
}

// Counts reads what the programs have seen and dropped so far.
func (l *Loss) Counts() (LossCounts, error) {
	var v [numSlots]uint64
	for i := range v {
		if err := l.counts.Lookup(uint32(i), &v[i]); err != nil {
			return LossCounts{}, fmt.Errorf("testbed: loss counters: %w", err)
		}
	}
	return LossCounts{
		ReceiveSeen: v[slotRecvSeen], ReceiveDropped: v[slotRecvDropped],
		SendSeen: v[slotSendSeen], SendDropped: v[slotSendDropped],
		ReceiveForeign: v[slotRecvForeign],
	}, nil
}

// Close detaches and unloads the programs.
func (l *Loss) Close() error {
	var errs []error
	for _, k := range l.links {
		errs = append(errs, k.Close())
	}
	for _, p := range l.progs {
		errs = append(errs, p.Close())
	}
	errs = append(errs, l.counts.Close())
	l.links, l.progs = nil, nil
	return errors.Join(errs...)
}
