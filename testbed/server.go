package testbed

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Server is a program serving in a testbed's server namespace, started by
// StartServer in a process group of its own, so that a terminal's Ctrl-C
// reaches only the caller, which stops the server in order.
type Server struct {
	Name string    // names it in errors and before each line of its output
	Cmd  *exec.Cmd // its process, for signals; read-only
	// SIGINTKills accepts death by Stop's SIGINT as a clean exit, for
	// programs that do not handle it.
	SIGINTKills bool

	tb     *Testbed
	path   string
	done   chan struct{}
	err    error // from Wait; valid once done is closed
	waited atomic.Bool
	stop   sync.Once
}

// stopTimeout is how long Stop waits after SIGINT before it kills: more
// than the 5 s that xhttpd's -shutdown-timeout gives open requests.
const stopTimeout = 10 * time.Second

// StartServer runs path with args in the server namespace. Its standard
// output and error go to out a line at a time, each after name and "| ", so
// that its log is told apart from the caller's. Give path as a path: `ip
// netns exec` searches PATH for a bare name.
//
// The server gets SIGKILL if the thread that started it ends (the
// parent-death signal), so that it does not outlive a caller killed
// outright in a namespace nobody can name any more; Go ends a thread only
// when a goroutine exits while locked to it.
func (tb *Testbed) StartServer(name string, out io.Writer, path string, args ...string) (*Server, error) {
	cmd := tb.ServerCmd(context.Background(), path, args...)
	if tb.ServerCPUs != "" {
		// taskset sets the affinity and execs path: the same process,
		// and its threads and children inherit the affinity.
		cmd = tb.ServerCmd(context.Background(), "taskset", append([]string{"-c", tb.ServerCPUs, path}, args...)...)
	}
	pw := &prefixWriter{w: out, prefix: name + "| "}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// A child that keeps the output open (a server's worker) does not
	// keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	s := &Server{Name: name, Cmd: cmd, tb: tb, path: path, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		pw.Flush()
		close(s.done)
	}()
	return s, nil
}

// ServerAddrs are the server's addresses with port, IPv4 first, as dial
// functions take them.
func (tb *Testbed) ServerAddrs(port uint16) []string {
	return []string{netip.AddrPortFrom(tb.ServerV4, port).String(), netip.AddrPortFrom(tb.ServerV6, port).String()}
}

// WaitHTTP waits, for at most timeout, until a GET / on each of addrs from
// the client namespace gets an HTTP response; it fails at once if the
// server exits. A TCP connect is not enough: while the XDP program is not
// yet attached, the kernel accepts on port 80 if anything listens there.
func (s *Server) WaitHTTP(ctx context.Context, timeout time.Duration, addrs ...string) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	dial := s.tb.ClientDialer()
	for _, a := range addrs {
		err := retry(ctx, func(ctx context.Context) error { return ProbeHTTP(ctx, dial, a) })
		if err != nil {
			select {
			case <-s.done:
				return fmt.Errorf("%s exited before answering on %s: %v", s.Name, a, s.err)
			default:
			}
			return fmt.Errorf("%s never answered on %s: %w", s.Name, a, err)
		}
	}
	return nil
}

// ProbeHTTP sends a GET / to addr on a connection from dial and reports
// whether an HTTP response came back within a second.
func ProbeHTTP(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	line := make([]byte, 9)
	if _, err := io.ReadFull(c, line); err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return fmt.Errorf("not HTTP: %q", line)
	}
	return nil
}

// retry calls try until it succeeds or ctx ends, at growing intervals up
// to 100 ms, and returns ctx's error with the last try's.
func retry(ctx context.Context, try func(context.Context) error) error {
	for delay := 5 * time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		err := try(ctx)
		if err == nil {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// Done is closed when the server has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// Wait waits for the server to exit and returns how it did. The exit is
// then the caller's business: Stop no longer reports it.
func (s *Server) Wait() error {
	<-s.done
	s.waited.Store(true)
	return s.err
}

// Stop interrupts the server (SIGINT to its process group), gives it 10 s
// to exit, then kills the group. It reports a server that had exited
// before (unless Wait took that exit), one that did not exit in time, and
// one that exited with an error. Later calls do nothing.
func (s *Server) Stop() (err error) {
	s.stop.Do(func() { err = s.interrupt() })
	return err
}

func (s *Server) interrupt() error {
	select {
	case <-s.done:
		if s.waited.Load() {
			return nil
		}
		return fmt.Errorf("%s exited by itself: %v", s.Name, s.err)
	default:
	}
	pgid := s.Cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(stopTimeout):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
		return fmt.Errorf("%s did not exit within %v of SIGINT; killed", s.Name, stopTimeout)
	}
	if s.err == nil {
		return nil
	}
	if ws, ok := s.Cmd.ProcessState.Sys().(syscall.WaitStatus); ok && s.SIGINTKills && ws.Signaled() && ws.Signal() == syscall.SIGINT {
		return nil
	}
	return fmt.Errorf("%s: %v", s.Name, s.err)
}

// Pid returns the server's process id, for its CPU time. `ip netns exec`
// execs the server, so the started process is the server itself; Pid makes
// sure, because an ip that forked would have its own CPU time measured.
func (s *Server) Pid() (int, error) {
	pid := s.Cmd.Process.Pid
	exe, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return 0, fmt.Errorf("%s: %w", s.Name, err)
	}
	exe = strings.TrimSuffix(exe, " (deleted)") // rebuilt while it runs
	want, err := filepath.EvalSymlinks(s.path)
	if err != nil {
		want = s.path
	}
	if exe != want {
		return 0, fmt.Errorf("%s: pid %d runs %s, not %s: did ip netns exec fork?", s.Name, pid, exe, want)
	}
	return pid, nil
}

// prefixWriter writes each line with a prefix.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	if len(p.buf) > 64<<10 { // a very long line: do not hold it forever
		p.flushLocked()
	}
	return len(b), nil
}

// Flush writes what is left of a last line without its newline.
func (p *prefixWriter) Flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.flushLocked()
}

func (p *prefixWriter) flushLocked() {
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}
