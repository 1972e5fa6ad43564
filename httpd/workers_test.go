package httpd

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
	"time"
)

// goroutineID reads the running goroutine's number from its stack header.
func goroutineID() string {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	return string(b[:bytes.IndexByte(b, ' ')])
}

// testWorkers records which goroutine served each connection; a
// connection's handling ends when its release channel is closed.
type testWorkers struct {
	w        workers
	mu       sync.Mutex
	clock    time.Time
	servedOn map[*conn]string
	release  map[*conn]chan struct{}
	started  chan *conn
}

func newTestWorkers() *testWorkers {
	tw := &testWorkers{
		clock:    time.Unix(1_000_000, 0),
		servedOn: map[*conn]string{},
		release:  map[*conn]chan struct{}{},
		started:  make(chan *conn, 2048),
	}
	tw.w.now = func() time.Time { tw.mu.Lock(); defer tw.mu.Unlock(); return tw.clock }
	tw.w.handle = func(c *conn) {
		tw.mu.Lock()
		tw.servedOn[c] = goroutineID()
		ch := tw.release[c]
		tw.mu.Unlock()
		tw.started <- c
		<-ch
	}
	return tw
}

// serve starts a connection and waits until a worker runs it.
func (tw *testWorkers) serve(t *testing.T) *conn {
	t.Helper()
	c := new(conn)
	tw.mu.Lock()
	tw.release[c] = make(chan struct{})
	tw.mu.Unlock()
	tw.w.serve(c)
	select {
	case got := <-tw.started:
		if got != c {
			t.Fatalf("a worker ran %p, want %p", got, c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no worker ran the connection")
	}
	return c
}

func (tw *testWorkers) end(c *conn) {
	tw.mu.Lock()
	close(tw.release[c])
	tw.mu.Unlock()
}

func (tw *testWorkers) advance(d time.Duration) {
	tw.mu.Lock()
	tw.clock = tw.clock.Add(d)
	tw.mu.Unlock()
}

func (tw *testWorkers) idle() int {
	tw.w.mu.Lock()
	defer tw.w.mu.Unlock()
	return len(tw.w.idle)
}

// expire runs what the cleaner runs at each tick, and reports whether any
// worker is still idle.
func (w *workers) expire() (more bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expireLocked()
	return len(w.idle) > 0
}

// A connection that comes after another has ended runs on the same
// goroutine, the newest idle one first.
func TestWorkersReuseNewestFirst(t *testing.T) {
	tw := newTestWorkers()
	defer tw.w.close()
	a, b := tw.serve(t), tw.serve(t)
	if tw.servedOn[a] == tw.servedOn[b] {
		t.Fatal("two connections at once ran on one goroutine")
	}
	tw.end(a)
	waitFor(t, 5*time.Second, "a's worker to go idle", func() bool { return tw.idle() == 1 })
	tw.end(b)
	waitFor(t, 5*time.Second, "b's worker to go idle", func() bool { return tw.idle() == 2 })

	c := tw.serve(t)
	if tw.servedOn[c] != tw.servedOn[b] {
		t.Errorf("the next connection ran on goroutine %s, want b's %s, the newest idle", tw.servedOn[c], tw.servedOn[b])
	}
	d := tw.serve(t)
	if tw.servedOn[d] != tw.servedOn[a] {
		t.Errorf("the one after ran on goroutine %s, want a's %s", tw.servedOn[d], tw.servedOn[a])
	}
	if n := tw.idle(); n != 0 {
		t.Errorf("%d idle workers with both busy", n)
	}
	tw.end(c)
	tw.end(d)
}

// Workers idle for workerIdleMax leave, oldest first; the cleaner ends when
// none is idle.
func TestWorkersExpire(t *testing.T) {
	tw := newTestWorkers()
	defer tw.w.close()
	before := runtime.NumGoroutine()
	a, b, c := tw.serve(t), tw.serve(t), tw.serve(t)
	tw.end(a)
	waitFor(t, 5*time.Second, "a idle", func() bool { return tw.idle() == 1 })
	tw.advance(workerIdleMax / 2)
	tw.end(b)
	waitFor(t, 5*time.Second, "b idle", func() bool { return tw.idle() == 2 })
	tw.advance(workerIdleMax / 2)
	tw.end(c)
	waitFor(t, 5*time.Second, "c idle", func() bool { return tw.idle() == 3 })

	// a has waited workerIdleMax, b half of it, c not at all.
	if !tw.w.expire() {
		t.Fatal("expire reports none idle with b and c waiting")
	}
	if n := tw.idle(); n != 2 {
		t.Fatalf("%d idle after a's time ran out, want 2", n)
	}
	next := tw.serve(t)
	if tw.servedOn[next] != tw.servedOn[c] {
		t.Errorf("served on %s, want c's worker %s", tw.servedOn[next], tw.servedOn[c])
	}
	tw.end(next)
	waitFor(t, 5*time.Second, "c's worker idle again", func() bool { return tw.idle() == 2 })

	tw.advance(workerIdleMax)
	if tw.w.expire() {
		t.Error("expire reports workers idle after every one's time ran out")
	}
	waitFor(t, 5*time.Second, "every worker and the cleaner to leave", func() bool { return runtime.NumGoroutine() <= before })
}

// At most workerIdleCap workers wait; the rest of a burst leave at once.
func TestWorkersIdleCap(t *testing.T) {
	tw := newTestWorkers()
	defer tw.w.close()
	before := runtime.NumGoroutine()
	conns := make([]*conn, workerIdleCap+10)
	for i := range conns {
		conns[i] = tw.serve(t)
	}
	for _, c := range conns {
		tw.end(c)
	}
	waitFor(t, 5*time.Second, "the burst to end", func() bool {
		return tw.idle() == workerIdleCap && runtime.NumGoroutine() <= before+workerIdleCap+1 // the cleaner
	})
}

// close lets the idle workers go, and a worker whose connection ends after
// it leaves instead of waiting.
func TestWorkersClose(t *testing.T) {
	tw := newTestWorkers()
	before := runtime.NumGoroutine()
	a, b := tw.serve(t), tw.serve(t)
	tw.end(a)
	waitFor(t, 5*time.Second, "a idle", func() bool { return tw.idle() == 1 })
	tw.w.close()
	tw.end(b)
	waitFor(t, 5*time.Second, "every worker to leave", func() bool { return runtime.NumGoroutine() <= before })
	if n := tw.idle(); n != 0 {
		t.Errorf("%d idle after close", n)
	}
}
