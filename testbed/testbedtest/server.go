package testbedtest

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xhttpd/xhttpd/testbed"
)

// Server is a testbed.Server started by StartServer, its output kept.
type Server struct {
	*testbed.Server
	t   testing.TB
	out lockedBuffer
}

// StartServer starts path with args in tb's server namespace and waits
// until it answers HTTP on port 80 of both the server's addresses. Its
// output goes to the test's log as it comes; Stop runs when the test ends.
func StartServer(t testing.TB, tb *testbed.Testbed, path string, args ...string) *Server {
	t.Helper()
	name := filepath.Base(path)
	s := &Server{t: t}
	s.out.log = func(line string) { t.Log(line) }
	srv, err := tb.StartServer(name, &s.out, path, args...)
	if err != nil {
		t.Fatal(err)
	}
	s.Server = srv
	t.Cleanup(s.Stop)
	if err := srv.WaitHTTP(context.Background(), 20*time.Second, tb.ServerAddrs(80)...); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, s.Output())
	}
	return s
}

// Output is what the server has written to its standard output and error
// so far, each line after its name and "| ".
func (s *Server) Output() string { return s.out.String() }

// Stop is testbed.Server's Stop, failing the test on error.
func (s *Server) Stop() {
	if err := s.Server.Stop(); err != nil {
		s.t.Errorf("%v\n%s", err, s.Output())
	}
}

// lockedBuffer keeps the lines written to it, and logs each.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	log func(line string)
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.log(strings.TrimSuffix(string(p), "\n"))
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
