package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/xhttpd/xhttpd/nic"
	"github.com/xhttpd/xhttpd/xdpnet"
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
	if p := o.path; p.Mode.String() != "hybrid" || o.stack != stackXDP || p.RxChecksum != nic.RxChecksumAuto || !slices.Equal(p.Ports, []uint16{80}) || p.Budget != 64 || p.NoGSO {
		t.Errorf("defaults: mode %v stack %v rx checksum %v ports %v budget %d no GSO %v", p.Mode, o.stack, p.RxChecksum, p.Ports, p.Budget, p.NoGSO)
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

// -syn-rate maps onto the library's setting: -1 off, 0 cookies for every
// SYN, a rate as it is, 10000 by default.
func TestSYNRateFlag(t *testing.T) {
	for flag, want := range map[string]int{"-1": xdpnet.SYNCookiesOff, "0": xdpnet.SYNCookiesAlways, "1": 1, "25000": 25000} {
		o, err := parseFlags([]string{"-iface", "eth0", "-root", "/srv", "-syn-rate", flag})
		if err != nil || o.path.SYNRate != want {
			t.Errorf("-syn-rate %s: %d (%v), want %d", flag, o.path.SYNRate, err, want)
		}
	}
	if o, err := parseFlags([]string{"-iface", "eth0", "-root", "/srv"}); err != nil || o.path.SYNRate != 10000 {
		t.Errorf("default -syn-rate %d (%v), want 10000", o.path.SYNRate, err)
	}
}

// -stack and -rx-checksum are read as -mode, -bind and -xdp-mode are: by
// name with flag.TextVar, a bad name refused in one line of the same shape.
func TestStackAndRxChecksumFlags(t *testing.T) {
	base := []string{"-iface", "eth0", "-root", "/srv"}
	for _, c := range []struct {
		args   []string
		stack  stackKind
		rxCsum nic.RxChecksum
	}{
		{base, stackXDP, nic.RxChecksumAuto},
		{append(base, "-stack", "kernel"), stackKernel, nic.RxChecksumAuto},
		{append(base, "-stack", "xdp", "-rx-checksum", "verify"), stackXDP, nic.RxChecksumVerify},
		{append(base, "-rx-checksum", "trust"), stackXDP, nic.RxChecksumTrust},
		{append(base, "-rx-checksum", "auto"), stackXDP, nic.RxChecksumAuto},
	} {
		o, err := parseFlags(c.args)
		if err != nil || o.stack != c.stack || o.path.RxChecksum != c.rxCsum {
			t.Errorf("parseFlags(%q): stack %v, rx checksum %v (%v); want %v, %v", c.args, o.stack, o.path.RxChecksum, err, c.stack, c.rxCsum)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(base, "-stack", "dpdk"), `invalid value "dpdk" for flag -stack: stack "dpdk": want xdp or kernel`},
		{append(base, "-stack", ""), `invalid value "" for flag -stack: stack "": want xdp or kernel`},
		{append(base, "-rx-checksum", "maybe"), `invalid value "maybe" for flag -rx-checksum: rx checksum "maybe": want auto, verify or trust`},
		{append(base, "-mode", "poll"), `invalid value "poll" for flag -mode: mode "poll": want interrupt, busy or hybrid`},
	} {
		if _, err := parseFlags(c.args); err == nil || err.Error() != c.want {
			t.Errorf("parseFlags(%q) = %v; want %s", c.args, err, c.want)
		}
	}
	for _, k := range []stackKind{stackXDP, stackKernel} {
		var got stackKind
		if b, err := k.MarshalText(); err != nil || got.UnmarshalText(b) != nil || got != k {
			t.Errorf("%v does not survive MarshalText and UnmarshalText: %q, %v", k, b, got)
		}
	}
}
