package xdpnet

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	"github.com/xhttpd/xhttpd/irq"
	"github.com/xhttpd/xhttpd/nic"
)

// NAPI is what Open did to each served queue's NAPI knobs with
// Options.NAPISuspend, by queue and knob: set, or why not. Nil without it.
func (p *Path) NAPI() []nic.NAPIResult { return p.napi }

// netdev opens the netdev family; a kernel without it, or a failure to
// ask (the error), is the zero Netdev, which reports every knob
// unsupported.
func netdev() (*nic.Netdev, error) {
	n, err := nic.OpenNetdev()
	if err != nil {
		return &nic.Netdev{}, err
	}
	return n, nil
}

// restoreNAPI puts back what a killed process recorded it had changed on
// ifc's NAPI instances, before anything else of the path is set up.
// Nothing here is fatal: a record still held is a running process's (the
// attach will fail for it, and SetNAPIKnobs refuses to write over it).
func (p *Path) restoreNAPI(ifc *net.Interface, o Options) {
	dir := cmp.Or(o.NAPIStateDir, nic.DefaultNAPIStateDir)
	nd, err := netdev()
	if err != nil && !errors.Is(err, nic.ErrNetdevUnsupported) {
		// Not now, and not lost: the record stays for the next start.
		if rec, _, _ := nic.ReadNAPIRecord(dir, ifc.Index); rec != nil {
			slog.Warn("NAPI knobs: an earlier process's record not restored", "iface", ifc.Name, "err", err)
		}
		return
	}
	rs, err := nic.RestoreNAPIKnobs(nd, dir, ifc.Index)
	logNAPI(ifc.Name, earlierRecord, rs)
	if err != nil {
		slog.Warn("NAPI knobs: record of an earlier process", "iface", ifc.Name, "err", err)
	}
}

// suspendIRQs sets the NAPI knobs of Options.NAPISuspend on the served
// queues that took busy polling, and has Close put them back. Its error is
// a record that cannot be kept: then nothing was set.
func (p *Path) suspendIRQs(ifc *net.Interface, o Options) error {
	if o.NAPISuspend == 0 {
		return nil
	}
	if o.Mode == irq.Interrupt {
		slog.Warn("NAPI suspension ignored in interrupt mode: the kernel suspends a queue's IRQ only while a preferred busy poller "+
			"(SO_PREFER_BUSY_POLL, set in busy and hybrid mode) keeps finding work; defer-hard-irqs and gro-flush-timeout would "+
			"only delay the interrupts the loops sleep on", "iface", ifc.Name, "irq_suspend_timeout", o.NAPISuspend)
		return nil
	}
	var queues []int
	for i, s := range p.socks {
		if p.busyPoll[i] {
			queues = append(queues, s.Queue())
		} else {
			slog.Warn("NAPI knobs not set: the queue has no busy polling, which suspension needs", "iface", ifc.Name, "queue", s.Queue())
		}
	}
	want := nic.NAPIValues{
		nic.DeferHardIRQs:     NAPIDeferHardIRQs,
		nic.GROFlushTimeout:   uint64(NAPIGROFlushTimeout.Nanoseconds()),
		nic.IRQSuspendTimeout: uint64(o.NAPISuspend.Nanoseconds()),
	}
	nd, err := netdev()
	if err != nil && !errors.Is(err, nic.ErrNetdevUnsupported) {
		slog.Warn("NAPI knobs: netdev netlink family", "iface", ifc.Name, "err", err)
	}
	knobs, rs, err := nic.SetNAPIKnobs(nd, cmp.Or(o.NAPIStateDir, nic.DefaultNAPIStateDir), ifc.Index, ifc.Name, queues, want)
	var earlier []nic.NAPIResult // a record left since restoreNAPI looked
	for _, r := range rs {
		if r.Earlier {
			earlier = append(earlier, r)
		} else {
			p.napi = append(p.napi, r)
		}
	}
	logNAPI(ifc.Name, earlierRecord, earlier)
	logNAPI(ifc.Name, "set", p.napi)
	if err != nil {
		return fmt.Errorf("xdpnet: NAPI suspension: %w", err)
	}
	p.undo = append(p.undo, func() {
		rs, err := knobs.Restore()
		logNAPI(ifc.Name, "restored", rs)
		if err != nil {
			slog.Warn("NAPI knobs", "iface", ifc.Name, "err", err)
		}
	})
	return nil
}

// earlierRecord is logNAPI's done for the knobs of a record a killed
// process left.
const earlierRecord = "restored (an earlier process's record)"

// logNAPI logs results, a line per queue and outcome: the knobs and their
// values, and why for those neither set nor restored. done says what
// NAPISet or NAPIRestored did.
func logNAPI(ifname, done string, rs []nic.NAPIResult) {
	type group struct {
		queue int
		napi  uint32
		o     nic.NAPIOutcome
		err   string
	}
	var order []group
	knobs := map[group][]string{}
	for _, r := range rs {
		g := group{queue: r.Queue, napi: r.NAPI, o: r.Outcome}
		if r.Err != nil {
			g.err = r.Err.Error()
		}
		if _, ok := knobs[g]; !ok {
			order = append(order, g)
		}
		kv := r.Knob.String()
		if r.Outcome == nic.NAPISet || r.Outcome == nic.NAPIRestored || r.Outcome == nic.NAPIChanged {
			kv += fmt.Sprintf("=%d", r.Value)
		}
		knobs[g] = append(knobs[g], kv)
	}
	for _, g := range order {
		args := []any{"iface", ifname, "queue", g.queue, "napi", g.napi, "knobs", strings.Join(knobs[g], " ")}
		switch g.o {
		case nic.NAPISet, nic.NAPIRestored:
			slog.Info("NAPI knobs "+done, args...)
		case nic.NAPIChanged:
			slog.Info("NAPI knobs left as found: changed since they were set", args...)
		default:
			slog.Warn("NAPI knobs not "+done, append(args, "result", g.o.String(), "err", g.err)...)
		}
	}
}
