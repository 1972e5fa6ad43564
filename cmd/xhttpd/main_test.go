package main

import (
	"errors"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	if o.procs != 0 {
		t.Errorf("-procs defaults to %d, want 0 (one per served queue)", o.procs)
	}
	if o.gcPercent != defaultGCPercent {
		t.Errorf("-gc-percent defaults to %d, want %d", o.gcPercent, defaultGCPercent)
	}
	// The default cache, full, at Go's default target, and 256 MiB more.
	if got := gcMemoryLimit(o.http.CacheTotal); got != 768<<20 {
		t.Errorf("memory limit with the default -cache-total: %d, want 768 MiB", got)
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
		{append(base, "-procs", "-1"), "-procs -1"},
		{append(base, "-gc-percent", "-1"), "-gc-percent -1"},
		{append(base, "-budget", "0"), "-budget"},
		{append(base, "-frames", "1000"), "-frames"},
		{append(base, "-frames", "0"), "-frames"},
		{append(base, "-budget", "4294967296"), "-budget"},
		{append(base, "-max-spin", "0s"), "-max-spin"},
		{append(base, "-cpus", "x"), "-cpus"},
		{append(base, "-cpus", "4096"), "-cpus"},
		{append(base, "-rx-checksum", "maybe"), "-rx-checksum"},
		{append(base, "-bind", "fast"), "-bind"},
		{append(base, "-tx-kicks", "sometimes"), "-tx-kicks"},
		{append(base, "-syn-rate", "-2"), "-syn-rate"},
		{append(base, "-stray-rate", "-2"), "-stray-rate"},
		{append(base, "-flows", "100"), "-flows 100"},
		{append(base, "-user", "no-such-user-xh"), "-user no-such-user-xh"},
		{append(base, "-user", "root"), "is root"},
		{append(base, "extra"), "unexpected argument"},
		{append(base, "-napi-suspend", "-1ms"), "-napi-suspend -1ms: want 0 (off) or more than gro-flush-timeout"},
		{append(base, "-napi-suspend", "50us"), "-napi-suspend 50µs"},
	} {
		_, err := parseFlags(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseFlags(%q) = %v; want an error about %s", c.args, err, c.want)
		}
	}
}

// -napi-suspend is off by default, a duration above gro-flush-timeout
// otherwise; -napi-state-dir is /run/xhttpd unless given.
func TestNAPISuspendFlags(t *testing.T) {
	base := []string{"-iface", "eth0", "-root", "/srv"}
	o, err := parseFlags(base)
	if err != nil || o.path.NAPISuspend != 0 || o.path.NAPIStateDir != "/run/xhttpd" {
		t.Errorf("defaults: %v %q (%v)", o.path.NAPISuspend, o.path.NAPIStateDir, err)
	}
	o, err = parseFlags(append(base, "-napi-suspend", "200us", "-napi-state-dir", "/tmp/x"))
	if err != nil || o.path.NAPISuspend != 200*time.Microsecond || o.path.NAPIStateDir != "/tmp/x" {
		t.Errorf("-napi-suspend 200us: %v %q (%v)", o.path.NAPISuspend, o.path.NAPIStateDir, err)
	}
}

// -stray-rate maps onto the library's setting: -1 off, 0 every stray
// dropped, a rate as it is, 1000 by default.
func TestStrayRateFlag(t *testing.T) {
	for flag, want := range map[string]int{"-1": xdpnet.StraysOff, "0": xdpnet.StraysDropped, "1": 1, "5000": 5000} {
		o, err := parseFlags([]string{"-iface", "eth0", "-root", "/srv", "-stray-rate", flag})
		if err != nil || o.path.StrayRate != want {
			t.Errorf("-stray-rate %s: %d (%v), want %d", flag, o.path.StrayRate, err, want)
		}
	}
	if o, err := parseFlags([]string{"-iface", "eth0", "-root", "/srv"}); err != nil || o.path.StrayRate != 1000 {
		t.Errorf("default -stray-rate %d (%v), want 1000", o.path.StrayRate, err)
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
		{append(base, "-tx-kicks", "sometimes"), `invalid value "sometimes" for flag -tx-kicks: tx kicks "sometimes": want auto, thread or writer`},
	} {
		if _, err := parseFlags(c.args); err == nil || err.Error() != c.want {
			t.Errorf("parseFlags(%q) = %v; want %s", c.args, err, c.want)
		}
	}
	for name, want := range map[string]nic.TxKicks{"auto": nic.TxKicksAuto, "thread": nic.TxKicksThread, "writer": nic.TxKicksWriter} {
		if o, err := parseFlags(append(base, "-tx-kicks", name)); err != nil || o.path.TxKicks != want {
			t.Errorf("-tx-kicks %s: %v (%v), want %v", name, o.path.TxKicks, err, want)
		}
	}
	for _, k := range []stackKind{stackXDP, stackKernel} {
		var got stackKind
		if b, err := k.MarshalText(); err != nil || got.UnmarshalText(b) != nil || got != k {
			t.Errorf("%v does not survive MarshalText and UnmarshalText: %q, %v", k, b, got)
		}
	}
}

// -version and the Server header say what the build info says: the
// module's version (a pseudo-version from git since Go 1.24), the
// revision, and whether the tree was modified.
func TestBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/xhttpd/xhttpd", Version: "v0.0.0-20261130120000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}
	b := newBuildInfo(bi, true)
	if got, want := b.product(), "xhttpd/v0.0.0-20261130120000-0123456789ab+dirty"; got != want {
		t.Errorf("product %q, want %q", got, want)
	}
	want := "xhttpd v0.0.0-20261130120000-0123456789ab+dirty revision 0123456789abcdef0123456789abcdef01234567 (modified) go1.26.8 " + runtime.GOOS + "/" + runtime.GOARCH
	if got := b.String(); got != want {
		t.Errorf("String %q,\nwant %q", got, want)
	}

	// go run, or a build outside a checkout: "(devel)" and no VCS.
	bi = &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "github.com/xhttpd/xhttpd", Version: "(devel)"}}
	if b := newBuildInfo(bi, true); b.product() != "xhttpd/devel" || b.revision != "unknown" || b.modified {
		t.Errorf("without VCS: %+v", b)
	}
	if b := newBuildInfo(nil, false); b.product() != "xhttpd/devel" || b.goVersion != runtime.Version() {
		t.Errorf("without build info: %+v", b)
	}

	// -version needs no other flag; the server's Config carries the product.
	if o, err := parseFlags([]string{"-version"}); err != nil || !o.version {
		t.Errorf("parseFlags(-version) = %+v, %v", o, err)
	}
	if o, err := parseFlags([]string{"-iface", "eth0", "-root", "/srv"}); err != nil || o.http.ServerVersion != build.product() {
		t.Errorf("Config.ServerVersion %q (%v), want %q", o.http.ServerVersion, err, build.product())
	}
}

// -procs 0 runs one P per served queue over AF_XDP, never more than the
// CPUs; -procs N is N; the kernel stack keeps every CPU.
func TestProcsFor(t *testing.T) {
	queues := func(n int) func(string, int) (int, error) {
		return func(_ string, q int) (int, error) {
			if q > 0 {
				return q, nil
			}
			return n, nil
		}
	}
	for _, c := range []struct {
		name       string
		args       []string
		nicQueues  int
		cpus, want int
	}{
		{"one queue", nil, 1, 2, 1},
		{"all four queues", nil, 4, 8, 4},
		{"more queues than CPUs", nil, 16, 4, 4},
		{"-queues 2 of 8", []string{"-queues", "2"}, 8, 8, 2},
		{"-procs 3", []string{"-procs", "3"}, 1, 2, 3},
		{"kernel stack", []string{"-stack", "kernel"}, 1, 2, 2},
	} {
		o, err := parseFlags(append([]string{"-iface", "eth0", "-root", "/srv"}, c.args...))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		got, err := procsFor(o, queues(c.nicQueues), c.cpus)
		if err != nil || got != c.want {
			t.Errorf("%s: procs %d (%v), want %d", c.name, got, err, c.want)
		}
	}
	o, _ := parseFlags([]string{"-iface", "eth0", "-root", "/srv"})
	if _, err := procsFor(o, func(string, int) (int, error) { return 0, errors.New("no rx queues") }, 2); err == nil {
		t.Error("an interface whose queues cannot be counted gave no error")
	}
}

// The kernel stack's listeners hand out connections without TCP keepalive,
// which Go turns on by default with four setsockopt(2) calls per
// connection; TCP_NODELAY stays on, as Go sets it.
func TestListenKernelNoKeepAlive(t *testing.T) {
	ls, err := listenKernel([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}, []uint16{0})
	if err != nil {
		t.Fatal(err)
	}
	defer ls[0].Close()
	c, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	a, err := ls[0].Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	raw, err := a.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var keepalive, nodelay int
	var serr error
	raw.Control(func(fd uintptr) {
		if keepalive, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_KEEPALIVE); serr == nil {
			nodelay, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NODELAY)
		}
	})
	if serr != nil {
		t.Fatal(serr)
	}
	if keepalive != 0 || nodelay == 0 {
		t.Errorf("accepted connection: SO_KEEPALIVE %d, TCP_NODELAY %d; want 0 and on", keepalive, nodelay)
	}
}
