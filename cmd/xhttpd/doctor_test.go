package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/nic"
)

func TestXDPFindings(t *testing.T) {
	for _, c := range []struct {
		name           string
		dev            nic.NetdevDev
		err            error
		xLevel, xWant  string
		xFix           string
		zcLevel, zWant string
	}{
		{name: "veth", dev: nic.NetdevDev{XDPFeatures: nic.XDPBasic | nic.XDPRedirect | nic.XDPRxSG, XDPRxMetadata: 7},
			xLevel: "ok", xWant: "native XDP: basic, redirect, rx-sg; rx metadata: timestamp, hash, vlan-tag",
			zcLevel: "warn", zWant: "copy only"},
		{name: "ice", dev: nic.NetdevDev{XDPFeatures: nic.XDPBasic | nic.XDPRedirect | nic.XDPNdoXmit | nic.XDPXSKZerocopy, XDPZCMaxSegs: 5, XSKFeatures: 2},
			xLevel: "ok", xWant: "native XDP: basic, redirect, ndo-xmit, xsk-zerocopy; AF_XDP: tx-checksum",
			zcLevel: "ok", zWant: "zero-copy (xsk-zerocopy): -bind auto binds zero-copy (xdp-zc-max-segs 5)"},
		{name: "lo", dev: nic.NetdevDev{},
			xLevel: "warn", xWant: "no native XDP: xhttpd attaches in generic mode",
			zcLevel: "warn", zWant: "copy only"},
		{name: "no redirect", dev: nic.NetdevDev{XDPFeatures: nic.XDPBasic},
			xLevel: "warn", xWant: "native XDP without redirect (basic)", xFix: "xhttpd -xdp-mode generic ...",
			zcLevel: "warn", zWant: "copy only"},
	} {
		fs := xdpFindings(c.dev, nil)
		if len(fs) != 2 {
			t.Fatalf("%s: %d findings, want xdp features and zero-copy", c.name, len(fs))
		}
		x, zc := fs[0], fs[1]
		if x.Check != "xdp features" || x.Level != c.xLevel || !strings.Contains(x.Detail, c.xWant) || x.Fix != c.xFix {
			t.Errorf("%s: %+v, want %s with %q and fix %q", c.name, x, c.xLevel, c.xWant, c.xFix)
		}
		if zc.Check != "zero-copy" || zc.Level != c.zcLevel || !strings.Contains(zc.Detail, c.zWant) {
			t.Errorf("%s: %+v, want %s with %q", c.name, zc, c.zcLevel, c.zWant)
		}
	}

	// A kernel without the family or the operation: reported, not a
	// failure; any other error a warning.
	fs := xdpFindings(nic.NetdevDev{}, fmt.Errorf("nic: netdev netlink family: %w (Linux 6.3+)", nic.ErrNetdevUnsupported))
	if len(fs) != 1 || fs[0].Level != "ok" || !strings.Contains(fs[0].Detail, "not reported") {
		t.Errorf("old kernel: %+v", fs)
	}
	fs = xdpFindings(nic.NetdevDev{}, errors.New("nic: netdev dev-get: permission denied"))
	if len(fs) != 1 || fs[0].Level != "warn" {
		t.Errorf("dev-get failed: %+v", fs)
	}
}

func TestOffloadsFinding(t *testing.T) {
	lro := func(active, fixed bool) nic.Feature {
		return nic.Feature{Name: nic.FeatureLRO, Available: !fixed, Active: active, Fixed: fixed}
	}
	gro := func(active, fixed bool) nic.Feature {
		return nic.Feature{Name: nic.FeatureGROHW, Available: !fixed, Active: active, Fixed: fixed}
	}
	for _, c := range []struct {
		name        string
		fs          nic.Features
		level, want string
		fix         string
	}{
		{"veth", nic.Features{lro(false, true), gro(false, true)}, "ok", "LRO and hardware GRO off", ""},
		{"mlx5 with both on", nic.Features{{Name: "rx-checksum", Active: true}, lro(true, false), gro(true, false)}, "warn", "lro on, rx-gro-hw on: segments are merged", "ethtool -K eth1 lro off rx-gro-hw off"},
		{"bnxt with hardware GRO on", nic.Features{lro(false, false), gro(true, false)}, "warn", "rx-gro-hw on:", "ethtool -K eth1 rx-gro-hw off"},
		{"virtio_net, fixed by the host", nic.Features{lro(false, true), gro(true, true)}, "warn", "rx-gro-hw on [fixed]: segments are merged before XDP sees them; native XDP refuses", ""},
		{"fixed and changeable", nic.Features{lro(true, false), gro(true, true)}, "warn", "a [fixed] one ethtool cannot turn off", "ethtool -K eth1 lro off"},
		{"a driver without them", nic.Features{{Name: "tx-checksum-ip-generic", Active: true}}, "ok", "LRO and hardware GRO off", ""},
	} {
		f := offloadsFinding("eth1", c.fs, nil)
		if f.Check != "offloads" || f.Level != c.level || !strings.Contains(f.Detail, c.want) || f.Fix != c.fix {
			t.Errorf("%s: %+v, want %s with %q, fix %q", c.name, f, c.level, c.want, c.fix)
		}
	}
	if f := offloadsFinding("eth1", nil, errors.New("nic: eth1: ethtool features: no such device")); f.Level != "ok" || !strings.Contains(f.Detail, "not read") {
		t.Errorf("unreadable: %+v", f)
	}
}

func TestChannelsFinding(t *testing.T) {
	veth := nic.Channels{MaxRx: 2, MaxTx: 2, Rx: 2, Tx: 2}
	ice := nic.Channels{MaxCombined: 64, MaxOther: 1, Combined: 8, Other: 1}
	for _, c := range []struct {
		name        string
		nq          int
		ch          nic.Channels
		err         error
		cpus        []int
		level, want string
		fix         string
	}{
		{"veth", 2, veth, nil, nil, "ok", "rx 2 of 2, tx 2 of 2", ""},
		{"veth on one CPU", 2, veth, nil, []int{1}, "warn", "2 rx queues for 1 CPUs in -cpus: loops share CPUs", "ethtool -L eth1 rx 1"},
		{"ice", 8, ice, nil, []int{0, 1, 2, 3, 4, 5, 6, 7}, "ok", "combined 8 of 64, other 1 of 1", ""},
		{"ice on four CPUs", 8, ice, nil, []int{2, 3, 4, 5}, "warn", "8 rx queues for 4 CPUs", "ethtool -L eth1 combined 4"},
		{"more CPUs than queues", 2, ice, nil, []int{0, 1, 2, 3}, "ok", "2 rx queues for 4 CPUs in -cpus: no loop on CPUs 2-3", ""},
		{"lo", 1, nic.Channels{}, errors.New("nic: lo: ethtool channels: operation not supported"), nil, "ok", "no channels", ""},
	} {
		f := channelsFinding("eth1", c.nq, c.ch, c.err, c.cpus)
		if f.Check != "channels" || f.Level != c.level || !strings.Contains(f.Detail, c.want) || f.Fix != c.fix {
			t.Errorf("%s: %+v, want %s with %q, fix %q", c.name, f, c.level, c.want, c.fix)
		}
	}
}

func TestQueueFindings(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	affinity := map[int][]int{40: {0}, 41: {0, 1}, 38: {1}}
	aff := func(irq int) ([]int, error) {
		if a, ok := affinity[irq]; ok {
			return a, nil
		}
		return nil, fmt.Errorf("nic: irq %d affinity: no such file", irq)
	}
	// A NIC whose driver reports each queue's NAPI and IRQ (Linux 6.18):
	// queue 0's IRQ is on its loop's CPU, queue 1's may go to either CPU.
	in := queueInputs{
		ifname: "eth1", rxQueues: 2, cpus: []int{0, 1}, hasDevice: true, affinity: aff,
		queues: []nic.NetdevQueue{{ID: 0, Rx: true, NAPIID: 8193}, {ID: 1, Rx: true, NAPIID: 8194}, {ID: 0, NAPIID: 8193}},
		napis: []nic.NAPI{
			{ID: 8193, IRQ: u32(40), DeferHardIRQs: u32(0), GROFlushTimeout: u64(0), IRQSuspendTimeout: u64(0)},
			{ID: 8194, IRQ: u32(41), DeferHardIRQs: u32(2), GROFlushTimeout: u64(200000), IRQSuspendTimeout: u64(20000000)},
		},
	}
	fs := queueFindings(in)
	want := []finding{
		{Check: "queue 0", Level: "ok", Detail: "NAPI 8193, defer-hard-irqs 0, gro-flush-timeout 0 ns, irq-suspend-timeout 0 ns; IRQ 40 on CPU 0, where its loop runs"},
		{Check: "queue 1", Level: "warn", Detail: "NAPI 8194, defer-hard-irqs 2, gro-flush-timeout 200000 ns, irq-suspend-timeout 20000000 ns; IRQ 41 may go to CPUs 0-1, its loop is on CPU 1",
			Fix: "echo 1 > /proc/irq/41/smp_affinity_list"},
	}
	checkFindings(t, "6.18", fs, want)
	if d := fs[1].Data.(queueData); d.IRQFrom != "netdev" || *d.LoopCPU != 1 || d.NAPI.ID != 8194 {
		t.Errorf("queue 1 data: %+v", d)
	}
	if f := irqbalanceFinding(fs); f.Level != "warn" || f.Fix != "systemctl disable --now irqbalance" {
		t.Errorf("irqbalance: %+v", f)
	}

	// Without -cpus there is nothing to hold the IRQs to.
	in.cpus = nil
	checkFindings(t, "no -cpus", queueFindings(in), []finding{
		{Check: "queue 0", Level: "ok", Detail: "IRQ 40 on CPUs 0 (no -cpus to check against)"},
		{Check: "queue 1", Level: "ok", Detail: "IRQ 41 on CPUs 0-1 (no -cpus"},
	})

	// A kernel before 6.13 (NAPI without its settings), a driver that
	// does not name its IRQs to netdev: they come from /proc/interrupts.
	in = queueInputs{
		ifname: "eth0", rxQueues: 2, cpus: []int{1}, hasDevice: true, affinity: aff,
		queues:   []nic.NetdevQueue{{ID: 0, Rx: true, NAPIID: 257}},
		napis:    []nic.NAPI{{ID: 257}},
		procIRQs: []nic.QueueIRQ{{Queue: 0, IRQ: 38, Name: "virtio2-input.0"}, {Queue: 1, IRQ: 39, Name: "virtio2-input.1"}},
	}
	fs = queueFindings(in)
	checkFindings(t, "6.9, virtio", fs, []finding{
		{Check: "queue 0", Level: "ok", Detail: "NAPI 257, defer-hard-irqs n/a (Linux 6.13+), gro-flush-timeout n/a (Linux 6.13+), irq-suspend-timeout n/a (Linux 6.13+); IRQ 38 on CPU 1, where its loop runs"},
		{Check: "queue 1", Level: "warn", Detail: "no NAPI instance reported; IRQ 39: nic: irq 39 affinity"},
	})
	if d := fs[0].Data.(queueData); d.IRQFrom != "/proc/interrupts virtio2-input.0" {
		t.Errorf("queue 0 IRQ from %q", d.IRQFrom)
	}

	// A kernel without napi-get: reported, not a failure. A real NIC whose
	// IRQs cannot be found with -cpus: a warning to look by hand.
	in = queueInputs{ifname: "eth5", rxQueues: 1, cpus: []int{3}, hasDevice: true, affinity: aff,
		netdevErr: fmt.Errorf("nic: netdev queue-get: %w", nic.ErrNetdevUnsupported)}
	checkFindings(t, "old kernel", queueFindings(in), []finding{
		{Check: "queue 0", Level: "warn", Detail: "NAPI not reported (nic: netdev queue-get: not in this kernel); IRQ not found (neither netdev netlink nor /proc/interrupts names it)"},
	})

	// veth: no NAPI until XDP or GRO is on, no IRQ at all; with -cpus too.
	in = queueInputs{ifname: "xh-s", rxQueues: 2, cpus: []int{0, 1}, affinity: aff}
	fs = queueFindings(in)
	checkFindings(t, "veth", fs, []finding{
		{Check: "queue 0", Level: "ok", Detail: "no NAPI instance reported; no IRQ (a virtual device"},
		{Check: "queue 1", Level: "ok", Detail: "no NAPI instance reported; no IRQ (a virtual device"},
	})
	if f := irqbalanceFinding(fs); f.Level != "ok" {
		t.Errorf("irqbalance with no IRQs: %+v", f)
	}

	// veth with XDP on (Linux 6.18): a NAPI instance per queue, tied to
	// none.
	in.queues = []nic.NetdevQueue{{ID: 0, Rx: true}, {ID: 1, Rx: true}, {ID: 0}, {ID: 1}}
	in.napis = []nic.NAPI{{ID: 3677, DeferHardIRQs: u32(0), GROFlushTimeout: u64(0), IRQSuspendTimeout: u64(0)}, {ID: 3676, DeferHardIRQs: u32(0), GROFlushTimeout: u64(0), IRQSuspendTimeout: u64(0)}}
	checkFindings(t, "veth with XDP", queueFindings(in), []finding{
		{Check: "queue 0", Level: "ok", Detail: "the driver does not say which NAPI instance serves it (see napi instances); no IRQ"},
		{Check: "queue 1", Level: "ok", Detail: "the driver does not say which NAPI instance serves it"},
		{Check: "napi instances", Level: "ok", Detail: "not tied to queues by the driver: NAPI 3677, defer-hard-irqs 0, gro-flush-timeout 0 ns, irq-suspend-timeout 0 ns; NAPI 3676, "},
	})
}

// checkFindings compares check, level and fix exactly, and holds the
// detail to contain the wanted one.
func checkFindings(t *testing.T, name string, got, want []finding) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d findings, want %d: %+v", name, len(got), len(want), got)
		return
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Check != w.Check || g.Level != w.Level || g.Fix != w.Fix || !strings.Contains(g.Detail, w.Detail) {
			t.Errorf("%s: finding %d:\n got %s %s %q fix %q\nwant %s %s %q... fix %q", name, i, g.Check, g.Level, g.Detail, g.Fix, w.Check, w.Level, w.Detail, w.Fix)
		}
	}
}

func TestFdinfoProgID(t *testing.T) {
	link := "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nlink_type:\txdp\nlink_id:\t7\nprog_tag:\t3b185187f1855c4c\nprog_id:\t42\nifindex:\t5\n"
	if id, ok := fdinfoProgID(link); !ok || id != 42 {
		t.Errorf("link fdinfo: %d, %v; want 42", id, ok)
	}
	if _, ok := fdinfoProgID("pos:\t0\nflags:\t02\nmnt_id:\t25\n"); ok {
		t.Error("a file's fdinfo has a prog_id?")
	}
}

func TestDoctorFlags(t *testing.T) {
	var out strings.Builder
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, doctorUsage},
		{[]string{"-iface", "lo", "extra"}, doctorUsage},
		{[]string{"-iface", "lo", "-cpus", "x"}, `-cpus "x"`},
		{[]string{"-iface", "lo", "-cpus", "4096"}, "-cpus"},
		{[]string{"-iface", "no-such-if0"}, `interface "no-such-if0"`},
	} {
		if _, err := doctor(c.args, &out); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("doctor %q: %v, want an error with %q", c.args, err, c.want)
		}
	}
}

// A record of NAPI knobs: held, xhttpd runs and will restore them (ok);
// left, a process died with them set (warn, and the next start restores
// them); none, no finding.
func TestNAPIRecordFinding(t *testing.T) {
	rec := &nic.NAPIRecord{Ifindex: 3, Ifname: "eth1", PID: 4242, Time: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		Changes: []nic.NAPIChange{{ID: 8193, Queues: []int{0, 1},
			Old: nic.NAPIValues{nic.DeferHardIRQs: 0, nic.IRQSuspendTimeout: 0},
			New: nic.NAPIValues{nic.DeferHardIRQs: 100, nic.IRQSuspendTimeout: 20000000}}}}
	if _, ok := napiRecordFinding("eth1", nil, false, nil); ok {
		t.Error("no record: a finding")
	}
	f, ok := napiRecordFinding("eth1", rec, true, nil)
	if !ok || f.Level != "ok" || !strings.Contains(f.Detail, "xhttpd (pid 4242)") || !strings.Contains(f.Detail, "NAPI 8193 (queue 0-1): defer-hard-irqs 0->100, irq-suspend-timeout 0->20000000") {
		t.Errorf("held: %+v", f)
	}
	f, ok = napiRecordFinding("eth1", rec, false, nil)
	if !ok || f.Level != "warn" || !strings.Contains(f.Detail, "died without restoring") || !strings.Contains(f.Detail, "next xhttpd on eth1 restores them") || f.Data != rec {
		t.Errorf("left: %+v", f)
	}
	if f, ok := napiRecordFinding("eth1", nil, false, errors.New("nic: NAPI record: permission denied")); !ok || f.Level != "warn" {
		t.Errorf("unreadable: %+v", f)
	}
}
