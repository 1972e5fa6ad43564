package httpd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Connection states. Shutdown closes only a connection in stateIdle (with a
// compare-and-swap, so one whose next request has just begun is left to
// finish it); the status page shows them all.
const (
	stateIdle     int32 = iota // waiting for the first byte of a request (a new or a keep-alive connection)
	stateReading               // reading a request head
	stateWriting               // answering from Root: a file, a redirect, an error
	stateProxying              // forwarding to the upstream and relaying its answer
	stateClosing               // after the last response: flushing, lingering
	stateClosed                // closed by Shutdown
)

const (
	// readBufSize holds a typical request head whole; longer lines are
	// reassembled by readLine up to the configured limits.
	readBufSize = 4 << 10
	// writeBufSize lets the response head and a small file leave in one
	// write; a bigger cached body starts in the same writev as the head,
	// and a bigger file from disk goes by io.ReaderFrom (sendfile on the
	// kernel stack) once the first buffer is out.
	writeBufSize = 16 << 10
	// maxKeptBuf is the largest parser buffer a pooled connection keeps; a
	// rare huge header should not pin memory in the pool.
	maxKeptBuf = 64 << 10
	// writeChunk is the most body one write to the client carries (a
	// head may go with it), a cached body's or a file's: every write gets
	// at least WriteTimeout (see arm), so a client must take writeChunk
	// bytes per WriteTimeout, not a whole body. Small enough for a slow
	// client on a fast server; big enough that the writes it costs do not
	// show in throughput.
	writeChunk = 64 << 10

	// lingerTimeout and lingerBytes bound how long and how much a closing
	// connection reads after its last response. Closing a socket with unread
	// input makes the kernel send RST, which can destroy the response before
	// the client reads it (the reason for net/http's closeWriteAndWait).
	lingerTimeout = 500 * time.Millisecond
	// maxDiscardBody is the largest request body on a static path that is
	// read and dropped rather than refused with 413.
	maxDiscardBody = 64 << 10
	lingerBytes    = 256 << 10
)

// errorWriteTimeout bounds writing an error response to a client that may
// be the reason for the error (WriteTimeout does, when it is shorter). A
// variable so that tests can shorten it.
var errorWriteTimeout = 5 * time.Second

// conn is one client connection and the buffers it reuses for every
// request. conns are pooled whole: a new connection costs no buffer
// allocation once the pool is warm.
type conn struct {
	srv   *Server
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	state atomic.Int32

	in    connReader       // what br reads from
	out   connWriter       // what bw writes to
	outRF readerFromWriter // the same, with ReadFrom for files from disk

	p       parser
	req     request
	name    []byte           // decoded path, then the name passed to os.Root
	key     []byte           // a directory's index name, to look up in the cache
	scratch []byte           // numbers, dates and Location while writing a head
	body    io.LimitedReader // a file from disk, limited to what its head announced
	disk    entry            // the head of a file from disk, formatted in place

	// What the access log says of the current request.
	start  time.Time // when its first byte was seen; also the Date of a static response
	status int       // the response's status; 0 when none was sent
	sent   int64     // body bytes sent
	from   Outcome   // where the answer came from (see outcome)
	remote []byte
	line   []byte // the log line being built
}

var connPool = sync.Pool{New: func() any {
	c := &conn{
		br:      bufio.NewReaderSize(nil, readBufSize),
		bw:      bufio.NewWriterSize(nil, writeBufSize),
		scratch: make([]byte, 0, 256),
	}
	c.in.c = c
	c.out.c = c
	c.outRF.connWriter = &c.out
	return c
}}

// connReader is the reader under a conn's bufio.Reader. Before it waits on
// the network it flushes what responses are still buffered: a pipelined
// request that arrived only in part must not leave the answers to the
// requests before it sitting in our buffer while we wait for its rest,
// perhaps from a client that waits for those answers first.
//
// A flush that fails ends the read with the write's error, which a caller
// must not take for the read's: flushFailed tells them apart, so that a
// client that stopped reading its answers is a write timeout (counted by
// connWriter), not a request head that timed out.
type connReader struct {
	c           *conn
	noFlush     bool  // while a proxied body is read on another goroutine
	flushFailed bool  // a flush before a read failed: nothing more can be written
	deadline    int64 // the read deadline in force, Unix nanoseconds
}

// setDeadline sets the conn's read deadline, and remembers it for idle.
func (r *connReader) setDeadline(d time.Time) {
	r.deadline = d.UnixNano()
	r.c.nc.SetReadDeadline(d)
}

// idle makes sure that the read deadline in force while the conn waits for
// its next request, now, is between IdleTimeout and 1.125 times it away.
// Like connWriter.arm it leaves a deadline alone that already is: setting
// one costs a timer update, which a busy keep-alive connection then pays
// once per IdleTimeout/8 instead of once per request.
func (r *connReader) idle(now time.Time) {
	to := r.c.srv.cfg.IdleTimeout
	if left := r.deadline - now.UnixNano(); left >= int64(to) && left <= int64(to+to/8) {
		return
	}
	r.setDeadline(now.Add(to + to/8))
}

func (r *connReader) Read(p []byte) (int, error) {
	if !r.noFlush && r.c.bw.Buffered() > 0 {
		if err := r.c.bw.Flush(); err != nil {
			r.flushFailed = true
			return 0, err
		}
	}
	return r.c.nc.Read(p)
}

// connWriter is the writer under a conn's bufio.Writer. It keeps a write
// deadline in force (see arm), writes big bodies in pieces of writeChunk,
// counts the bytes sent, and can append a cached body to the next write so
// that head and body leave in one writev. A cached body never changes: a
// connection that can send bytes without copying them (lender) gets it
// lent.
type connWriter struct {
	c        *conn
	tail     []byte // a cached body, written after the next Write's bytes, its first piece in the same call
	bufs     [2][]byte
	vec      net.Buffers
	deadline int64 // the write deadline in force, Unix nanoseconds
	pinned   bool  // deadline was set by pin: arm leaves it alone
}

// arm makes sure that a write deadline at least WriteTimeout away is in
// force. It renews the deadline, to 1.5 times WriteTimeout, only when less
// than WriteTimeout is left: setting a deadline costs a timer update (a
// timer allocation on gonet), which a busy keep-alive connection then pays
// once per WriteTimeout/2 instead of once per write. So every write has at
// least WriteTimeout, and a client that takes nothing is cut off after
// between one and 1.5 times WriteTimeout.
func (w *connWriter) arm() {
	if w.pinned {
		return
	}
	to := w.c.srv.cfg.WriteTimeout
	now := time.Now()
	if w.deadline-now.UnixNano() >= int64(to) {
		return
	}
	d := now.Add(to + to/2)
	w.deadline = d.UnixNano()
	w.c.nc.SetWriteDeadline(d)
}

// pin sets a write deadline for the rest of the connection, one that arm
// does not renew: the last response to a client that may not be reading.
func (w *connWriter) pin(d time.Time) {
	w.deadline = d.UnixNano()
	w.pinned = true
	w.c.nc.SetWriteDeadline(d)
}

func (w *connWriter) Write(p []byte) (int, error) {
	if w.tail == nil {
		return w.write(p, false)
	}
	tail := w.tail
	w.tail = nil
	first := tail[:min(len(tail), writeChunk)]
	w.arm()
	w.bufs = [2][]byte{p, first}
	var n int64
	var err error
	if l, ok := w.c.nc.(lender); ok {
		n, err = l.WriteLent(p, first)
	} else if bw, ok := w.c.nc.(buffersWriter); ok {
		n, err = bw.WriteBuffers(w.bufs[:])
	} else {
		w.vec = w.bufs[:]
		n, err = w.vec.WriteTo(w.c.nc)
	}
	w.bufs = [2][]byte{}
	w.c.srv.stats.bytesOut.Add(uint64(n))
	if err == nil && n < int64(len(p)+len(first)) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return int(min(n, int64(len(p)))), w.timedOut(err)
	}
	if len(tail) > len(first) {
		if _, err := w.write(tail[len(first):], true); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// write writes p in pieces of at most writeChunk, each with its deadline;
// lent, if p is a cached body and the connection a lender.
func (w *connWriter) write(p []byte, cached bool) (int, error) {
	l, lend := w.c.nc.(lender)
	lend = lend && cached
	written := 0
	for {
		w.arm()
		var n int
		var err error
		if piece := p[:min(len(p), writeChunk)]; lend {
			var m int64
			m, err = l.WriteLent(nil, piece)
			n = int(m)
		} else {
			n, err = w.c.nc.Write(piece)
		}
		w.c.srv.stats.bytesOut.Add(uint64(n))
		written += n
		p = p[n:]
		if err != nil || len(p) == 0 {
			return written, w.timedOut(err)
		}
	}
}

// timedOut counts a write that hit its deadline.
func (w *connWriter) timedOut(err error) error {
	if err != nil && isTimeout(err) {
		w.c.srv.stats.writeTimeouts.Add(1)
	}
	return err
}

// readerFromWriter adds ReadFrom to connWriter: bufio.Writer hands a file
// to it once its buffer is out. A connection with a ReadFrom of its own
// sends the file without a buffer of httpd's: the kernel's TCPConn with
// sendfile(2), the netstack's (gonet.TCPConn, gVisor patch 0031) by
// reading the file into its own segments' buffers, in the writeChunk
// pieces sendFile hands it. Any other gets it in writes of writeChunk
// through a pooled buffer: a write is one trip through the netstack, and
// on the netstack's GSO path one packet for the kernel to cut into frames,
// so 64 KiB writes cost a quarter of what bufio.Writer's own 16 KiB ones
// do (one 5 MiB download over AF_XDP: see docs/measured.md, "Bulk").
type readerFromWriter struct{ *connWriter }

func (w readerFromWriter) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := w.c.nc.(io.ReaderFrom); ok {
		w.arm()
		n, err := rf.ReadFrom(r)
		w.c.srv.stats.bytesOut.Add(uint64(n))
		if err == io.ErrUnexpectedEOF {
			// The netstack's word for a file that shrank: a short send,
			// as sendfile(2) makes it, for sendFile to tell.
			err = nil
		}
		return n, w.timedOut(err)
	}
	buf := chunkPool.Get().(*[writeChunk]byte)
	defer chunkPool.Put(buf)
	var sent int64
	for {
		n, rerr := io.ReadFull(r, buf[:])
		if n > 0 {
			m, err := w.write(buf[:n], false)
			sent += int64(m)
			if err != nil {
				return sent, err
			}
		}
		switch rerr {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			return sent, nil
		default:
			return sent, rerr
		}
	}
}

// chunkPool holds the buffers of readerFromWriter's copies: only writes of
// big files from disk hold one, and only for one write.
var chunkPool = sync.Pool{New: func() any { return new([writeChunk]byte) }}

func newConn(s *Server, nc net.Conn) *conn {
	c := connPool.Get().(*conn)
	c.srv = s
	c.nc = nc
	c.br.Reset(&c.in)
	c.bw.Reset(c.outRF)
	c.state.Store(stateIdle)
	return c
}

// release returns c to the pool; c must be out of the server's set.
func (c *conn) release() {
	c.srv, c.nc = nil, nil
	c.br.Reset(nil)
	c.bw.Reset(nil)
	c.out.tail, c.out.deadline, c.out.pinned = nil, 0, false
	c.in.noFlush, c.in.flushFailed, c.in.deadline = false, false, 0
	c.req = request{}
	c.body = io.LimitedReader{}
	c.remote = c.remote[:0]
	for _, b := range []*[]byte{&c.p.line, &c.p.long, &c.p.fields, &c.name, &c.key, &c.line} {
		if cap(*b) > maxKeptBuf {
			*b = nil
		}
	}
	connPool.Put(c)
}

// closeMode says how a connection ends after its current response.
type closeMode int

const (
	keepOpen    closeMode = iota
	closeNow              // nothing unread is expected: close
	closeLinger           // the client may have sent more (a body, the rest of a bad head): drain first
)

// serve runs the connection's request loop: requests are answered one after
// the other, in order, which is all that pipelining needs. The write buffer
// is flushed only when no further request is already buffered (or, see
// connReader, when reading must wait), so a pipelined batch is answered
// with few writes.
func (c *conn) serve() {
	s := c.srv
	defer func() {
		if v := recover(); v != nil {
			s.stats.panics.Add(1)
			s.log.Error("panic serving connection; closing it",
				"remote", c.nc.RemoteAddr(), "panic", v, "stack", string(debug.Stack()))
		}
		// Clear the deadlines first: on a netstack connection (gonet) they
		// are runtime timers that Close leaves running, and 6,000 closed
		// connections a second, each leaving a write deadline 60 s out,
		// made the runtime's timer upkeep a quarter of the CPU.
		c.nc.SetDeadline(time.Time{})
		c.nc.Close()
		s.removeConn(c)
		c.release()
	}()

	now := time.Now() // the clock as read when the last response was answered
	for {
		if c.br.Buffered() == 0 {
			if s.inShutdown.Load() {
				return
			}
			c.state.Store(stateIdle)
			c.in.idle(now)
			if _, err := c.br.Peek(1); err != nil {
				if isTimeout(err) {
					s.stats.idleTimeouts.Add(1)
				}
				return // closed, idle too long, or closed by Shutdown
			}
			if !c.state.CompareAndSwap(stateIdle, stateReading) {
				return // Shutdown closed it as the request arrived
			}
		} else {
			c.state.Store(stateReading)
		}
		c.start = time.Now()
		if !headBuffered(c.br) {
			c.in.setDeadline(c.start.Add(s.cfg.ReadHeaderTimeout))
		}
		c.status, c.sent, c.from = 0, 0, OutcomeError
		err := c.p.readRequest(c.br, s.lim, &c.req)
		if err != nil {
			c.fail(err)
			return
		}
		s.stats.requests.Add(1)
		if testHookRequest != nil {
			testHookRequest(c.req.target)
		}

		c.state.Store(stateWriting)
		mode := c.handle(&c.req)
		// The response is flushed before it is logged, so that its time
		// includes the write (a pipelined one's goes with a later flush).
		if mode != keepOpen || c.br.Buffered() == 0 {
			err = c.bw.Flush()
		}
		now = c.answered()
		if mode != keepOpen {
			c.finish(mode)
			return
		}
		if err != nil {
			return
		}
	}
}

// headBuffered reports whether a whole request head is already in br, as
// it usually is: then reading it cannot block, and the ReadHeaderTimeout
// deadline need not be set. That saves a timer update per request (and a
// timer allocation on the netstack's conns, whose deadlines are AfterFuncs).
func headBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for len(b) > 0 && (b[0] == '\r' || b[0] == '\n') {
		b = b[1:] // empty lines before the request line
	}
	return bytes.Contains(b, crlfcrlf) || bytes.Contains(b, lflf)
}

var crlfcrlf, lflf = []byte("\r\n\r\n"), []byte("\n\n")

// testHookRequest, when set by a test, runs for every request read.
var testHookRequest func(target []byte)

// fail answers a request head that could not be read whole, if it deserves
// an answer, and ends the connection.
func (c *conn) fail(err error) {
	s := c.srv
	if c.in.flushFailed {
		// The read did not fail: writing the answers to the requests
		// before it did (a timeout is counted as a write timeout where it
		// happened). The client takes nothing more; no answer is written
		// or counted.
		return
	}
	var he *httpError
	switch {
	case errors.As(err, &he):
		switch he.code {
		case 414:
			s.stats.uriTooLong.Add(1)
		case 431:
			s.stats.headerTooLarge.Add(1)
		default:
			s.stats.badRequests.Add(1)
		}
		s.stats.requests.Add(1)
		c.debug("bad request", he)
	case isTimeout(err):
		// The first byte arrived (serve waited for it) but not the rest in
		// time: slowloris or a stuck client.
		s.stats.headerTimeouts.Add(1)
		he = errHeadTimeout
	default:
		return // the client went away mid-head; nobody to answer
	}
	c.state.Store(stateWriting)
	c.out.pin(time.Now().Add(min(errorWriteTimeout, s.cfg.WriteTimeout)))
	c.writeError(he, false, true, c.req.minor)
	c.bw.Flush()
	c.answered()
	c.finish(closeLinger)
}

// finish flushes the last response and closes the connection the way mode
// says. The deferred Close in serve does the final close.
func (c *conn) finish(mode closeMode) {
	c.state.Store(stateClosing)
	if err := c.bw.Flush(); err != nil {
		return
	}
	if mode != closeLinger && c.br.Buffered() == 0 {
		return
	}
	// Half-close so the client sees the end of the response, then drain
	// what it still sends for a bounded time, so that our close does not
	// reset the connection under the response it has yet to read.
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() != nil {
			return
		}
	}
	c.in.setDeadline(time.Now().Add(lingerTimeout))
	io.CopyN(io.Discard, c.nc, lingerBytes)
}

func (c *conn) debug(msg string, he *httpError) {
	// Guarded: building the attributes allocates, and bad requests are
	// what an attacker can send at line rate.
	if c.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		c.srv.log.Debug(msg, "remote", c.nc.RemoteAddr(), "status", he.code, "reason", he.reason)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handle answers one well-formed request head and says what becomes of the
// connection.
//
// Requests under a dynamic prefix go to the upstream, bodies and all. The
// rest are served from Root, GET and HEAD only, and without reading a
// body: a GET or HEAD with a body gets 400 and any other method 405 (or,
// with ProxyMisses, the upstream), and the connection closes after the
// answer (with a lingering close), since the body's bytes stand between us
// and the next request.
func (c *conn) handle(req *request) closeMode {
	s := c.srv
	mode := keepOpen
	if !req.wantsKeepAlive() || s.inShutdown.Load() {
		mode = closeNow
	}
	head := string(req.method) == "HEAD"

	t, he := parseTarget(c.name, req.target)
	if he != nil {
		if req.hasBody() {
			mode = closeLinger
		}
		c.debug("bad request", he)
		c.writeError(he, head, mode != keepOpen, req.minor)
		return mode
	}
	c.name = t.name[:0]
	if s.proxy != nil && s.proxy.dynamic(t) {
		return c.proxy(req, mode)
	}
	if !head && string(req.method) != "GET" {
		if s.proxy != nil && s.proxy.misses {
			return c.proxy(req, mode)
		}
		if req.hasBody() {
			mode = closeLinger
		}
		c.writeError(errMethod, false, mode != keepOpen, req.minor)
		return mode
	}
	if req.hasBody() {
		// A small body on a static path (`curl -X GET -d` sends one) is
		// read and dropped, as nginx does; a large or chunked one gets 413
		// and a lingering close.
		if req.chunked || req.contentLength > maxDiscardBody {
			c.debug("bad request", errBodyTooLarge)
			c.writeError(errBodyTooLarge, head, true, req.minor)
			return closeLinger
		}
		c.in.setDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
		if _, err := io.CopyN(io.Discard, c.br, req.contentLength); err != nil {
			return closeNow
		}
	}
	if mode == closeNow {
		c.cork()
	}
	return c.serveStatic(req, t, head, mode)
}

// buffersWriter is a connection that writes several buffers as one write,
// as writev(2) does: the netstack's. net.Buffers' WriteTo does that on the
// kernel's sockets only, and on any other connection writes each buffer
// alone, which on the netstack sent a response's head in a segment of its
// own before the body (three segments for a 64 KiB file instead of two).
type buffersWriter interface {
	WriteBuffers([][]byte) (int64, error)
}

// lender is a connection that sends bytes its caller never changes without
// copying them: the netstack's (gonet.TCPConn.WriteLent, gVisor patch 0030).
// The segments carrying a cached body then point into the cache until they
// are acknowledged, where otherwise each 64 KiB response was cleared and
// copied into the netstack's buffers on the way (7.7 % of xhttpd's CPU
// under 64 KiB responses, docs/profiles/).
type lender interface {
	WriteLent(copied, lent []byte) (int64, error)
}

// corker is a connection that can hold back data that does not fill a
// segment until it is closed for writing, as TCP_CORK does: the netstack's
// (gonet.TCPConn, gVisor patch 0008).
type corker interface{ SetCork(bool) error }

// cork holds the tail of the last response on a connection that closes
// after it, so that the close sends it with the FIN in one segment, as
// Linux does when a close finds the data not yet sent. The client then
// reads the response and the end together and closes second, leaving the
// TIME-WAIT here rather than in its own port range. Static responses only:
// a proxied stream's small pieces would wait up to the cork's 200 ms.
func (c *conn) cork() {
	if ck, ok := c.nc.(corker); ok {
		ck.SetCork(true)
	}
}
