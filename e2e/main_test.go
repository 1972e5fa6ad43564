// Package e2e tests the xhttpd binary end to end on a testbed: two network
// namespaces joined by a veth pair, with real clients (curl, Go's
// http.Client, raw TCP) in the client namespace. The tests need root and
// fail without it.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

// xhttpdBin is the binary under test, built once by TestMain.
var xhttpdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "xhttpd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	xhttpdBin = filepath.Join(dir, "xhttpd")
	out, err := exec.Command("go", "build", "-o", xhttpdBin, "github.com/xhttpd/xhttpd/cmd/xhttpd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build xhttpd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
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

// server is a running xhttpd in the testbed's server namespace.
type server struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

// startServer runs xhttpd on the testbed's server end with the site as
// root and waits until port 80 answers on both address families. It stops
// the server when the test ends.
func startServer(t *testing.T, tb *testbed.Testbed, root string, args ...string) *server {
	t.Helper()
	return startProgram(t, tb, xhttpdBin, append([]string{"-iface", tb.ServerIf, "-root", root}, args...)...)
}

// startProgram is startServer for any server binary taking args.
func startProgram(t *testing.T, tb *testbed.Testbed, bin string, args ...string) *server {
	t.Helper()
	s := &server{stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = tb.ServerCmd(context.Background(), bin, args...)
	s.cmd.Stdout = os.Stdout
	s.cmd.Stderr = io.MultiWriter(s.stderr, prefixed(t))
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() { s.stop(t) })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, addr := range []string{"198.18.0.1:80", "[2001:2::1]:80"} {
		if err := waitHTTP(ctx, tb, addr, s.done); err != nil {
			t.Fatalf("%s %v never answered on %s: %v\n%s", filepath.Base(bin), args, addr, err, s.stderr)
		}
	}
	return s
}

// waitHTTP waits until a GET / on addr gets an HTTP response: a bare TCP
// connect is not enough, since the kernel also accepts on port 80 while the
// XDP program is not yet attached if something else listens there.
func waitHTTP(ctx context.Context, tb *testbed.Testbed, addr string, exited chan error) error {
	dial := tb.ClientDialer()
	for {
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("xhttpd exited: %v", err)
		default:
		}
		if err := get(ctx, dial, addr); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), addr string) error {
	actx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := dial(actx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	line := make([]byte, 12)
	if _, err := io.ReadFull(c, line); err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return fmt.Errorf("not HTTP: %q", line)
	}
	return nil
}

// stop sends SIGINT and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	if s.cmd.ProcessState != nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil && !isKilled(err) {
			t.Errorf("xhttpd exited with %v after SIGINT\n%s", err, s.stderr)
		}
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("xhttpd did not exit within 10s of SIGINT")
	}
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return true
		}
	}
	return false
}

// prefixed writes the server's log lines to the test log.
func prefixed(t *testing.T) io.Writer { return logWriter{t} }

type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log("xhttpd: " + strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
