package httpd

import (
	"bytes"
	"github.com/xhttpd/xhttpd/internal/enum"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The access log, in the Common Log Format by default:
//
//	198.18.0.2 - - [23/Nov/2026:10:00:00 +0000] "GET /1k.bin HTTP/1.1" 200 1024
//
// in Apache's combined format (LogCombined), which adds the Referer and
// User-Agent fields:
//
//	198.18.0.2 - - [23/Nov/2026:10:00:00 +0000] "GET /1k.bin HTTP/1.1" 200 1024 "-" "curl/8.14.1"
//
// or as one JSON object per line (LogJSON), with the time to the
// microsecond and the time the request took (see Config.AccessLogFormat):
//
//	{"time":"2026-11-23T10:00:00.123456+00:00","remote":"198.18.0.2","method":"GET","target":"/1k.bin","proto":"HTTP/1.1","status":200,"bytes":1024,"duration_us":38,"referer":"","user_agent":"curl/8.14.1"}
//
// Each format costs no allocation per request: the line is built in the
// connection's own buffer.
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

// LogFormat is the access log's line format.
type LogFormat uint8

const (
	LogCLF      LogFormat = iota // the Common Log Format; the default
	LogCombined                  // CLF, then the Referer and User-Agent fields quoted, as Apache's "combined"
	LogJSON                      // a JSON object per line: time, remote, method, target, proto, status, bytes, duration_us, referer, user_agent
)

var logFormatNames = []string{LogCLF: "clf", LogCombined: "combined", LogJSON: "json"}

func (f LogFormat) String() string { return enum.Name(logFormatNames, f, "LogFormat") }

// UnmarshalText reads "clf", "combined" or "json", for flag.TextVar.
func (f *LogFormat) UnmarshalText(b []byte) error {
	return enum.Unmarshal(logFormatNames, b, "access log format", f)
}

// MarshalText is the format's name.
func (f LogFormat) MarshalText() ([]byte, error) {
	return enum.Marshal(logFormatNames, f, "access log format")
}

type accessLog struct {
	w      io.Writer
	log    *slog.Logger
	format LogFormat

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

func newAccessLog(w io.Writer, log *slog.Logger, format LogFormat) *accessLog {
	l := &accessLog{
		w:       w,
		log:     log,
		format:  format,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
		date:    dateCache{layout: clfTimeFormat, local: true},
	}
	if format == LogJSON {
		l.date.layout = jsonTimeFormat
	}
	go l.run()
	return l
}

const (
	// clfTimeFormat is the Common Log Format's time, brackets included.
	clfTimeFormat = "[02/Jan/2006:15:04:05 -0700]"
	// jsonTimeFormat is RFC 3339 to the second; appendJSON puts the
	// microseconds in at jsonFracAt.
	jsonTimeFormat = "2006-01-02T15:04:05Z07:00"
	jsonFracAt     = len("2006-01-02T15:04:05")
)

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

// logAccess queues the access log line of the request just answered, at
// now; d is how long it took (zero unless the format or Config.Observe
// asked for the time).
func (c *conn) logAccess(now time.Time, d time.Duration) {
	l := c.srv.alog
	if len(c.remote) == 0 {
		c.remote = appendHost(c.remote, c.nc.RemoteAddr())
	}
	var b []byte
	if l.format == LogJSON {
		b = c.appendJSON(c.line[:0], l.date.get(now), now, d)
	} else {
		b = c.appendCLF(c.line[:0], l.date.get(now), l.format == LogCombined)
	}
	b = append(b, '\n')
	c.line = b
	l.add(b)
}

// appendCLF appends a Common Log Format line, or a combined one, without
// its newline.
func (c *conn) appendCLF(b, date []byte, combined bool) []byte {
	b = append(b, c.remote...)
	b = append(b, " - - "...)
	b = append(b, date...)
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
	if combined {
		referer, agent := logFields(c.req.fields)
		for _, v := range [2][]byte{referer, agent} {
			b = append(b, ` "`...)
			if v == nil {
				b = append(b, '-')
			} else {
				b = appendEscaped(b, v)
			}
			b = append(b, '"')
		}
	}
	return b
}

// appendJSON appends a JSON line, without its newline. The request line's
// parts are cut from the line as received, so that a head that failed to
// parse still shows what it was; a part that is absent is "".
func (c *conn) appendJSON(b, date []byte, now time.Time, d time.Duration) []byte {
	b = append(b, `{"time":"`...)
	if len(date) > jsonFracAt {
		b = append(b, date[:jsonFracAt]...)
		b = append(b, '.')
		us := now.Nanosecond() / 1000
		for div := 100000; div > 0; div /= 10 {
			b = append(b, byte('0'+us/div%10))
		}
		b = append(b, date[jsonFracAt:]...)
	}
	b = append(b, `","remote":"`...)
	b = appendJSONString(b, c.remote)
	method, target, proto := splitRequestLine(c.p.line)
	b = append(b, `","method":"`...)
	b = appendJSONString(b, method)
	b = append(b, `","target":"`...)
	b = appendJSONString(b, target)
	b = append(b, `","proto":"`...)
	b = appendJSONString(b, proto)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(c.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, c.sent, 10)
	b = append(b, `,"duration_us":`...)
	b = strconv.AppendInt(b, d.Microseconds(), 10)
	referer, agent := logFields(c.req.fields)
	b = append(b, `,"referer":"`...)
	b = appendJSONString(b, referer)
	b = append(b, `","user_agent":"`...)
	b = appendJSONString(b, agent)
	return append(b, `"}`...)
}

// splitRequestLine cuts a request line into method, target and version at
// its first and last spaces.
func splitRequestLine(line []byte) (method, target, proto []byte) {
	i := bytes.IndexByte(line, ' ')
	if i < 0 {
		return line, nil, nil
	}
	method, rest := line[:i], line[i+1:]
	j := bytes.LastIndexByte(rest, ' ')
	if j < 0 {
		return method, rest, nil
	}
	return method, rest[:j], rest[j+1:]
}

// logFields finds the first Referer and User-Agent values among a request's
// header lines (request.fields), nil for one that is absent. Only the
// formats that show them pay for the scan.
func logFields(fields []byte) (referer, agent []byte) {
	for rest := fields; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		colon := bytes.IndexByte(line, ':')
		switch {
		case colon == len("referer") && referer == nil && equalFold(line[:colon], "referer"):
			referer = trimOWS(line[colon+1:])
		case colon == len("user-agent") && agent == nil && equalFold(line[:colon], "user-agent"):
			agent = trimOWS(line[colon+1:])
		}
	}
	return referer, agent
}

// appendJSONString appends s as the inside of a JSON string. '"' and '\\'
// are escaped as JSON has it; a control byte or any byte outside ASCII is
// written as \u00HH, the byte's value, so that the line is valid JSON (and
// valid UTF-8) whatever a client sent, and shows the bytes as sent, as
// appendEscaped's \xHH does for CLF.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	for _, ch := range s {
		switch {
		case ch == '"' || ch == '\\':
			dst = append(dst, '\\', ch)
		case ch < ' ' || ch >= 0x7f:
			dst = append(dst, '\\', 'u', '0', '0', hex[ch>>4], hex[ch&15])
		default:
			dst = append(dst, ch)
		}
	}
	return dst
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
