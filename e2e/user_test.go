package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// With -user nobody, xhttpd serves as nobody with no capabilities once it
// is up, as Apache's prefork children and nginx's workers do, and still
// serves over IPv4 and IPv6, reloads on SIGHUP, reports its metrics (the
// XDP program's counters included) and shuts down cleanly on SIGINT,
// detaching the program.
func TestDropPrivileges(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	readableByAll(t, s.dir)
	srv := startServer(t, tb, s.dir, "-user", "nobody", "-admin", adminAddr)

	status, err := os.ReadFile("/proc/" + strconv.Itoa(srv.Cmd.Process.Pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`(?m)^Uid:\s+65534\s+65534\s+65534\s+65534$`, `(?m)^CapEff:\s+0+$`, `(?m)^CapPrm:\s+0+$`} {
		if !regexp.MustCompile(want).Match(status) {
			t.Errorf("/proc/PID/status does not match %s:\n%s", want, status)
		}
	}

	ctx := context.Background()
	for _, host := range []string{"198.18.0.1", "[2001:2::1]"} {
		if _, err := curlGet(tb, "http://"+host+"/1m.bin", t.TempDir(), s.files["/1m.bin"]); err != nil {
			t.Errorf("%s as nobody: %v", host, err)
		}
	}
	if v := metric(t, tb, adminAddr, "xhttpd_xdp_frames_total", "verdict", "redirected"); v == 0 {
		t.Error("the XDP program's counters read 0 after serving")
	}

	// SIGHUP: nobody rereads the root.
	s.add(t, "/new.bin", random(t, 4<<10))
	if err := syscall.Kill(srv.Cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := curlGet(tb, "http://198.18.0.1/new.bin", t.TempDir(), s.files["/new.bin"])
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a file added before SIGHUP is not served: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	srv.Stop()
	if !strings.Contains(srv.Output(), "dropped privileges") {
		t.Errorf("no word of the drop in the log:\n%s", srv.Output())
	}
	out, err := tb.ServerCmd(ctx, "ip", "link", "show", "dev", tb.ServerIf).CombinedOutput()
	if err != nil || strings.Contains(string(out), "xdp") {
		t.Errorf("after shutdown the interface still has a program: %v\n%s", err, out)
	}
}

// Without root, xhttpd runs with CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF and
// CAP_IPC_LOCK (as systemd's AmbientCapabilities gives them), and with any
// one of them missing refuses in one line that names it.
func TestCapabilitiesSuffice(t *testing.T) {
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	readableByAll(t, s.dir)
	caps := []string{"net_admin", "net_raw", "bpf", "ipc_lock"}
	setpriv := func(caps []string) []string {
		c := "+" + strings.Join(caps, ",+")
		if len(caps) == 0 {
			c = "-all"
		}
		return []string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=" + c, "--ambient-caps=" + c, "--"}
	}
	for i, missing := range caps {
		rest := append(append([]string{}, caps[:i]...), caps[i+1:]...)
		out, code := runXhttpd(t, tb, setpriv(rest), "-iface", tb.ServerIf, "-root", s.dir)
		checkOneLine(t, "without "+missing, out, code, "missing: CAP_"+strings.ToUpper(missing))
	}

	sp := setpriv(caps)
	testbedtest.StartServer(t, tb, sp[0], append(sp[1:], xhttpdBin, "-iface", tb.ServerIf, "-root", s.dir)...)
	if _, err := curlGet(tb, "http://[2001:2::1]/1m.bin", t.TempDir(), s.files["/1m.bin"]); err != nil {
		t.Errorf("as nobody with %v: %v", caps, err)
	}
}

// readableByAll opens dir and the directories above it, up to the temporary
// directory, to other users: t.TempDir makes them 0700, and the server runs
// as nobody here.
func readableByAll(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}
