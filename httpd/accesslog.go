package httpd

import (
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The access log, in the Common Log Format:
//
//	198.18.0.2 - - [23/Nov/2026:10:00:00 +0000] "GET /1k.bin HTTP/1.1" 200 1024
//
// A connection formats its line in its own buffer and appends it to a
// shared buffer under a mutex; a goroutine writes that buffer out (swapping
// in a second one) once a second, or sooner when it fills. Nothing on the
// request path waits for the disk. When the writer cannot keep up and the
// shared buffer reaches its bound, lines are dropped and counted instead.
// A write that fails (a full disk) loses its lines; failures are counted,
// and the first of a spell of them is logged, as is the end of the spell.

const (
	// logBufMax bounds the lines waiting to be written.
	logBufMax = 4 << 20
	// logKick is how full the buffer gets before the writer is woken early.
	logKick = 64 << 10
	// logFlushEvery is how stale a written line may be at most.
	logFlushEvery = time.Second
	// logErrorEvery is how often a new spell of failing writes is logged at
	// most, so that a writer that fails every other time does not flood
	// the server's own log.
	logErrorEvery = time.Minute
)

type accessLog struct {
	w   io.Writer
	log *slog.Logger

	mu    sync.Mutex
	buf   []byte // lines waiting
	spare []byte // the other buffer, being written or free

	kick    chan struct{} // capacity 1: write now
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once

	lines   atomic.Uint64
	dropped atomic.Uint64
	errors  atomic.Uint64 // writes that failed
	date    dateCache

	// Only the writer goroutine touches these.
	failing    bool      // the last write failed, and that was logged
	lastLogged time.Time // when a failing spell was last logged
}

func newAccessLog(w io.Writer, log *slog.Logger) *accessLog {
	l := &accessLog{
		w:       w,
		log:     log,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		date:    dateCache{layout: clfTimeFormat, local: true},
	}
	go l.run()
	return l
}

// clfTimeFormat is the Common Log Format's time, brackets included.
const clfTimeFormat = "[02/Jan/2006:15:04:05 -0700]"

// add queues one line, or drops it when the buffer is full.
func (l *accessLog) add(line []byte) {
	l.mu.Lock()
	if len(l.buf)+len(line) > logBufMax {
		l.mu.Unlock()
		l.dropped.Add(1)
		return
	}
	l.buf = append(l.buf, line...)
	full := len(l.buf) >= logKick
	l.mu.Unlock()
	l.lines.Add(1)
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

func (l *accessLog) run() {
	defer close(l.stopped)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-l.kick:
		case <-t.C:
		case <-l.stop:
			l.flush()
			return
		}
		l.flush()
	}
}

// flush writes out the lines queued so far, while connections go on
// appending to the other buffer.
func (l *accessLog) flush() {
	l.mu.Lock()
	b := l.buf
	l.buf = l.spare[:0]
	l.spare = nil
	l.mu.Unlock()
	if len(b) > 0 {
		l.write(b)
	}
	l.mu.Lock()
	l.spare = b[:0]
	l.mu.Unlock()
}

// write writes b to the log's writer, and counts and reports a failure:
// an operator should learn that the log disk is full from the server's own
// log, not from the access log's silence.
func (l *accessLog) write(b []byte) {
	_, err := l.w.Write(b)
	if err == nil {
		if l.failing {
			l.failing = false
			l.log.Info("access log: writing again", "failed_writes", l.errors.Load())
		}
		return
	}
	n := l.errors.Add(1)
	if l.failing || !l.lastLogged.IsZero() && time.Since(l.lastLogged) < logErrorEvery {
		return
	}
	l.failing, l.lastLogged = true, time.Now()
	l.log.Error("access log: write failed; its lines are lost, and further failures are counted (AccessLogErrors) until one succeeds",
		"err", err, "failed_writes", n)
}

// close writes out what is queued and stops the writer.
func (l *accessLog) close() {
	l.once.Do(func() { close(l.stop) })
	<-l.stopped
}

// logAccess queues the access log line of the request just answered.
func (c *conn) logAccess() {
	l := c.srv.alog
	if len(c.remote) == 0 {
		c.remote = appendHost(c.remote, c.nc.RemoteAddr())
	}
	b := append(c.line[:0], c.remote...)
	b = append(b, " - - "...)
	b = append(b, l.date.get(time.Now())...)
	b = append(b, ` "`...)
	if len(c.p.line) > 0 {
		b = appendEscaped(b, c.p.line)
	} else {
		b = append(b, '-') // no request line: too long, or the head timed out before it
	}
	b = append(b, `" `...)
	if c.status == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, int64(c.status), 10)
	}
	b = append(b, ' ')
	if c.sent == 0 {
		b = append(b, '-')
	} else {
		b = strconv.AppendInt(b, c.sent, 10)
	}
	b = append(b, '\n')
	c.line = b
	l.add(b)
}

// appendHost appends the client's address without its port; it runs once
// per connection.
func appendHost(dst []byte, a net.Addr) []byte {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap().AppendTo(dst)
	}
	if a == nil {
		return append(dst, '-')
	}
	s := a.String()
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	return append(dst, s...)
}

// appendEscaped appends a request line with '"', '\\' and any byte outside
// printable ASCII escaped as \xHH, as Apache does, so that a line cannot
// forge another or break the quoting.
func appendEscaped(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, ch := range s {
		if ch < ' ' || ch >= 0x7f || ch == '"' || ch == '\\' {
			dst = append(dst, '\\', 'x', hex[ch>>4], hex[ch&15])
			continue
		}
		dst = append(dst, ch)
	}
	return dst
}
