package loadgen

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sys/unix"
)

// Run offers cfg.Rate requests per second for cfg.Duration and waits for
// the answers, at most cfg.Timeout after each one's send.
//
// It is one event loop on one thread, as wrk is: the thread (SCHED_FIFO
// where allowed) waits in epoll for the connections' answers and for a
// timerfd set to the next intended time, spins the last moments before it
// (at most a tenth of the mean gap), writes each request itself on a free
// connection, and reads the answers the moment epoll returns. No goroutine
// hands anything to another: on a two-CPU machine every hand-off costs a
// wake-up of tens to hundreds of microseconds, and the generator's CPU is
// taken from the server's. A request with no free connection waits in a
// queue, its latency growing, until one frees up; one that waited longer
// than the timeout fails without being sent.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	switch {
	case cfg.Rate <= 0:
		return nil, fmt.Errorf("loadgen: rate %v: want more than 0", cfg.Rate)
	case cfg.Conns < 1:
		return nil, fmt.Errorf("loadgen: %d connections: want at least 1", cfg.Conns)
	case cfg.Duration <= 0:
		return nil, fmt.Errorf("loadgen: duration %v: want more than 0", cfg.Duration)
	case cfg.Window < 0 || (cfg.Window > 0 && cfg.Duration/cfg.Window >= maxWindows):
		return nil, fmt.Errorf("loadgen: window %v over %v: want at most %d windows", cfg.Window, cfg.Duration, maxWindows)
	}
	if cfg.Burst != nil {
		if err := cfg.Burst.check(); err != nil {
			return nil, err
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	l, err := newLoop(cfg)
	if err != nil {
		return nil, err
	}
	defer l.close()
	return l.run(ctx)
}

// monoNow reads CLOCK_MONOTONIC in nanoseconds: the clock of the timerfd
// and of every time the loop records.
func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// conn is one keep-alive connection of the pool, or with Close one
// request's connection.
type conn struct {
	fd       int
	intended int64 // of the request in flight, CLOCK_MONOTONIC ns; 0: free
	sent     int64 // when it was written (with Close: when connect(2) began)
	ans      answer

	// With Close:
	connecting bool  // connect(2) in progress; the request goes out when it is done
	finBy      int64 // answered; the server's FIN is awaited until then
}

type loop struct {
	cfg      Config
	sa       unix.Sockaddr
	family   int
	req      []byte
	ep, tfd  int
	conns    []*conn
	byFD     map[int]*conn
	free     []*conn
	waiting  []int64 // intended times with no free connection, oldest first
	inFlight int
	buf      []byte
	res      *Result
	start    int64 // the run's origin of intended times
	last     int64 // the last answer
	closing  int   // with Close: answered connections awaiting the server's FIN
}

// maxReasons bounds the distinct error messages counted.
const maxReasons = 16

func newLoop(cfg Config) (_ *loop, err error) {
	ta, err := net.ResolveTCPAddr("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	host := cfg.Host
	if host == "" {
		host = cfg.Addr
	}
	hdr := ""
	if cfg.Close {
		hdr = "Connection: close\r\n"
	}
	l := &loop{
		cfg:  cfg,
		req:  []byte("GET " + cfg.Path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: xhttpd-loadgen\r\n" + hdr + "\r\n"),
		byFD: map[int]*conn{},
		buf:  make([]byte, 256<<10),
		res:  &Result{Offered: cfg.Rate, Latency: newHist(), Lag: newHist(), Reasons: map[string]int64{}},
		ep:   -1, tfd: -1,
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		l.sa, l.family = &unix.SockaddrInet4{Port: ta.Port, Addr: [4]byte(ip4)}, unix.AF_INET
	} else {
		l.sa, l.family = &unix.SockaddrInet6{Port: ta.Port, Addr: [16]byte(ta.IP.To16())}, unix.AF_INET6
	}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("loadgen: epoll: %w", err)
	}
	if l.tfd, err = unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC); err != nil {
		return nil, fmt.Errorf("loadgen: timerfd: %w", err)
	}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, l.tfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(l.tfd)}); err != nil {
		return nil, fmt.Errorf("loadgen: epoll: %w", err)
	}
	if cfg.Close {
		return l, nil // a connection per request, opened when it is due
	}
	// The pool is opened before the clock starts: connection set-up is not
	// part of an open-loop point at a fixed connection count.
	for i := range cfg.Conns {
		c, err := l.dial()
		if err != nil {
			return nil, fmt.Errorf("loadgen: connection %d of %d: %w", i+1, cfg.Conns, err)
		}
		l.free = append(l.free, c)
	}
	return l, nil
}

// dial opens a non-blocking connection and waits, at most the timeout,
// until it is up (a blocking connect(2) would fail with EINTR whenever the
// Go runtime's preemption signal lands during it), then adds it to epoll.
func (l *loop) dial() (*conn, error) {
	fd, err := unix.Socket(l.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := l.connect(fd); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %s: %w", l.cfg.Addr, err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c := &conn{fd: fd, ans: newAnswer()}
	l.conns = append(l.conns, c)
	l.byFD[fd] = c
	return c, nil
}

// connect connects the non-blocking socket fd to the server.
func (l *loop) connect(fd int) error {
	err := unix.Connect(fd, l.sa)
	if err == nil {
		return nil
	}
	if err != unix.EINPROGRESS && err != unix.EINTR {
		return err
	}
	deadline := monoNow() + int64(l.cfg.Timeout)
	for {
		left := deadline - monoNow()
		if left <= 0 {
			return fmt.Errorf("no connection within %v", l.cfg.Timeout)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, err := unix.Poll(pfd, int(max(left/1e6, 1)))
		if err == unix.EINTR || n == 0 {
			continue
		}
		if err != nil {
			return err
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		return nil
	}
}

func (l *loop) close() {
	for _, c := range l.conns {
		if c.fd >= 0 {
			if l.cfg.Close {
				reset(c.fd)
			}
			unix.Close(c.fd)
		}
	}
	for _, fd := range []int{l.tfd, l.ep} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

func (l *loop) fail(err error) {
	l.res.Errors++
	msg := err.Error()
	if l.res.FirstErr == "" {
		l.res.FirstErr = msg
	}
	if _, ok := l.res.Reasons[msg]; !ok && len(l.res.Reasons) >= maxReasons {
		msg = "other"
	}
	l.res.Reasons[msg]++
}

// reset makes the close of fd abortive (SO_LINGER 0: an RST, no
// TIME-WAIT), for a connection the generator gives up on before the
// server has closed it.
func reset(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// maxSpin is the longest the loop spins before an intended time instead of
// waiting in epoll: a sleeping CPU of a virtual machine takes a hundred
// microseconds or more to wake, and a late wake-up is lag. It spins a tenth
// of the mean gap at most, so that spinning never takes more than a tenth
// of a CPU (the generator's CPU is recorded with each point).
const maxSpin = 50 * time.Microsecond

func (l *loop) run(ctx context.Context) (*Result, error) {
	unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
	// Real-time priority, where allowed (root), so that a wake-up preempts
	// whatever runs on the CPU, the server included, instead of waiting
	// for the end of its time slice. The thread goes back to the runtime
	// as an ordinary one.
	if unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}, 0) == nil {
		defer unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0 /* SCHED_OTHER */}, 0)
	}
	spin := min(int64(maxSpin), int64(float64(time.Second)/l.cfg.Rate/10))
	sched := NewSchedule(l.cfg.Rate, l.cfg.Seed)
	if l.cfg.Burst != nil {
		sched = NewBurstSchedule(l.cfg.Rate, *l.cfg.Burst, l.cfg.Seed)
		// Spin for a tenth of the high rate's mean gap at most.
		high, _ := l.cfg.Burst.Rates(l.cfg.Rate)
		spin = min(int64(maxSpin), int64(float64(time.Second)/high/10))
	}
	if l.cfg.Window > 0 {
		l.res.Windows = make([]Window, (l.cfg.Duration+l.cfg.Window-1)/l.cfg.Window)
	}
	start := monoNow()
	l.start = start
	l.res.Start = start
	end := start + int64(l.cfg.Duration)
	next := start + int64(sched.Next())
	events := make([]unix.EpollEvent, 64)
	for {
		now := monoNow()
		for next <= now && next < end && ctx.Err() == nil {
			l.res.Lag.RecordValue(max((now-next)/1000, minUS))
			l.offer(next, now)
			next = start + int64(sched.Next())
		}
		offering := next < end && ctx.Err() == nil
		l.expire(now)
		if !offering && l.inFlight == 0 && len(l.waiting) == 0 && l.closing == 0 {
			break
		}
		if !offering && now > end+2*int64(l.cfg.Timeout) {
			break // bounded, whatever the server does
		}
		timeout := -1
		switch {
		case offering && next-now <= spin:
			timeout = 0 // spin: look at the connections, come back
		case offering:
			its := unix.ItimerSpec{Value: unix.NsecToTimespec(next - spin)}
			unix.TimerfdSettime(l.tfd, unix.TFD_TIMER_ABSTIME, &its, nil)
		default:
			timeout = 10 // draining: check the deadlines now and then
		}
		n, err := unix.EpollWait(l.ep, events, timeout)
		if err != nil && err != unix.EINTR {
			return nil, fmt.Errorf("loadgen: epoll_wait: %w", err)
		}
		now = monoNow()
		for _, ev := range events[:max(n, 0)] {
			fd := int(ev.Fd)
			if fd == l.tfd {
				var b [8]byte
				unix.Read(l.tfd, b[:])
				continue
			}
			c := l.byFD[fd]
			switch {
			case c == nil:
			case c.connecting:
				l.connected(c, now)
			case c.finBy != 0:
				l.awaitFIN(c, now)
			default:
				l.readAnswers(c, now)
			}
		}
	}
	// What still waits never went out.
	for range l.waiting {
		l.fail(fmt.Errorf("waited longer than the timeout for a free connection"))
	}
	res := l.res
	last := l.last
	if last == 0 {
		last = monoNow()
	}
	res.Elapsed = time.Duration(last - start)
	res.Achieved = float64(res.Done) / max(res.Elapsed, l.cfg.Duration).Seconds()
	return res, ctx.Err()
}

// window returns the timeline's window of intended time t, or nil.
func (l *loop) window(t int64) *Window {
	if l.cfg.Window <= 0 {
		return nil
	}
	i := (t - l.start) / int64(l.cfg.Window)
	if i < 0 || i >= int64(len(l.res.Windows)) {
		return nil
	}
	return &l.res.Windows[i]
}

// Windows keep latencies at 2 significant digits, up to 100 s: about
// 20 KiB each.
func newWindowHist() *hdrhistogram.Histogram { return hdrhistogram.New(minUS, maxUS, 2) }

// offer sends a request intended at t on a free connection, or queues it.
// With Close it opens the request's connection, unless Conns are open.
func (l *loop) offer(t, now int64) {
	l.res.Sent++
	if w := l.window(t); w != nil {
		w.Offered++
	}
	if l.cfg.Close {
		if l.inFlight >= l.cfg.Conns {
			l.waiting = append(l.waiting, t)
			return
		}
		l.open(t, now)
		return
	}
	if len(l.free) == 0 {
		l.waiting = append(l.waiting, t)
		return
	}
	c := l.free[len(l.free)-1]
	l.free = l.free[:len(l.free)-1]
	l.send(c, t, now)
}

// send writes the request intended at t on c. Its answer has the timeout
// from now, not from t: a request that waited for a connection is not
// abandoned (nor its connection replaced) for the wait; the wait counts in
// its latency.
func (l *loop) send(c *conn, t, now int64) {
	c.intended, c.sent = t, now
	l.inFlight++
	if n, err := unix.Write(c.fd, l.req); err != nil || n != len(l.req) {
		if err == nil {
			err = fmt.Errorf("short write of a request: %d of %d bytes", n, len(l.req))
		}
		l.broken(c, err, now)
	}
}

// readAnswers reads what c has and records each answer it completes. A
// free connection that becomes readable was closed by the server (or sent
// what nobody asked for): it is replaced.
func (l *loop) readAnswers(c *conn, now int64) {
	if c.intended == 0 {
		n, err := unix.Read(c.fd, l.buf)
		switch {
		case err == unix.EAGAIN:
		case err != nil || n == 0:
			l.broken(c, fmt.Errorf("idle connection closed by the server"), now)
		default:
			l.broken(c, fmt.Errorf("%d bytes on an idle connection", n), now)
		}
		return
	}
	for c.intended != 0 {
		n, err := unix.Read(c.fd, l.buf)
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			if err == nil {
				err = fmt.Errorf("connection closed by the server")
			}
			l.broken(c, err, now)
			return
		}
		for b := l.buf[:n]; len(b) > 0; {
			used, done, body, err := c.ans.feed(b)
			if err != nil {
				l.broken(c, err, now)
				return
			}
			b = b[used:]
			if !done {
				continue
			}
			l.res.Done++
			l.res.BodyBytes += body
			lat := max((now-c.intended)/1000, minUS)
			l.res.Latency.RecordValue(lat)
			if w := l.window(c.intended); w != nil {
				if w.Latency == nil {
					w.Latency = newWindowHist()
				}
				w.Done++
				w.Latency.RecordValue(lat)
			}
			l.last = now
			l.inFlight--
			c.intended = 0
			if l.cfg.Close {
				l.answered(c, b, now)
				return
			}
			l.next(c, now)
			if len(b) > 0 && c.intended == 0 {
				l.broken(c, fmt.Errorf("%d bytes after an answer, before any request", len(b)), now)
				return
			}
		}
	}
}

// next gives c the oldest waiting request, or puts it back as free.
// With Close, c is nil: a connection has freed its place, and the oldest
// waiting request opens one.
func (l *loop) next(c *conn, now int64) {
	if l.cfg.Close {
		l.dropExpired(now)
		if len(l.waiting) > 0 && l.inFlight < l.cfg.Conns {
			t := l.waiting[0]
			l.waiting = l.waiting[1:]
			l.open(t, now)
		}
		return
	}
	l.dropExpired(now)
	if len(l.waiting) > 0 {
		t := l.waiting[0]
		l.waiting = l.waiting[1:]
		l.send(c, t, now)
		return
	}
	l.free = append(l.free, c)
}

// dropExpired fails what waited longer than the timeout for a connection:
// sending it would be pointless, and replacing a connection for each would
// churn through the ephemeral ports.
func (l *loop) dropExpired(now int64) {
	for len(l.waiting) > 0 && now-l.waiting[0] >= int64(l.cfg.Timeout) {
		l.waiting = l.waiting[1:]
		l.fail(fmt.Errorf("waited longer than the timeout for a free connection"))
	}
}

// expire fails the requests whose answer is later than the timeout, and
// what waited too long for a connection; with Close, it resets the
// answered connections whose FIN did not come in time.
func (l *loop) expire(now int64) {
	for _, c := range slices.Clone(l.conns) {
		switch {
		case c.fd < 0:
		case c.connecting && now-c.sent > int64(l.cfg.Timeout):
			l.broken(c, fmt.Errorf("connect: no connection within %v", l.cfg.Timeout), now)
		case c.intended != 0 && now-c.sent > int64(l.cfg.Timeout):
			l.broken(c, fmt.Errorf("no answer within %v", l.cfg.Timeout), now)
		case c.finBy != 0 && now >= c.finBy:
			l.res.Reset++
			l.drop(c, true)
		}
	}
	l.dropExpired(now)
}

// broken fails c's request, closes it, and puts a new connection in its
// place; if none can be made, the pool is a connection short. With Close,
// c is reset and the place goes to the oldest waiting request.
func (l *loop) broken(c *conn, err error, now int64) {
	if c.intended != 0 {
		l.inFlight--
		c.intended = 0
	}
	l.fail(err)
	if l.cfg.Close {
		l.res.Reset++
		l.drop(c, true)
		l.next(nil, now)
		return
	}
	for i, x := range l.free {
		if x == c {
			l.free = append(l.free[:i], l.free[i+1:]...)
			break
		}
	}
	delete(l.byFD, c.fd)
	unix.Close(c.fd)
	c.fd = -1
	for i, x := range l.conns {
		if x == c {
			l.conns = append(l.conns[:i], l.conns[i+1:]...)
			break
		}
	}
	nc, derr := l.dial()
	if derr != nil {
		if len(l.conns) == 0 {
			// Nothing left to send on: what waits fails now.
			for range l.waiting {
				l.fail(derr)
			}
			l.waiting = nil
		}
		return
	}
	l.next(nc, now)
}

// open starts the connection of a request intended at t (Close): a
// non-blocking connect(2), watched by epoll until it is done. A connect
// that fails at once (no ephemeral port left: EADDRNOTAVAIL) fails the
// request with the reason.
func (l *loop) open(t, now int64) {
	l.inFlight++
	fail := func(err error) {
		l.inFlight--
		l.fail(fmt.Errorf("connect: %w", err))
	}
	fd, err := unix.Socket(l.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fail(err)
		return
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	err = unix.Connect(fd, l.sa)
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		fail(err)
		return
	}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLOUT | unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		fail(err)
		return
	}
	l.res.Opened++
	c := &conn{fd: fd, ans: newAnswer(), intended: t, sent: now, connecting: true}
	l.conns = append(l.conns, c)
	l.byFD[fd] = c
	if err == nil {
		l.connected(c, now)
	}
}

// connected writes c's request once its connect(2) is done, or fails it
// with connect's error.
func (l *loop) connected(c *conn, now int64) {
	soErr, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && soErr != 0 {
		err = unix.Errno(soErr)
	}
	if err != nil {
		l.broken(c, fmt.Errorf("connect: %w", err), now)
		return
	}
	c.connecting = false
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}); err != nil {
		l.broken(c, err, now)
		return
	}
	t := c.intended
	l.inFlight-- // send counts it again
	l.send(c, t, now)
}

// answered is what happens to a Close connection whose answer is whole:
// rest is what came after the answer in the same read. Its place goes to
// the next request at once; the connection itself waits for the server's
// FIN before it is closed.
func (l *loop) answered(c *conn, rest []byte, now int64) {
	l.next(nil, now)
	if len(rest) > 0 {
		l.res.Reset++
		l.fail(fmt.Errorf("%d bytes after an answer to Connection: close", len(rest)))
		l.drop(c, true)
		return
	}
	c.finBy = now + int64(CloseWait)
	l.closing++
	l.awaitFIN(c, now)
}

// awaitFIN reads what an answered Close connection has: the server's FIN
// (read returns 0) closes it; anything else resets it.
func (l *loop) awaitFIN(c *conn, now int64) {
	n, err := unix.Read(c.fd, l.buf)
	switch {
	case err == unix.EAGAIN:
	case err == nil && n == 0:
		l.res.ServerClosed++
		l.drop(c, false)
	case err != nil:
		// An RST instead of a FIN: the connection is gone either way,
		// and the answer was whole.
		l.drop(c, true)
	default:
		l.res.Reset++
		l.fail(fmt.Errorf("%d bytes after an answer to Connection: close", n))
		l.drop(c, true)
	}
}

// drop closes a Close connection and forgets it; abort resets it instead
// of closing it in order.
func (l *loop) drop(c *conn, abort bool) {
	if c.finBy != 0 {
		l.closing--
		c.finBy = 0
	}
	if abort {
		reset(c.fd)
	}
	delete(l.byFD, c.fd)
	unix.Close(c.fd)
	c.fd = -1
	if i := slices.Index(l.conns, c); i >= 0 {
		l.conns = slices.Delete(l.conns, i, i+1)
	}
}
