package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

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
}

const doctorUsage = "usage: xhttpd doctor -iface NAME [-json]"

// doctor reads what xhttpd will meet on an interface and says what stands in
// its way, changing nothing: the driver, the MTU against a frame, queues and
// RSS, a program attached already, NAPI and busy-poll settings, checksums.
// It exits 1 if a finding fails.
func doctor(args []string, w io.Writer) (failed bool, err error) {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	iface := fs.String("iface", "", "interface to examine (required)")
	asJSON := fs.Bool("json", false, "print the findings as JSON")
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
	ifc, err := net.InterfaceByName(*iface)
	if err != nil {
		return false, fmt.Errorf("interface %q: %w", *iface, err)
	}
	findings := examine(ifc)
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

// examine makes the findings for ifc, reading sysfs, ethtool and netlink.
func examine(ifc *net.Interface) []finding {
	name := ifc.Name
	var out []finding
	add := func(check, level, detail, fix string) {
		out = append(out, finding{check, level, detail, fix})
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
	}

	// A program attached already: xhttpd's attach would fail, or replace it.
	if l, err := netlink.LinkByName(name); err != nil {
		add("xdp program", "warn", err.Error(), "")
	} else if x := l.Attrs().Xdp; x != nil && x.Attached {
		add("xdp program", "fail", fmt.Sprintf("program id %d is attached already (flags %#x): xhttpd cannot attach its own", x.ProgId, x.Flags),
			fmt.Sprintf("bpftool prog show id %d  # whose it is; then: ip link set dev %s xdp off", x.ProgId, name))
	} else {
		add("xdp program", "ok", "none attached", "")
	}

	// NAPI and busy polling: what hybrid and busy modes get from the kernel.
	deferIRQs, ok1 := sys("napi_defer_hard_irqs")
	gro, ok2 := sys("gro_flush_timeout")
	if ok1 && ok2 {
		add("napi", "ok", fmt.Sprintf("napi_defer_hard_irqs %s, gro_flush_timeout %s ns", deferIRQs, gro), "")
	}
	bp := sysctl("net/core/busy_poll")
	br := sysctl("net/core/busy_read")
	add("busy poll", "ok", fmt.Sprintf("net.core.busy_poll %s, busy_read %s; xhttpd sets SO_BUSY_POLL on its sockets in busy and hybrid mode", bp, br), "")
	if threaded, ok := sys("threaded"); ok && threaded != "0" {
		add("napi threads", "ok", "threaded NAPI: the driver's polling runs in kernel threads", "")
	}
	return out
}

func sysctl(name string) string {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}
