package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/xhttpd/xhttpd/syncookie"
)

func TestParsePorts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []uint16
	}{
		{"80", []uint16{80}},
		{"80,8080", []uint16{80, 8080}},
		{" 80 , 443 ,80", []uint16{80, 443}},
		{"65535", []uint16{65535}},
	} {
		got, err := parsePorts(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("parsePorts(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "0", "65536", "-1", "80,", "http", "80;81", "1e3"} {
		if got, err := parsePorts(in); err == nil {
			t.Errorf("parsePorts(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseFlags(t *testing.T) {
	base := []string{"-iface", "eth0", "-root", "/srv"}
	o, err := parseFlags(base)
	if err != nil {
		t.Fatal(err)
	}
	if o.mode.String() != "hybrid" || o.stack != "xdp" || !slices.Equal(o.ports, []uint16{80}) || o.budget != 64 {
		t.Errorf("defaults: mode %v stack %q ports %v budget %d", o.mode, o.stack, o.ports, o.budget)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-root", "/srv"}, "-iface is required"},
		{[]string{"-iface", "eth0"}, "-root is required"},
		{append(base, "-mode", "poll"), "-mode"},
		{append(base, "-stack", "dpdk"), "-stack"},
		{append(base, "-queues", "-1"), "-queues"},
		{append(base, "-budget", "0"), "-budget"},
		{append(base, "-frames", "1000"), "-frames"},
		{append(base, "-frames", "0"), "-frames"},
		{append(base, "-budget", "4294967296"), "-budget"},
		{append(base, "-max-spin", "0s"), "-max-spin"},
		{append(base, "-cpus", "x"), "-cpus"},
		{append(base, "-cpus", "4096"), "-cpus"},
		{append(base, "-rx-checksum", "maybe"), "-rx-checksum"},
		{append(base, "-bind", "fast"), "-bind"},
		{append(base, "-syn-rate", "-2"), "-syn-rate"},
		{append(base, "-user", "no-such-user-xh"), "-user no-such-user-xh"},
		{append(base, "-user", "root"), "is root"},
		{append(base, "extra"), "unexpected argument"},
	} {
		_, err := parseFlags(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseFlags(%q) = %v; want an error about %s", c.args, err, c.want)
		}
	}
}

// -syn-rate becomes a budget per 100 ms window: 0 answers every SYN with a
// cookie, a small rate still leaves the netstack one SYN per window.
func TestSYNCookieBudget(t *testing.T) {
	for rate, want := range map[int]uint32{0: 0, 1: 1, 9: 1, 10: 1, 10000: 1000, 25000: 2500} {
		c := synCookies(syncookie.Key{}, rate, 1500)
		if c.Budget != want || c.Window != synWindow {
			t.Errorf("rate %d: budget %d per %v, want %d per %v", rate, c.Budget, c.Window, want, synWindow)
		}
	}
	if c := synCookies(syncookie.Key{}, 1, 1500); c.MSS4 != 1460 || c.MSS6 != 1440 || c.RcvWnd != 65535 {
		t.Errorf("MTU 1500: %+v", c)
	}
	if o, err := parseFlags([]string{"-iface", "eth0", "-root", "/srv"}); err != nil || o.synRate != 10000 {
		t.Errorf("default -syn-rate %d (%v), want 10000", o.synRate, err)
	}
}
