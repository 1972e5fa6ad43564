package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/xhttpd/xhttpd/internal/cpulist"
	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/xdpnet"
)

// A finding of xhttpd doctor: what was checked, how it stands, and the one
// command that fixes it when it does not stand well.
type finding struct {
	Check  string `json:"check"`
	Level  string `json:"level"` // ok, warn or fail
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
	// Data holds the values the detail was written from, for -json's
	// readers: numbers and lists rather than prose.
	Data any `json:"data,omitempty"`
}

const doctorUsage = "usage: xhttpd doctor -iface NAME [-cpus LIST] [-napi-state-dir DIR] [-json]"

// doctor reads what xhttpd will meet on an interface and says what stands in
// its way, changing nothing: the driver, the MTU against a frame, queues,
// channels and RSS, the XDP features the kernel reports, offloads that fight
// XDP, a program attached already, NAPI settings per device and per queue,
// each queue's IRQ against -cpus, busy-poll settings, checksums. It exits 1
// if a finding fails.
func doctor(args []string, w io.Writer) (failed bool, err error) {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	iface := fs.String("iface", "", "interface to examine (required)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
	cpuList := fs.String("cpus", "", "the -cpus xhttpd will run with: queue i's IRQ should be on the i-th CPU of this comma-separated list")
	stateDir := fs.String("napi-state-dir", nic.DefaultNAPIStateDir, "the -napi-state-dir xhttpd runs with: where a record of NAPI knobs it set would be")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(w, doctorUsage)
			fs.SetOutput(w)
			fs.PrintDefaults()
		}
		return false, err
	}
	if *iface == "" || fs.NArg() > 0 {
		return false, errors.New(doctorUsage)
	}
	cpus, err := cpulist.Parse("-cpus", *cpuList)
	if err != nil {
		return false, err
	}
	ifc, err := net.InterfaceByName(*iface)
	if err != nil {
		return false, fmt.Errorf("interface %q: %w", *iface, err)
	}
	findings := examine(ifc, cpus, *stateDir)
	for _, f := range findings {
		failed = failed || f.Level == "fail"
	}
	if *asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return failed, enc.Encode(findings)
	}
	for _, f := range findings {
		fmt.Fprintf(w, "%-4s  %-14s %s\n", f.Level, f.Check, f.Detail)
		if f.Fix != "" {
			fmt.Fprintf(w, "      %-14s fix: %s\n", "", f.Fix)
		}
	}
	return failed, nil
}

// examine makes the findings for ifc, reading sysfs, procfs, ethtool and
// netlink. cpus is -cpus: queue i's loop runs on cpus[i%len(cpus)];
// stateDir is -napi-state-dir.
func examine(ifc *net.Interface, cpus []int, stateDir string) []finding {
	name := ifc.Name
	var out []finding
	add := func(check, level, detail, fix string) {
		out = append(out, finding{Check: check, Level: level, Detail: detail, Fix: fix})
	}
	sys := func(file string) (string, bool) {
		b, err := os.ReadFile("/sys/class/net/" + name + "/" + file)
		return strings.TrimSpace(string(b)), err == nil
	}

	// Driver, version, firmware; and what that means for checksums.
	info, err := nic.Drvinfo(name)
	if err != nil {
		add("driver", "warn", err.Error(), "")
	} else {
		drv, fw := info.Driver, info.Firmware
		if fw == "" {
			fw = "n/a"
		}
		add("driver", "ok", fmt.Sprintf("%s %s, firmware %s", drv, info.Version, fw), "")
		if nic.TrustRxChecksum(drv) {
			add("checksums", "ok", "received TCP checksums trusted (-rx-checksum auto): frames from "+drv+" never crossed a wire", "")
		} else {
			add("checksums", "ok", "received TCP checksums verified (-rx-checksum auto)", "")
		}
	}
	if speed, ok := sys("speed"); ok && speed != "-1" {
		add("link", "ok", speed+" Mb/s", "")
	}

	// Addresses: the ones xhttpd answers on.
	if addrs, err := xdpnet.ServedAddrs(ifc); err != nil {
		add("addresses", "fail", err.Error(), fmt.Sprintf("ip address add ADDRESS/PREFIX dev %s", name))
	} else {
		var as []string
		for _, a := range addrs {
			as = append(as, a.String())
		}
		add("addresses", "ok", "served: "+strings.Join(as, ", "), "")
	}

	// MTU against what a frame holds.
	max := nic.MaxMTU(nic.DefaultFrameSize)
	if ifc.MTU <= max {
		add("mtu", "ok", fmt.Sprintf("%d, a frame holds %d", ifc.MTU, max), "")
	} else {
		add("mtu", "warn", fmt.Sprintf("%d is more than a frame holds (%d): xhttpd announces the MSS of MTU %d, and native XDP may refuse the MTU (xhttpd then attaches in generic mode)", ifc.MTU, max, max),
			fmt.Sprintf("ip link set dev %s mtu %d", name, max))
	}

	// Queues and RSS: every rx queue needs a socket, or its flows reach the
	// kernel, which resets them.
	nq, err := nic.RxQueues(name)
	if err != nil {
		add("queues", "fail", err.Error(), "")
	} else {
		add("queues", "ok", fmt.Sprintf("%d rx queues: xhttpd serves them all by default (-queues 0)", nq), "")
		table, err := nic.RSSTable(name)
		switch {
		case err != nil && nq > 1:
			add("rss", "warn", "no RSS table to read ("+err.Error()+"): serve every queue", "")
		case err != nil:
			add("rss", "ok", "no RSS table (one queue)", "")
		default:
			used := map[uint32]bool{}
			for _, q := range table {
				used[q] = true
			}
			add("rss", "ok", fmt.Sprintf("%d buckets over %d queues", len(table), len(used)), "")
		}
		ch, err := nic.ReadChannels(name)
		out = append(out, channelsFinding(name, nq, ch, err, cpus))
	}

	// A program attached already: xhttpd's attach would fail, or replace it.
	if l, err := netlink.LinkByName(name); err != nil {
		add("xdp program", "warn", err.Error(), "")
	} else if x := l.Attrs().Xdp; x != nil && x.Attached {
		add("xdp program", "fail", fmt.Sprintf("program id %d%s is attached already (flags %#x): xhttpd cannot attach its own", x.ProgId, progOwner(x.ProgId), x.Flags),
			fmt.Sprintf("bpftool prog show id %d  # whose it is; then: ip link set dev %s xdp off", x.ProgId, name))
	} else {
		add("xdp program", "ok", "none attached", "")
	}

	// What the driver does for XDP and AF_XDP, as the kernel says; and the
	// offloads that stand in native XDP's way.
	netdev, netdevErr := nic.OpenNetdev()
	var dev nic.NetdevDev
	if netdevErr == nil {
		dev, err = netdev.Dev(ifc.Index)
	} else {
		err = netdevErr
	}
	out = append(out, xdpFindings(dev, err)...)
	feats, err := nic.ReadFeatures(name)
	out = append(out, offloadsFinding(name, feats, err))

	// NAPI and busy polling: what hybrid and busy modes get from the kernel.
	deferIRQs, ok1 := sys("napi_defer_hard_irqs")
	gro, ok2 := sys("gro_flush_timeout")
	if ok1 && ok2 {
		add("napi", "ok", fmt.Sprintf("napi_defer_hard_irqs %s, gro_flush_timeout %s ns", deferIRQs, gro), "")
	}
	bp := sysctl("net/core/busy_poll")
	br := sysctl("net/core/busy_read")
	bpDetail := fmt.Sprintf("net.core.busy_poll %s, busy_read %s", bp, br)
	if bp == "?" && br == "?" {
		bpDetail = "net.core.busy_poll and busy_read not visible here (they exist in the host's first network namespace only, and only with CONFIG_NET_RX_BUSY_POLL)"
	}
	add("busy poll", "ok", bpDetail+"; xhttpd sets SO_BUSY_POLL on its sockets in busy and hybrid mode", "")
	if threaded, ok := sys("threaded"); ok && threaded != "0" {
		add("napi threads", "ok", "threaded NAPI: the driver's polling runs in kernel threads", "")
	}

	// Per queue: its NAPI instance and settings, its IRQ and where that IRQ
	// is delivered, against the CPU the queue's loop is pinned to.
	if nq > 0 {
		in := queueInputs{ifname: name, rxQueues: nq, cpus: cpus, netdevErr: netdevErr, affinity: nic.IRQAffinity}
		if netdevErr == nil {
			if in.queues, in.netdevErr = netdev.Queues(ifc.Index); in.netdevErr == nil {
				in.napis, in.netdevErr = netdev.NAPIs(ifc.Index)
			}
		}
		dev := nic.DeviceName(name)
		in.hasDevice = dev != ""
		if f, err := os.Open("/proc/interrupts"); err == nil {
			in.procIRQs, _ = nic.IRQsFromInterrupts(f, name, dev)
			f.Close()
		}
		qf := queueFindings(in)
		out = append(out, qf...)
		if len(cpus) > 0 && nic.IRQBalanceRunning() {
			out = append(out, irqbalanceFinding(qf))
		}
	}
	rec, held, err := nic.ReadNAPIRecord(stateDir, ifc.Index)
	if f, ok := napiRecordFinding(name, rec, held, err); ok {
		out = append(out, f)
	}
	return out
}

// napiRecordFinding says what a record of NAPI knobs set by xhttpd
// (-napi-suspend) stands for: knobs a running xhttpd holds, or knobs a
// process that died left set, which the next start on the interface puts
// back. No record, no finding.
func napiRecordFinding(ifname string, rec *nic.NAPIRecord, held bool, err error) (finding, bool) {
	f := finding{Check: "napi record", Level: "ok"}
	switch {
	case err != nil:
		f.Level, f.Detail = "warn", err.Error()
		return f, true
	case rec == nil:
		return f, false
	}
	f.Data = rec
	var changes []string
	for _, c := range rec.Changes {
		var ks []string
		for k := range nic.NumNAPIKnobs {
			if v, ok := c.New[k]; ok {
				ks = append(ks, fmt.Sprintf("%s %d->%d", k, c.Old[k], v))
			}
		}
		changes = append(changes, fmt.Sprintf("NAPI %d (queue %s): %s", c.ID, nic.FormatCPUList(c.Queues), strings.Join(ks, ", ")))
	}
	when := rec.Time.Format("2006-01-02 15:04:05 MST")
	if held {
		f.Detail = fmt.Sprintf("xhttpd (pid %d) set NAPI knobs at %s and restores them when it exits: %s", rec.PID, when, strings.Join(changes, "; "))
		return f, true
	}
	f.Level = "warn"
	f.Detail = fmt.Sprintf("NAPI knobs set at %s by pid %d, which died without restoring them; the next xhttpd on %s restores them first: %s",
		when, rec.PID, ifname, strings.Join(changes, "; "))
	return f, true
}

// channelsFinding reports ethtool -l's channels, and warns when there are
// more rx queues than -cpus has CPUs: loops would share a CPU, which busy
// polling cannot afford.
func channelsFinding(ifname string, rxQueues int, ch nic.Channels, err error, cpus []int) finding {
	f := finding{Check: "channels", Level: "ok"}
	if err != nil {
		f.Detail = fmt.Sprintf("the driver reports no channels (%v): %d rx queues as sysfs lists them", err, rxQueues)
		return f
	}
	f.Data = ch
	var kinds []string
	for _, k := range []struct {
		name     string
		now, max uint32
	}{{"combined", ch.Combined, ch.MaxCombined}, {"rx", ch.Rx, ch.MaxRx}, {"tx", ch.Tx, ch.MaxTx}, {"other", ch.Other, ch.MaxOther}} {
		if k.now > 0 || k.max > 0 {
			kinds = append(kinds, fmt.Sprintf("%s %d of %d", k.name, k.now, k.max))
		}
	}
	if len(kinds) == 0 {
		kinds = []string{"none"}
	}
	f.Detail = strings.Join(kinds, ", ")
	switch {
	case len(cpus) > 0 && rxQueues > len(cpus):
		f.Level = "warn"
		f.Detail += fmt.Sprintf("; %d rx queues for %d CPUs in -cpus: loops share CPUs (one queue per core is the aim)", rxQueues, len(cpus))
		f.Fix = ch.SetCommand(ifname, len(cpus))
	case len(cpus) > 0 && rxQueues < len(cpus):
		f.Detail += fmt.Sprintf("; %d rx queues for %d CPUs in -cpus: no loop on CPUs %s", rxQueues, len(cpus), nic.FormatCPUList(cpus[rxQueues:]))
	}
	return f
}

// xdpFindings say what the kernel reports of the driver's XDP (netdev
// netlink dev-get): native XDP with redirect, which AF_XDP needs, and
// zero-copy.
func xdpFindings(dev nic.NetdevDev, err error) []finding {
	if err != nil {
		level := "warn"
		if errors.Is(err, nic.ErrNetdevUnsupported) {
			level = "ok"
		}
		return []finding{{Check: "xdp features", Level: level,
			Detail: fmt.Sprintf("not reported (%v): xhttpd tries native XDP and falls back to generic (-xdp-mode auto), and zero-copy AF_XDP then copy (-bind auto)", err)}}
	}
	feats := dev.XDPFeatures
	data := map[string]any{
		"xdp_features": feats.Names(), "xdp_rx_metadata": dev.RxMetadata(), "xsk_features": dev.XSK(),
	}
	if dev.XDPZCMaxSegs > 0 {
		data["xdp_zc_max_segs"] = dev.XDPZCMaxSegs
	}
	names := strings.Join(feats.Names(), ", ")
	x := finding{Check: "xdp features", Level: "ok", Data: data}
	switch {
	case feats&nic.XDPBasic == 0:
		x.Level = "warn"
		x.Detail = "no native XDP: xhttpd attaches in generic mode (-xdp-mode auto), where the program runs after the kernel has built a socket buffer for each frame"
	case feats&nic.XDPRedirect == 0:
		x.Level = "warn"
		x.Detail = "native XDP without redirect (" + names + "): the program's redirects to AF_XDP sockets would fail; run xhttpd in generic mode"
		x.Fix = "xhttpd -xdp-mode generic ..."
	default:
		x.Detail = "native XDP: " + names
	}
	if md := dev.RxMetadata(); len(md) > 0 {
		x.Detail += "; rx metadata: " + strings.Join(md, ", ")
	}
	if xsk := dev.XSK(); len(xsk) > 0 {
		x.Detail += "; AF_XDP: " + strings.Join(xsk, ", ")
	}
	zc := finding{Check: "zero-copy", Level: "ok"}
	if feats&nic.XDPXSKZerocopy != 0 {
		zc.Detail = "AF_XDP zero-copy (xsk-zerocopy): -bind auto binds zero-copy"
		if dev.XDPZCMaxSegs > 0 {
			zc.Detail += fmt.Sprintf(" (xdp-zc-max-segs %d)", dev.XDPZCMaxSegs)
		}
	} else {
		zc.Level = "warn"
		zc.Detail = "copy only: the driver has no AF_XDP zero-copy (no xsk-zerocopy); -bind auto binds in copy mode, where the kernel copies every frame"
	}
	return []finding{x, zc}
}

// offloadsFinding warns of LRO and hardware GRO: they merge segments before
// XDP sees them, and native XDP refuses to attach over them (or the driver
// turns them off). A feature the driver fixes cannot be turned off by
// ethtool; the fix names only those it can.
func offloadsFinding(ifname string, fs nic.Features, err error) finding {
	f := finding{Check: "offloads", Level: "ok"}
	if err != nil {
		f.Detail = fmt.Sprintf("not read (%v)", err)
		return f
	}
	type state struct {
		Name   string `json:"name"`
		Active bool   `json:"active"`
		Fixed  bool   `json:"fixed"`
	}
	var (
		states      []state
		on, changes []string
	)
	for _, k := range []struct{ kernel, ethtool string }{{nic.FeatureLRO, "lro"}, {nic.FeatureGROHW, "rx-gro-hw"}} {
		ft, ok := fs.Get(k.kernel)
		if !ok {
			continue
		}
		states = append(states, state{k.ethtool, ft.Active, ft.Fixed})
		if !ft.Active {
			continue
		}
		if ft.Fixed {
			on = append(on, k.ethtool+" on [fixed]")
		} else {
			on = append(on, k.ethtool+" on")
			changes = append(changes, k.ethtool+" off")
		}
	}
	f.Data = states
	if len(on) == 0 {
		f.Detail = "LRO and hardware GRO off"
		return f
	}
	f.Level = "warn"
	f.Detail = strings.Join(on, ", ") + ": segments are merged before XDP sees them; native XDP refuses to attach over them (xhttpd then attaches in generic mode) or the driver turns them off"
	if len(changes) > 0 {
		f.Fix = "ethtool -K " + ifname + " " + strings.Join(changes, " ")
	}
	if len(changes) < len(on) {
		f.Detail += "; a [fixed] one ethtool cannot turn off (on virtio_net the host's guest offloads decide)"
	}
	return f
}

// queueInputs is what queueFindings decides from, read by examine.
type queueInputs struct {
	ifname    string
	rxQueues  int
	cpus      []int
	queues    []nic.NetdevQueue // netdev queue-get
	napis     []nic.NAPI        // netdev napi-get
	netdevErr error             // why queues and napis are missing
	procIRQs  []nic.QueueIRQ    // from /proc/interrupts
	hasDevice bool              // a device on a bus, which should have IRQs
	affinity  func(irq int) ([]int, error)
}

// queueData is one queue's finding for -json.
type queueData struct {
	Queue    int       `json:"queue"`
	NAPI     *nic.NAPI `json:"napi,omitempty"`
	IRQ      *int      `json:"irq,omitempty"`
	IRQFrom  string    `json:"irq_from,omitempty"` // netdev or /proc/interrupts
	Affinity []int     `json:"affinity,omitempty"`
	LoopCPU  *int      `json:"loop_cpu,omitempty"`
}

// queueFindings makes one finding per rx queue: its NAPI instance and
// settings, its IRQ, and, with -cpus, whether the IRQ is delivered to the
// CPU the queue's loop is pinned to (queue i: cpus[i%len(cpus)]).
func queueFindings(in queueInputs) []finding {
	napiByID := map[uint32]nic.NAPI{}
	for _, n := range in.napis {
		napiByID[n.ID] = n
	}
	napiOf := map[int]nic.NAPI{}
	tied := map[uint32]bool{}
	for _, q := range in.queues {
		if q.NAPIID != 0 {
			tied[q.NAPIID] = true
		}
		if n, ok := napiByID[q.NAPIID]; ok && q.Rx && q.NAPIID != 0 {
			napiOf[int(q.ID)] = n
		}
	}
	// NAPI instances no queue names (veth with XDP on has one per queue
	// but does not say which).
	var loose []nic.NAPI
	for _, n := range in.napis {
		if !tied[n.ID] {
			loose = append(loose, n)
		}
	}
	procIRQ := map[int]nic.QueueIRQ{}
	for _, p := range in.procIRQs {
		if _, dup := procIRQ[p.Queue]; !dup {
			procIRQ[p.Queue] = p
		}
	}
	var out []finding
	for q := 0; q < in.rxQueues; q++ {
		f := finding{Check: fmt.Sprintf("queue %d", q), Level: "ok"}
		d := queueData{Queue: q}
		var parts []string
		if n, ok := napiOf[q]; ok {
			d.NAPI = &n
			parts = append(parts, napiDetail(n))
			if n.IRQ != nil {
				irq := int(*n.IRQ)
				d.IRQ, d.IRQFrom = &irq, "netdev"
			}
		} else if in.netdevErr != nil {
			parts = append(parts, fmt.Sprintf("NAPI not reported (%v)", in.netdevErr))
		} else if len(loose) > 0 {
			parts = append(parts, "the driver does not say which NAPI instance serves it (see napi instances)")
		} else {
			parts = append(parts, "no NAPI instance reported")
		}
		if d.IRQ == nil {
			if p, ok := procIRQ[q]; ok {
				irq := p.IRQ
				d.IRQ, d.IRQFrom = &irq, "/proc/interrupts "+p.Name
			}
		}
		if len(in.cpus) > 0 {
			cpu := in.cpus[q%len(in.cpus)]
			d.LoopCPU = &cpu
		}
		switch {
		case d.IRQ == nil && !in.hasDevice:
			parts = append(parts, "no IRQ (a virtual device: its queues run in the sender's softirq)")
		case d.IRQ == nil && d.LoopCPU != nil:
			f.Level = "warn"
			parts = append(parts, "IRQ not found (neither netdev netlink nor /proc/interrupts names it): check its affinity by hand")
		case d.IRQ == nil:
			parts = append(parts, "IRQ not found")
		default:
			aff, err := in.affinity(*d.IRQ)
			d.Affinity = aff
			switch {
			case err != nil:
				f.Level = "warn"
				parts = append(parts, fmt.Sprintf("IRQ %d: %v", *d.IRQ, err))
			case d.LoopCPU == nil:
				parts = append(parts, fmt.Sprintf("IRQ %d on CPUs %s (no -cpus to check against)", *d.IRQ, nic.FormatCPUList(aff)))
			case len(aff) == 1 && aff[0] == *d.LoopCPU:
				parts = append(parts, fmt.Sprintf("IRQ %d on CPU %d, where its loop runs", *d.IRQ, *d.LoopCPU))
			default:
				f.Level = "warn"
				parts = append(parts, fmt.Sprintf("IRQ %d may go to CPUs %s, its loop is on CPU %d: the interrupt, and the driver's work it starts, should be on the loop's core", *d.IRQ, nic.FormatCPUList(aff), *d.LoopCPU))
				f.Fix = fmt.Sprintf("echo %d > /proc/irq/%d/smp_affinity_list", *d.LoopCPU, *d.IRQ)
			}
		}
		f.Detail = strings.Join(parts, "; ")
		f.Data = d
		out = append(out, f)
	}
	if len(loose) > 0 {
		var ds []string
		for _, n := range loose {
			ds = append(ds, napiDetail(n))
		}
		out = append(out, finding{Check: "napi instances", Level: "ok", Data: loose,
			Detail: "not tied to queues by the driver: " + strings.Join(ds, "; ")})
	}
	return out
}

// napiDetail writes a NAPI instance's settings, naming those the kernel did
// not report.
func napiDetail(n nic.NAPI) string {
	s := fmt.Sprintf("NAPI %d", n.ID)
	if n.PID != nil {
		s += fmt.Sprintf(" (thread pid %d)", *n.PID)
	}
	num := func(name string, v *uint64, unit, since string) string {
		if v == nil {
			return fmt.Sprintf(", %s n/a (Linux %s+)", name, since)
		}
		return fmt.Sprintf(", %s %d%s", name, *v, unit)
	}
	var deferIRQs *uint64
	if n.DeferHardIRQs != nil {
		v := uint64(*n.DeferHardIRQs)
		deferIRQs = &v
	}
	s += num("defer-hard-irqs", deferIRQs, "", "6.13")
	s += num("gro-flush-timeout", n.GROFlushTimeout, " ns", "6.13")
	s += num("irq-suspend-timeout", n.IRQSuspendTimeout, " ns", "6.13")
	return s
}

// irqbalanceFinding warns that irqbalance will move the queue IRQs that
// -cpus needs where they are; it is made only with -cpus.
func irqbalanceFinding(queues []finding) finding {
	for _, q := range queues {
		if d, ok := q.Data.(queueData); ok && d.IRQ != nil {
			return finding{Check: "irqbalance", Level: "warn",
				Detail: "irqbalance is running: it moves queue IRQs off the CPUs their loops are pinned to",
				Fix:    "systemctl disable --now irqbalance"}
		}
	}
	return finding{Check: "irqbalance", Level: "ok", Detail: "irqbalance is running; no queue IRQ for it to move"}
}

// progOwner says whose a BPF program is, as far as this process may see: its
// name, and the processes holding it (a bpf_link or program descriptor,
// found in /proc/PID/fdinfo as bpftool does); "" when nothing is visible.
func progOwner(id uint32) string {
	var parts []string
	if holders := progHolders(id); len(holders) > 0 {
		parts = append(parts, "held by "+strings.Join(holders, ", "))
	}
	if p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
		if info, err := p.Info(); err == nil && info.Name != "" {
			parts = append([]string{info.Name}, parts...)
		}
		p.Close()
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// progHolders lists "pid N (comm)" for each process with a descriptor of
// program id, other than this one.
func progHolders(id uint32) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	self := strconv.Itoa(os.Getpid())
	for _, proc := range procs {
		pid := filepath.Base(proc)
		if pid == self {
			continue
		}
		fds, err := os.ReadDir(proc + "/fdinfo")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			b, err := os.ReadFile(proc + "/fdinfo/" + fd.Name())
			if n, ok := fdinfoProgID(string(b)); err == nil && ok && n == id {
				comm, _ := os.ReadFile(proc + "/comm")
				out = append(out, fmt.Sprintf("pid %s (%s)", pid, strings.TrimSpace(string(comm))))
				break
			}
		}
	}
	return out
}

// fdinfoProgID reads the prog_id line of a BPF program's or link's fdinfo.
func fdinfoProgID(fdinfo string) (uint32, bool) {
	for _, line := range strings.Split(fdinfo, "\n") {
		if v, ok := strings.CutPrefix(line, "prog_id:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			return uint32(n), err == nil
		}
	}
	return 0, false
}

func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
