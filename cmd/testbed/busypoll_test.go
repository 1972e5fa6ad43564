package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool's feature listing is read as it prints it.
func TestEthtoolFeature(t *testing.T) {
	out := []byte(`Features for xh1234-s:
rx-checksumming: on
tcp-segmentation-offload: off
	tx-tcp-segmentation: off
generic-receive-offload: on
large-receive-offload: off [fixed]
`)
	for key, want := range map[string]bool{"generic-receive-offload": true, "tcp-segmentation-offload": false, "large-receive-offload": false} {
		if got, err := ethtoolFeature(out, key); err != nil || got != want {
			t.Errorf("%s: %v (%v), want %v", key, got, err, want)
		}
	}
	if _, err := ethtoolFeature(out, "rx-gro-hw"); err == nil {
		t.Error("a feature not listed was read")
	}
}

// A counter of /proc/net/netstat is found by group and name.
func TestNetstatValue(t *testing.T) {
	b := []byte("TcpExt: SyncookiesSent BusyPollRxPackets TCPHPHits\nTcpExt: 1 42 7\nIpExt: InNoRoutes BusyPollRxPackets\nIpExt: 0 9\n")
	if n, err := netstatValue(b, "TcpExt", "BusyPollRxPackets"); err != nil || n != 42 {
		t.Errorf("BusyPollRxPackets %d (%v), want 42", n, err)
	}
	if _, err := netstatValue(b, "TcpExt", "NoSuch"); err == nil {
		t.Error("a missing counter was read")
	}
	if _, err := netstatValue(b, "MPTcpExt", "BusyPollRxPackets"); err == nil {
		t.Error("a missing group was read")
	}
	if own, err := os.ReadFile("/proc/self/net/netstat"); err == nil {
		if _, err := netstatValue(own, "TcpExt", "TCPHPHits"); err != nil {
			t.Errorf("this machine's netstat: %v", err)
		}
	}
}

// Busy polling is set on a process's epoll instances from outside it:
// here this test's own, Go's netpoller, read back with EPIOCGPARAMS.
func TestEnableEpollBusyPoll(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0") // the netpoller exists
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fds, err := epollFDs(os.Getpid())
	if err != nil || len(fds) == 0 {
		t.Fatalf("epoll descriptors %v (%v)", fds, err)
	}
	n, err := enableEpollBusyPoll(os.Getpid())
	if err != nil {
		t.Skipf("this kernel or sandbox refuses: %v", err)
	}
	if n != len(fds) {
		t.Errorf("set %d of %d epoll instances", n, len(fds))
	}
	var p epollParams
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fds[0]), unix.EPIOCGPARAMS, uintptr(unsafe.Pointer(&p))); errno != 0 {
		t.Fatal(errno)
	}
	if p.usecs != busyPollUsecs || p.budget != busyPollBudget || p.prefer != 1 {
		t.Errorf("EPIOCGPARAMS: %+v", p)
	}
	// Leave this process as it was.
	p = epollParams{}
	unix.Syscall(unix.SYS_IOCTL, uintptr(fds[0]), unix.EPIOCSPARAMS, uintptr(unsafe.Pointer(&p)))
}

// The report says what kernel-busy was and what busy polling took, or
// that it was unavailable and why.
func TestKernelBusyReport(t *testing.T) {
	rx := func(n int64) *int64 { return &n }
	a, b := point(kernelBusy, 0, 1000, 300, 30e-6), point(kernelBusy, 0.5, 5000, 400, 30e-6)
	a.Done, a.BusyPollRx, b.Done, b.BusyPollRx = 1000, rx(1500), 5000, rx(7500)
	none := a
	none.BusyPollRx = rx(0)
	for _, c := range []struct {
		res  expResults
		want string
	}{
		{expResults{Points: []expPoint{a, b}}, "Busy polling took 9000 packets in 2 points (6000 answers, so about 1.5 a request)."},
		{expResults{Missing: []expMissing{{kernelBusy, "ethtool is missing"}}}, "Unavailable in this run: ethtool is missing."},
		{expResults{Points: []expPoint{none}}, "Busy polling took no packet in 1 point (1000 answers)"},
	} {
		dir := t.TempDir()
		if err := writeResults(dir, c.res); err != nil {
			t.Fatal(err)
		}
		md, _ := os.ReadFile(filepath.Join(dir, "report.md"))
		if !strings.Contains(string(md), "## Kernel busy polling") || !strings.Contains(string(md), c.want) || !strings.Contains(string(md), "veth_skb_is_eligible_for_gro") {
			t.Errorf("report.md lacks %q:\n%s", c.want, md)
		}
	}
	dir := t.TempDir()
	writeResults(dir, expResults{Points: []expPoint{point("kernel", 0, 1000, 300, 30e-6)}})
	if md, _ := os.ReadFile(filepath.Join(dir, "report.md")); strings.Contains(string(md), "Kernel busy polling") {
		t.Error("a run without kernel-busy explains it")
	}
}
