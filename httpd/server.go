// Package httpd is a small HTTP/1.1 server for static files that runs on any
// net.Listener: the kernel's, or the gVisor netstack's gonet listener that
// sits on the AF_XDP data path. Because it is the same server on both, the
// kernel stack is the control in every experiment.
//
// It owns: parsing HTTP/1.1 request heads (bounded by Config's limits),
// keep-alive and pipelining, resolving request paths to files beneath
// Config.Root without any way out of it, writing responses, its connections'
// lifecycle (timeouts, graceful Shutdown, recovering from panics) and a few
// counters (Stats).
//
// It does not own: listeners, TLS, HTTP/2, request bodies (a request that has
// one is answered and its connection closed), ranges, conditional requests,
// compression, directory listings, caching file contents, or anything about
// XDP and netstack.
//
// Behaviour worth knowing:
//   - GET and HEAD only; other methods get 405 with Allow: GET, HEAD.
//   - A directory is served by its index.html; named without its trailing
//     slash it is redirected (301) to the name with one, so relative links
//     in the index work. No index.html means 404: there are no listings.
//   - Paths with "..", encoded slashes or backslashes, NUL or control bytes
//     get 400; symbolic links may lead anywhere beneath Root but not out of
//     it (os.Root refuses, and the client sees 404).
//   - Request bodies are never read. A GET or HEAD with one gets 400, other
//     methods 405, and the connection is closed after the answer.
//   - A request head that breaks the syntax or a limit (400, 414, 431, 505)
//     or takes longer than ReadHeaderTimeout (408) is answered with
//     Connection: close. Errors about a well-formed request (a bad path,
//     404, 405 without a body) keep the connection.
//
// Hot-path cost: a connection's buffers come from a sync.Pool and are reused
// for every request on it; parsing a request head and writing a response
// head allocate nothing. What remains per request is opening and stat'ing
// the file (os.Root, os.File, fs.FileInfo).
package httpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config configures a Server. Zero values mean the defaults named below.
type Config struct {
	Root              string        // directory served
	MaxRequestLine    int           // default 8 KiB; longer request lines get 414
	MaxHeaderBytes    int           // default 16 KiB for the whole header block; more gets 431
	MaxHeaders        int           // default 100 header fields; more gets 431
	ReadHeaderTimeout time.Duration // default 10s from a request's first byte to its end; then 408 and close
	IdleTimeout       time.Duration // default 60s waiting for the next request on a keep-alive connection; then close
	Logger            *slog.Logger  // nil means slog.Default()
}

const (
	defaultMaxRequestLine    = 8 << 10
	defaultMaxHeaderBytes    = 16 << 10
	defaultMaxHeaders        = 100
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 60 * time.Second
)

// ErrServerClosed is returned by Serve when it is called after Shutdown.
var ErrServerClosed = errors.New("httpd: server shut down")

// Server serves the files beneath one directory. Its methods are safe for
// concurrent use; one Server may Serve several listeners.
type Server struct {
	cfg  Config
	lim  limits
	root *os.Root
	log  *slog.Logger
	date dateCache

	inShutdown atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}

	stats counters
}

// New checks cfg and opens Root. Root must exist and be a directory; it is
// held open (as an os.Root), so renaming it later does not change what is
// served.
func New(cfg Config) (*Server, error) {
	if cfg.Root == "" {
		return nil, errors.New("httpd: Config.Root is empty: name the directory to serve")
	}
	fi, err := os.Stat(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("httpd: root %q: %w", cfg.Root, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("httpd: root %q is not a directory", cfg.Root)
	}
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"MaxRequestLine", int64(cfg.MaxRequestLine)},
		{"MaxHeaderBytes", int64(cfg.MaxHeaderBytes)},
		{"MaxHeaders", int64(cfg.MaxHeaders)},
		{"ReadHeaderTimeout", int64(cfg.ReadHeaderTimeout)},
		{"IdleTimeout", int64(cfg.IdleTimeout)},
	} {
		if v.n < 0 {
			return nil, fmt.Errorf("httpd: Config.%s is negative (%d)", v.name, v.n)
		}
	}
	setDefault(&cfg.MaxRequestLine, defaultMaxRequestLine)
	setDefault(&cfg.MaxHeaderBytes, defaultMaxHeaderBytes)
	setDefault(&cfg.MaxHeaders, defaultMaxHeaders)
	setDefault(&cfg.ReadHeaderTimeout, defaultReadHeaderTimeout)
	setDefault(&cfg.IdleTimeout, defaultIdleTimeout)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("httpd: open root %q: %w", cfg.Root, err)
	}
	return &Server{
		cfg:  cfg,
		lim:  limits{requestLine: cfg.MaxRequestLine, headerBytes: cfg.MaxHeaderBytes, headers: cfg.MaxHeaders},
		root: root,
		log:  cfg.Logger.With("component", "httpd"),

		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Serve accepts connections on l and serves each on its own goroutine. It
// returns nil once l is closed, whether by Shutdown or by the caller (for a
// listener whose Accept reports net.ErrClosed; gonet's does not, so close a
// netstack listener through Shutdown). Transient accept errors (out of file
// descriptors, aborted handshakes) are logged and retried with a backoff;
// any other accept error ends Serve and is returned, wrapped. Serve after
// Shutdown closes l and returns ErrServerClosed.
func (s *Server) Serve(l net.Listener) error {
	if !s.track(l) {
		l.Close()
		return ErrServerClosed
	}
	defer s.untrack(l)

	var backoff time.Duration
	for {
		nc, err := l.Accept()
		if err != nil {
			if s.inShutdown.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !temporary(err) {
				return fmt.Errorf("httpd: accept on %s: %w", l.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("accept failed; retrying", "addr", l.Addr(), "err", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		s.stats.accepted.Add(1)
		c := newConn(s, nc)
		if !s.addConn(c) {
			// Shutdown began after Accept returned.
			nc.Close()
			c.release()
			continue
		}
		go c.serve()
	}
}

// temporary reports whether an accept error is about this moment rather
// than the listener: the next Accept may well succeed.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// shutdownPollMax bounds how long Shutdown sleeps between looks at its
// connections; it starts at a millisecond so that a quiet server stops fast.
const shutdownPollMax = 100 * time.Millisecond

// Shutdown stops accepting (it closes every listener given to Serve), closes
// connections that are idle between requests, lets active ones finish the
// response they are writing and then closes them too, and returns when none
// is left. If ctx ends first, the remaining connections are closed at once
// and ctx's error is returned. After a complete Shutdown the Server's Root
// is closed; the Server cannot be used again.
func (s *Server) Shutdown(ctx context.Context) error {
	s.inShutdown.Store(true)
	var lerr error
	s.mu.Lock()
	for l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) && lerr == nil {
			lerr = fmt.Errorf("httpd: close listener %s: %w", l.Addr(), err)
		}
	}
	s.mu.Unlock()

	wait := time.Millisecond
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		if s.closeIdle() == 0 {
			s.root.Close()
			return lerr
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, shutdownPollMax)
			timer.Reset(wait)
		}
	}
}

func (s *Server) track(l net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	s.listeners[l] = struct{}{}
	return true
}

func (s *Server) untrack(l net.Listener) {
	s.mu.Lock()
	delete(s.listeners, l)
	s.mu.Unlock()
}

func (s *Server) addConn(c *conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inShutdown.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) removeConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// closeIdle closes the connections waiting for a next request and returns
// how many connections remain open. A connection between requests is
// claimed with a compare-and-swap on its state, so one that has just
// received a request is left to finish it.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(stateIdle, stateClosed) {
			c.nc.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.state.Store(stateClosed)
		c.nc.Close()
	}
}

// Stats is a snapshot of a Server's counters.
type Stats struct {
	Accepted        uint64 // connections accepted
	Open            int    // connections open now
	Requests        uint64 // request heads read (well-formed or not)
	Status2xx       uint64 // responses by status class
	Status3xx       uint64
	Status4xx       uint64
	Status5xx       uint64
	RejectedByLimit uint64 // 408, 414 and 431: a client that hit a Config limit
	Panics          uint64 // connection handlers that panicked (recovered, connection closed)
}

type counters struct {
	accepted, requests, rejected, panics atomic.Uint64
	class                                [6]atomic.Uint64 // by status/100
}

// Stats returns the counters so far. The counters are read one by one, so a
// snapshot taken under load may be off by the requests in flight.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	open := len(s.conns)
	s.mu.Unlock()
	return Stats{
		Accepted:        s.stats.accepted.Load(),
		Open:            open,
		Requests:        s.stats.requests.Load(),
		Status2xx:       s.stats.class[2].Load(),
		Status3xx:       s.stats.class[3].Load(),
		Status4xx:       s.stats.class[4].Load(),
		Status5xx:       s.stats.class[5].Load(),
		RejectedByLimit: s.stats.rejected.Load(),
		Panics:          s.stats.panics.Load(),
	}
}

// dateCache keeps the Date header's value for the current second, so that
// formatting a time happens once a second instead of once a request.
type dateCache struct {
	p atomic.Pointer[dateEntry]
}

type dateEntry struct {
	sec int64
	b   []byte
}

func (d *dateCache) get(now time.Time) []byte {
	sec := now.Unix()
	if e := d.p.Load(); e != nil && e.sec == sec {
		return e.b
	}
	e := &dateEntry{sec: sec, b: now.UTC().AppendFormat(make([]byte, 0, len(timeFormat)), timeFormat)}
	d.p.Store(e)
	return e.b
}

// timeFormat is RFC 9110's IMF-fixdate, as net/http's TimeFormat.
const timeFormat = "Mon, 02 Jan 2006 15:04:05 GMT"
