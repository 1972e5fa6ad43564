package httpd

import (
	"sync"
	"time"
)

// workers serves connections on goroutines that outlive them. A goroutine
// that serves a connection grows its stack: on the netstack, Close sends
// the FIN through gVisor's whole send path down to the NIC's kick on the
// caller's goroutine. A new goroutine per connection grew its stack again
// every time (copystack was 5.6 % of xhttpd's CPU under a new connection
// per request, newproc another 1.3 %). A worker keeps its stack from one
// connection to the next.
//
// Idle workers wait newest first (a stack, as fasthttp's pool does), so
// that a steady load keeps reusing the same few and the rest age out: a
// worker idle for workerIdleMax leaves, and at most workerIdleCap wait at
// once, so a burst of connections leaves no crowd of goroutines behind.
type workers struct {
	mu       sync.Mutex
	idle     []idleWorker // oldest first
	cleaning bool         // a cleaner goroutine is running
	closed   bool
	handle   func(*conn)      // (*conn).serve; tests replace it
	now      func() time.Time // time.Now; tests replace it
}

type idleWorker struct {
	ch    chan *conn
	since time.Time
}

const (
	workerIdleMax = 2 * time.Second
	workerIdleCap = 1024
)

// serve runs c on an idle worker, or on a new one.
func (w *workers) serve(c *conn) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 {
		ch := w.idle[n-1].ch
		w.idle[n-1] = idleWorker{}
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		ch <- c // buffered: the worker takes it when it runs
		return
	}
	w.mu.Unlock()
	go w.run(c)
}

func (w *workers) run(c *conn) {
	ch := make(chan *conn, 1)
	for c != nil {
		w.handle(c)
		if !w.park(ch) {
			return
		}
		c = <-ch // nil once the cleaner or close lets the worker go
	}
}

// park puts a worker whose connection has ended on the idle stack; false
// means it should leave instead.
func (w *workers) park(ch chan *conn) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || len(w.idle) >= workerIdleCap {
		return false
	}
	w.idle = append(w.idle, idleWorker{ch: ch, since: w.now()})
	if !w.cleaning {
		w.cleaning = true
		go w.clean()
	}
	return true
}

// clean lets workers idle for workerIdleMax go, looking twice per
// workerIdleMax, and ends when none is idle.
func (w *workers) clean() {
	t := time.NewTicker(workerIdleMax / 2)
	defer t.Stop()
	for range t.C {
		w.mu.Lock()
		w.expireLocked()
		if len(w.idle) == 0 || w.closed {
			w.cleaning = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// expireLocked lets the workers idle for workerIdleMax go.
func (w *workers) expireLocked() {
	cut := w.now().Add(-workerIdleMax)
	n := 0
	for n < len(w.idle) && !w.idle[n].since.After(cut) {
		close(w.idle[n].ch)
		n++
	}
	m := copy(w.idle, w.idle[n:])
	clear(w.idle[m:])
	w.idle = w.idle[:m]
}

// close lets every idle worker go; workers still serving leave when their
// connection ends.
func (w *workers) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for _, iw := range w.idle {
		close(iw.ch)
	}
	w.idle = nil
}
