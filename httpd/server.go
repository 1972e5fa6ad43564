// Package httpd is a small HTTP/1.1 server for static files that runs on any
// net.Listener: the kernel's, or the gVisor netstack's gonet listener that
// sits on the AF_XDP data path. Because it is the same server on both, the
// kernel stack is the control in every experiment. Like kHTTPd it serves
// static content itself, as close to "copy to the network" as it can, and
// hands dynamic paths to an ordinary HTTP server.
//
// It owns: parsing HTTP/1.1 request heads (bounded by Config's limits),
// keep-alive and pipelining, resolving request paths to files beneath
// Config.Root without any way out of it, a cache of those files with their
// response heads prepared (following Root through inotify; reloaded whole
// by Reload), conditional and range
// requests, forwarding dynamic paths to an upstream (Config.Proxy), its
// connections' lifecycle (timeouts, a connection limit, graceful Shutdown,
// recovering from panics), an access log, counters (Stats) and a status
// page (StatusHandler).
//
// It does not own: listeners, signals (the caller calls Reload, on SIGHUP
// say), TLS, HTTP/2, compression, directory listings, multipart ranges,
// If-Match and If-Unmodified-Since, protocol upgrades, or anything about XDP
// and netstack.
//
// Behaviour worth knowing:
//   - Static files: GET and HEAD; other methods get 405 with Allow: GET,
//     HEAD. Content-Type by extension; Last-Modified, an ETag made of the
//     modification time and size, Accept-Ranges, Date and Server.
//     If-None-Match, else If-Modified-Since, give 304; a single byte Range
//     gives 206 (with If-Range honoured) or 416; several ranges get the
//     whole file.
//   - The cache holds files of 1 to CacheMax bytes, up to CacheTotal in
//     all, read when the Server is made and again on each Reload, which
//     swaps the whole cache at once (keeping what did not change). A file
//     modified within the last second may still be being written: it is
//     left to the disk, and a second load a second later caches it. One
//     that changes while it is read is read again, and left to the disk if
//     it keeps changing. So the cache never holds a torn file. Between
//     reloads the cache follows Root (watch.go): a file edited, added or
//     removed is served fresh within a second; one that a writer holds
//     open keeps its previous version until the writer closes it. What the
//     cache does not hold (bigger files, new files being written) is read
//     from disk for each request.
//   - A directory is served by its index.html; named without its trailing
//     slash it is redirected (301) to the name with one, so relative links
//     in the index work. No index.html means 404: there are no listings.
//   - Paths with "..", encoded slashes or backslashes, NUL or control bytes
//     get 400; symbolic links may lead anywhere beneath Root but not out of
//     it (os.Root refuses, and the client sees 404; the cache loads through
//     os.Root too).
//   - The dynamic fallback: a request under one of Config.Dynamic's prefixes
//     (matched on the decoded path), and with ProxyMisses one that Root has
//     no file or method for, goes to Config.Proxy through the kernel's
//     sockets with X-Forwarded-For, its body (by Content-Length, or chunked)
//     included. An upstream that cannot be reached gives 502 within
//     ProxyDialTimeout, one that does not answer in time 504. An upstream
//     body that breaks off, after the head went out, ends the connection
//     without ending the response (no last chunk, or short of its
//     Content-Length), so the client can tell. A client's Upgrade is not
//     forwarded, and an upstream's 101 gets 502.
//   - Transfer-Encoding: only chunked is read. A request whose last coding
//     is not chunked, or with two Transfer-Encoding fields, gets 400 and is
//     closed (RFC 9112 section 6.3); other codings before chunked get 501.
//   - Request bodies are read only for the upstream. A static GET or HEAD
//     with one gets 400, other methods 405, and the connection is closed
//     after the answer.
//   - A request head that breaks the syntax or a limit (400, 414, 431, 505)
//     or takes longer than ReadHeaderTimeout (408) is answered with
//     Connection: close. Errors about a well-formed request (a bad path,
//     404, 405 without a body) keep the connection. Connections over
//     MaxConns get 503 and are closed; idle ones are closed after
//     IdleTimeout (up to 1.125 times it, so that a busy connection need
//     not renew its deadline per request), and those whose client stops
//     reading after WriteTimeout
//     (up to 1.5 times it; a body goes out in writes of 64 KiB, each of
//     which has WriteTimeout). An error answer to a bad request head has at
//     most 5 seconds, or WriteTimeout if that is shorter. Every limit hit
//     is counted.
//   - The access log, in the Common Log Format, Apache's combined format or
//     JSON (Config.AccessLogFormat), is written by a goroutine of its own;
//     a request's line is queued once its response is flushed. When the
//     writer falls behind, lines are dropped and counted rather than
//     requests slowed. A write that fails (a full disk) loses its
//     lines; it is counted (Stats.AccessLogErrors), and the first failure
//     of a spell is logged. Shutdown writes out what is queued.
//
// Hot-path cost: a connection's buffers come from a sync.Pool and are reused
// for every request on it, and it is served on a pooled goroutine whose
// stack has already grown (workers.go); parsing a request head, finding a
// cached file and writing its response allocate nothing. A small response
// leaves in one write (its body copied behind its head in the write buffer);
// a bigger body starts in the same writev as its head and goes on in writes
// of 64 KiB. A file from disk costs opening and stat'ing it (os.Root,
// os.File, fs.FileInfo); the proxy allocates freely.
package httpd

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	Root string // directory served

	// The cache: files of at most CacheMax bytes are held in memory with
	// their response heads prepared, up to CacheTotal bytes in all; the rest
	// are read from disk for each request. Reload reads Root again.
	CacheMax   int64 // default 1 MiB; negative disables the cache
	CacheTotal int64 // default 256 MiB; a Reload holds two caches for a moment
	NoWatch    bool  // do not follow Root with inotify: the cache changes only on Reload

	// ServeDotFiles serves names with a segment that starts with a dot
	// (.git/, .env). By default they are 404, as if absent (and so go to the
	// upstream with ProxyMisses), except /.well-known/, and the cache does
	// not load them.
	ServeDotFiles bool

	// The dynamic fallback: requests whose path is under one of Dynamic's
	// prefixes (and, with ProxyMisses, those Root has no file for) go to the
	// HTTP server at Proxy, through the kernel's sockets.
	Proxy            string        // upstream URL, http://host:port[/path]; empty for none
	Dynamic          []string      // path prefixes: "/cgi-bin/" matches below it, "/api" also /api itself
	ProxyMisses      bool          // also send what would be 404 (and 405) to the upstream
	ProxyDialTimeout time.Duration // default 1s to connect to the upstream; then 502
	ProxyTimeout     time.Duration // default 60s for the upstream's response head; then 504

	// Limits. Each one hit is counted in Stats.
	MaxRequestLine    int           // default 8 KiB; longer request lines get 414
	MaxHeaderBytes    int           // default 16 KiB for the whole header block; more gets 431
	MaxHeaders        int           // default 100 header fields; more gets 431
	ReadHeaderTimeout time.Duration // default 10s from a request's first byte to its end; then 408 and close
	IdleTimeout       time.Duration // default 60s waiting for the next request on a keep-alive connection; then close (within 1.125 times it)
	WriteTimeout      time.Duration // default 60s for each write to the client (64 KiB of body at most) to complete; then close
	MaxConns          int           // default 10000 open connections; more get 503 and close

	AccessLog       io.Writer    // a line per request, written in the background; nil for none
	AccessLogFormat LogFormat    // LogCLF (the default), LogCombined or LogJSON
	Logger          *slog.Logger // nil means slog.Default()

	// Observe, if set, is called once per request answered (or not: see
	// OutcomeError), and once per connection refused over MaxConns, with
	// how it was answered, its status (0 for none) and the time from the
	// request's first byte until its response was written (a pipelined
	// one's: buffered). It runs on the connection's goroutine, after the
	// response is out, so it must be quick and safe for concurrent use:
	// a Prometheus histogram's Observe, say.
	Observe func(o Outcome, status int, d time.Duration)

	// ServerVersion is the Server header of every response and the
	// ServerVersion of the status page: a product and its version, say
	// "xhttpd/1.2.3" (RFC 9110 section 10.2.4). Default "xhttpd".
	ServerVersion string
}

const (
	defaultCacheMax          = 1 << 20
	defaultCacheTotal        = 256 << 20
	defaultProxyDialTimeout  = time.Second
	defaultProxyTimeout      = 60 * time.Second
	defaultMaxRequestLine    = 8 << 10
	defaultMaxHeaderBytes    = 16 << 10
	defaultMaxHeaders        = 100
	defaultReadHeaderTimeout = 10 * time.Second
	defaultIdleTimeout       = 60 * time.Second
	defaultWriteTimeout      = 60 * time.Second
	defaultMaxConns          = 10000
	defaultServerVersion     = "xhttpd"
)

// Defaults is the Config that New makes of a zero one (Root and Logger
// aside): the one place httpd's defaults are written, for the flags of a
// program that wants to show them.
func Defaults() Config {
	var c Config
	c.fillDefaults()
	return c
}

// fillDefaults sets every zero limit and timeout to its default.
func (cfg *Config) fillDefaults() {
	setDefault(&cfg.CacheMax, defaultCacheMax)
	setDefault(&cfg.CacheTotal, defaultCacheTotal)
	setDefault(&cfg.ProxyDialTimeout, defaultProxyDialTimeout)
	setDefault(&cfg.ProxyTimeout, defaultProxyTimeout)
	setDefault(&cfg.MaxRequestLine, defaultMaxRequestLine)
	setDefault(&cfg.MaxHeaderBytes, defaultMaxHeaderBytes)
	setDefault(&cfg.MaxHeaders, defaultMaxHeaders)
	setDefault(&cfg.ReadHeaderTimeout, defaultReadHeaderTimeout)
	setDefault(&cfg.IdleTimeout, defaultIdleTimeout)
	setDefault(&cfg.WriteTimeout, defaultWriteTimeout)
	setDefault(&cfg.MaxConns, defaultMaxConns)
	setDefault(&cfg.ServerVersion, defaultServerVersion)
}

// ErrServerClosed is returned by Serve when it is called after Shutdown.
var ErrServerClosed = errors.New("httpd: server shut down")

// Server serves the files beneath one directory. Its methods are safe for
// concurrent use; one Server may Serve several listeners.
type Server struct {
	cfg     Config
	lim     limits
	root    *os.Root
	log     *slog.Logger
	date    dateCache
	started time.Time
	// serverDate starts every response head after its status line: the
	// Server header, then the name of the Date one.
	serverDate string

	cache       atomic.Pointer[snapshot] // nil when the cache is disabled
	reloadMu    sync.Mutex
	settleTimer *time.Timer // the load that follows one that found fresh files; under reloadMu
	watch       *watcher    // follows Root; nil with NoWatch or without inotify
	proxy       *proxy      // nil without an upstream
	alog        *accessLog  // nil without an access log
	timed       bool        // a request's duration is wanted: it is timed from its first byte

	// ctx ends when Shutdown gives up on the connections still open: it
	// cancels what they wait for upstream.
	ctx    context.Context
	cancel context.CancelFunc

	inShutdown atomic.Bool
	refusing   atomic.Int32 // goroutines answering 503 now

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	workers   workers // the goroutines connections are served on

	stats counters
}

// New checks cfg, opens Root and loads the cache. Root must exist and be a
// directory; it is held open (as an os.Root), so renaming it later does not
// change what is served.
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
		{"CacheTotal", cfg.CacheTotal},
		{"ProxyDialTimeout", int64(cfg.ProxyDialTimeout)},
		{"ProxyTimeout", int64(cfg.ProxyTimeout)},
		{"MaxRequestLine", int64(cfg.MaxRequestLine)},
		{"MaxHeaderBytes", int64(cfg.MaxHeaderBytes)},
		{"MaxHeaders", int64(cfg.MaxHeaders)},
		{"ReadHeaderTimeout", int64(cfg.ReadHeaderTimeout)},
		{"IdleTimeout", int64(cfg.IdleTimeout)},
		{"WriteTimeout", int64(cfg.WriteTimeout)},
		{"MaxConns", int64(cfg.MaxConns)},
	} {
		if v.n < 0 {
			return nil, fmt.Errorf("httpd: Config.%s is negative (%d)", v.name, v.n)
		}
	}
	cfg.fillDefaults()
	if cfg.AccessLogFormat > LogJSON {
		return nil, fmt.Errorf("httpd: Config.AccessLogFormat %d: want LogCLF, LogCombined or LogJSON", cfg.AccessLogFormat)
	}
	if !validServerVersion(cfg.ServerVersion) {
		return nil, fmt.Errorf("httpd: Config.ServerVersion %q: want printable ASCII, as a header value", cfg.ServerVersion)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Proxy == "" && (len(cfg.Dynamic) > 0 || cfg.ProxyMisses) {
		return nil, errors.New("httpd: Config.Dynamic or ProxyMisses without Config.Proxy: name the upstream")
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("httpd: open root %q: %w", cfg.Root, err)
	}
	s := &Server{
		cfg:     cfg,
		lim:     limits{requestLine: cfg.MaxRequestLine, headerBytes: cfg.MaxHeaderBytes, headers: cfg.MaxHeaders},
		root:    root,
		log:     cfg.Logger.With("component", "httpd"),
		started: time.Now(),
		workers: workers{handle: (*conn).serve, now: time.Now},

		serverDate: "Server: " + cfg.ServerVersion + "\r\nDate: ",

		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Proxy != "" {
		if s.proxy, err = newProxy(cfg, s); err != nil {
			root.Close()
			return nil, err
		}
	}
	if cfg.CacheMax >= 0 && !cfg.NoWatch {
		s.watch = s.watchRoot()
	}
	if err := s.reload(true, slog.LevelDebug); err != nil {
		s.watch.close()
		root.Close()
		return nil, err
	}
	s.watch.start()
	if cfg.AccessLog != nil {
		s.alog = newAccessLog(cfg.AccessLog, s.log, cfg.AccessLogFormat)
		s.timed = cfg.AccessLogFormat == LogJSON
	}
	s.timed = s.timed || cfg.Observe != nil
	return s, nil
}

// validServerVersion reports whether v may be a Server header's value:
// printable ASCII, spaces inside only.
func validServerVersion(v string) bool {
	if v == "" || v[0] == ' ' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Serve accepts connections on l and serves each on a goroutine of its own
// while it lasts (workers.go). It returns nil once l is closed, whether by
// Shutdown or by the caller (for a listener whose Accept reports
// net.ErrClosed; gonet's does not, so close a netstack listener through
// Shutdown). Transient accept errors (out of file descriptors, aborted
// handshakes) are logged and retried with a backoff; any other accept error
// ends Serve and is returned, wrapped. Serve after Shutdown closes l and
// returns ErrServerClosed.
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
		switch s.addConn(c) {
		case connAdded:
			s.workers.serve(c)
		case connShutdown:
			// Shutdown began after Accept returned.
			nc.Close()
			c.release()
		case connFull:
			c.release()
			s.refuse(nc)
		}
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
// is closed and the access log written out; the Server cannot be used
// again. On a context timeout, the connections are closed but may take a
// moment to notice; access log lines they still add are lost.
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
			s.stop()
			return lerr
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			s.stop()
			return ctx.Err()
		case <-timer.C:
			wait = min(2*wait, shutdownPollMax)
			timer.Reset(wait)
		}
	}
}

// stop releases what the Server holds once its connections are closed:
// the access log is written out, upstream connections and Root closed.
func (s *Server) stop() {
	s.cancel()
	s.workers.close()
	s.watch.close()
	s.reloadMu.Lock()
	if s.settleTimer != nil {
		s.settleTimer.Stop()
	}
	s.reloadMu.Unlock()
	if s.alog != nil {
		s.alog.close()
	}
	if s.proxy != nil {
		s.proxy.close()
	}
	s.root.Close()
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

const (
	connAdded = iota
	connShutdown
	connFull
)

func (s *Server) addConn(c *conn) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.inShutdown.Load():
		return connShutdown
	case len(s.conns) >= s.cfg.MaxConns:
		return connFull
	}
	s.conns[c] = struct{}{}
	return connAdded
}

const (
	// maxRefusing bounds the goroutines answering 503 at once; beyond it,
	// connections over MaxConns are closed without a word.
	maxRefusing = 64
	// refuseTimeout bounds one 503, lingering included.
	refuseTimeout = time.Second
)

// refuse answers a connection over MaxConns with 503 and closes it, on a
// goroutine of its own so that Accept goes on, without a pooled conn or its
// buffers: an overload is no time to spend memory. The request is not read;
// the 503 goes out at once, then the connection lingers briefly so that
// closing it with the request unread does not reset the answer away.
func (s *Server) refuse(nc net.Conn) {
	s.stats.refused.Add(1)
	if s.refusing.Add(1) > maxRefusing {
		s.refusing.Add(-1)
		nc.Close()
		return
	}
	go func() {
		defer s.refusing.Add(-1)
		defer func() {
			nc.SetDeadline(time.Time{}) // see conn.serve: no timer outlives the conn
			nc.Close()
		}()
		s.stats.response(503)
		start := time.Now()
		nc.SetDeadline(start.Add(refuseTimeout))
		text := statusText(503)
		resp := fmt.Appendf(nil, "HTTP/1.1 503 %s\r\n%s%s\r\nRetry-After: 1\r\n"+
			"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n503 %s\n",
			text, s.serverDate, s.date.get(time.Now()), len(text)+5, text)
		_, err := nc.Write(resp)
		if s.cfg.Observe != nil {
			s.cfg.Observe(OutcomeError, 503, time.Since(start))
		}
		if err != nil {
			return
		}
		if cw, ok := nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
			io.CopyN(io.Discard, nc, lingerBytes)
		}
	}()
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
