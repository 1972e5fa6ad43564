package e2e

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// A misconfiguration is one clear line on stderr and a non-zero exit, never
// a stack trace.
func TestMisconfiguration(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	root := t.TempDir()
	cases := []struct {
		name string
		args []string
		want string // in the one line
	}{
		{"no such interface", []string{"-iface", "nosuch0", "-root", root}, "nosuch0"},
		{"no address", []string{"-iface", "lo", "-root", root}, "no IPv4 or global IPv6 address"},
		{"port out of range", []string{"-iface", tb.ServerIf, "-root", root, "-port", "70000"}, "70000"},
		{"port zero", []string{"-iface", tb.ServerIf, "-root", root, "-port", "80,0"}, "not a port"},
		{"bad mode", []string{"-iface", tb.ServerIf, "-root", root, "-mode", "sometimes"}, "-mode"},
		{"bad xdp mode", []string{"-iface", tb.ServerIf, "-root", root, "-xdp-mode", "offload"}, "-xdp-mode"},
		{"bad stack", []string{"-iface", tb.ServerIf, "-root", root, "-stack", "dpdk"}, "-stack"},
		{"too many queues", []string{"-iface", tb.ServerIf, "-root", root, "-queues", "9"}, "rx queues"},
		{"cpu out of range", []string{"-iface", tb.ServerIf, "-root", root, "-cpus", "0,999"}, "-cpus"},
		{"bad max spin", []string{"-iface", tb.ServerIf, "-root", root, "-max-spin", "-1s"}, "-max-spin"},
		{"admin address in use", []string{"-iface", tb.ServerIf, "-root", root, "-admin", "198.18.0.1:80", "-stack", "kernel"}, "-admin"},
		{"missing root dir", []string{"-iface", tb.ServerIf, "-root", root + "/nope"}, "nope"},
		{"no iface flag", []string{"-root", root}, "-iface is required"},
		{"unknown flag", []string{"-iface", tb.ServerIf, "-root", root, "-bogus"}, "-bogus"},
		{"bad number", []string{"-iface", tb.ServerIf, "-root", root, "-queues", "many"}, "-queues"},
		{"zero-copy on veth", []string{"-iface", tb.ServerIf, "-root", root, "-bind", "zerocopy"}, "driver, veth, has no zero-copy"},
	}
	for _, c := range cases {
		out, code := runXhttpd(t, tb, nil, c.args...)
		checkOneLine(t, c.name, out, code, c.want)
	}

	// Not root: run as nobody.
	out, code := runXhttpd(t, tb, []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"},
		"-iface", tb.ServerIf, "-root", root)
	checkOneLine(t, "not root", out, code, "root")
}

func runXhttpd(t *testing.T, tb *testbed.Testbed, wrap []string, args ...string) (string, int) {
	argv := append(append(wrap, xhttpdBin), args...)
	cmd := tb.ServerCmd(context.Background(), argv[0], argv[1:]...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", argv, err)
	}
	return string(out), code
}

func checkOneLine(t *testing.T, name, out string, code int, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "xhttpd: ") || !strings.Contains(lines[0], want) {
		t.Errorf("%s: exit %d, output:\n%s\nwant a non-zero exit and one line 'xhttpd: ...' containing %q", name, code, out, want)
	}
}

// When the interface goes away under it (a driver reset, a NIC removed, a
// container's veth deleted), xhttpd does not sleep on dead queues for ever:
// it says why and exits non-zero, so that a supervisor restarts it.
func TestInterfaceGoneExits(t *testing.T) {
	tb, _, srv := serve(t)
	deleteInterface(t, tb, srv)
}

// deleteInterface deletes the server's interface under xhttpd and checks
// that it exits within 5 s, non-zero, saying why. It reports whether it
// exited.
func deleteInterface(t *testing.T, tb *testbed.Testbed, srv *testbedtest.Server) bool {
	t.Helper()
	if out, err := tb.ServerCmd(context.Background(), "ip", "link", "del", "dev", tb.ServerIf).CombinedOutput(); err != nil {
		t.Fatalf("ip link del: %v: %s", err, out)
	}
	select {
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		t.Error("xhttpd still running 5 s after its interface was deleted")
		return false
	}
	err := srv.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("xhttpd exited with %v, want a non-zero status", err)
	}
	if !strings.Contains(srv.Output(), "interface "+tb.ServerIf+" went away") {
		t.Errorf("no reason in the log:\n%s", srv.Output())
	}
	return true
}
