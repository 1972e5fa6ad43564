// Package e2e tests the xhttpd binary end to end on a testbed: two network
// namespaces joined by a veth pair, with real clients (curl, Go's
// http.Client, raw TCP) in the client namespace. The tests need root and
// fail without it.
package e2e

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
	"github.com/xhttpd/xhttpd/testbed/testbedtest"
)

// xhttpdBin is the binary under test, built once by TestMain.
var xhttpdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xhttpd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xhttpdBin, err = build(dir, "cmd/xhttpd")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build builds the module's command in pkg (cmd/xhttpd) into dir and
// returns its path.
func build(dir, pkg string) (string, error) {
	bin := filepath.Join(dir, path.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/xhttpd/xhttpd/"+pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// buildT is build for a test, into its temporary directory.
func buildT(t *testing.T, pkg string) string {
	t.Helper()
	bin, err := build(t.TempDir(), pkg)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// site is a document root with known contents.
type site struct {
	dir   string
	files map[string][]byte // URL path -> body
}

func newSite(t *testing.T) *site {
	t.Helper()
	s := &site{dir: t.TempDir(), files: map[string][]byte{}}
	s.add(t, "/1k.bin", random(t, 1<<10))
	s.add(t, "/1m.bin", random(t, 1<<20))
	s.add(t, "/index.html", []byte("<h1>xhttpd</h1>\n"))
	return s
}

// add writes a file and dates it back, so that httpd's cache takes it at
// start.
func (s *site) add(t *testing.T, path string, body []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(s.dir, path), body, 0o644); err != nil {
		t.Fatal(err)
	}
	settle(t, filepath.Join(s.dir, path))
	s.files[path] = body
}

// settle backdates path, a file or a tree, so that the cache takes it at start
// (it leaves files modified within the last second to the disk).
func settle(t *testing.T, path string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	err := filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// adminAddr is where the tests have xhttpd serve -admin, in the server
// namespace.
const adminAddr = "127.0.0.1:9100"

// serve brings up a fresh single-queue testbed and a site, and xhttpd
// serving the site on it with args.
func serve(t *testing.T, args ...string) (*testbed.Testbed, *site, *testbedtest.Server) {
	t.Helper()
	tb := testbedtest.New(t, testbed.Options{})
	s := newSite(t)
	return tb, s, startServer(t, tb, s.dir, args...)
}

// clientNAPI puts the client's veth end in NAPI mode until the test ends:
// only then does it take the frames the XDP program answers with itself
// (XDP_TX), as a real NIC's peer always does.
func clientNAPI(t *testing.T, tb *testbed.Testbed) {
	t.Helper()
	napi, err := tb.ClientNAPI()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { napi.Close() })
}

// startServer runs xhttpd on the testbed's server end with the site as
// root and waits until port 80 answers on both address families. It stops
// the server when the test ends.
func startServer(t *testing.T, tb *testbed.Testbed, root string, args ...string) *testbedtest.Server {
	t.Helper()
	return testbedtest.StartServer(t, tb, xhttpdBin, append([]string{"-iface", tb.ServerIf, "-root", root}, args...)...)
}

// logStall logs what tells a stall's cause apart, while the server still
// runs: its goroutines with how long each has waited and its TCP, queue and
// link counters (from -admin at adminAddr), the client's neighbour table
// and sockets, both veth ends' counters, and the server kernel's
// neighbours (it answers ARP and ND for the served addresses). A server
// that does not answer at all has its threads
// logged (state, CPU time, kernel stack, and their stacks in gdb) and is
// then sent SIGQUIT, for the Go runtime's goroutine dump: that is how
// gVisor's processor was found spinning on a locked endpoint, on the one P,
// in the stalls of every connection at once that CI showed now and then
// (third_party/gvisor-patches/0017).
func logStall(t *testing.T, tb *testbed.Testbed) {
	t.Helper()
	for _, c := range []struct {
		server, counters bool // run in the server's namespace; keep only lines of counters above 0
		admin            bool // asks the server itself: failing, it answers nothing
		argv             []string
	}{
		{true, false, true, []string{"curl", "-sS", "--max-time", "5", "http://" + adminAddr + "/debug/pprof/goroutine?debug=2"}},
		{true, true, false, []string{"curl", "-sS", "--max-time", "5", "http://" + adminAddr + "/metrics"}},
		{false, false, false, []string{"ip", "neigh"}},
		{false, false, false, []string{"ip", "-6", "neigh"}},
		{false, false, false, []string{"ss", "-tin"}},
		{false, false, false, []string{"ip", "-s", "link", "show", tb.ClientIf}},
		{true, false, false, []string{"ip", "-s", "link", "show", tb.ServerIf}},
		{true, false, false, []string{"ip", "neigh"}},
	} {
		// Each its own time: a server that does not answer must not
		// cost the client's sockets their turn.
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		cmd := tb.ClientCmd(ctx, c.argv[0], c.argv[1:]...)
		if c.server {
			cmd = tb.ServerCmd(ctx, c.argv[0], c.argv[1:]...)
		}
		out, err := cmd.CombinedOutput()
		cancel()
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			if c.counters && (strings.HasPrefix(l, "#") || strings.HasSuffix(l, " 0") || strings.Contains(l, "_bucket{")) {
				continue
			}
			keep = append(keep, l)
		}
		t.Logf("stall: %s (%v):\n%s", strings.Join(c.argv, " "), err, strings.Join(keep, "\n"))
		if c.admin && err != nil {
			logHungServer(t, tb) // it does not answer even for its goroutines
		}
	}
}

// watchStall runs logStall once if the client still waits after the given
// time, while it waits: once the client gives up, its sockets are gone (a
// handshake that keeps failing shows in ss as SYN-SENT only until then).
// stop ends the watch and waits for a log in progress.
func watchStall(t *testing.T, tb *testbed.Testbed, after time.Duration) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		select {
		case <-done:
		case <-time.After(after):
			t.Logf("stall: the client still waits after %v", after)
			logStall(t, tb)
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// logHungServer logs what shows where a server that answers nothing is
// stuck: each of its threads twice, a second apart (state, user and system
// ticks, CPU, where it waits in the kernel, then its kernel stack), their
// stacks in gdb, and the Go runtime's dump of every goroutine, which
// SIGQUIT makes the server write to stderr (the test logs it) as it ends.
func logHungServer(t *testing.T, tb *testbed.Testbed) {
	t.Helper()
	for _, c := range []struct{ what, script string }{
		{"threads", `for i in 1 2; do for p in $(pgrep -f -- "-iface $0 "); do for t in /proc/$p/task/*; do echo "$t $(cut -d' ' -f3,14,15,39 $t/stat) $(cat $t/wchan)"; [ $i = 2 ] && cat $t/stack; done; done; sleep 1; done`},
		{"threads in gdb", `for p in $(pgrep -f -- "-iface $0 "); do timeout 20 gdb -p $p -batch -ex 'info threads' -ex 'thread apply all bt 25'; done`},
		{"SIGQUIT", `pkill -QUIT -f -- "-iface $0 "`},
	} {
		out, err := exec.Command("sh", "-c", c.script, tb.ServerIf).CombinedOutput()
		t.Logf("stall: the server does not answer; its %s (%v):\n%s", c.what, err, out)
	}
}
