package irq

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// newTestLoop makes a loop on a fake queue.
func newTestLoop(t *testing.T, cfg Config) *Loop {
	t.Helper()
	l, err := New(newFakeQueue(t, 1), cfg, perFrame(func([]byte) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return l
}

// pinAffinity runs l.pin on a thread of its own and returns that thread's
// CPU affinity before and after. The thread stays locked, so it ends with
// the goroutine, affinity and all.
func pinAffinity(t *testing.T, l *Loop) (before, after unix.CPUSet, err error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err = unix.SchedGetaffinity(0, &before); err != nil {
			return
		}
		if err = l.pin(); err != nil {
			return
		}
		err = unix.SchedGetaffinity(0, &after)
	}()
	<-done
	return before, after, err
}

// A zero Config pins nothing (it used to pin to CPU 0); Pin pins to CPU.
func TestPin(t *testing.T) {
	var allowed unix.CPUSet
	if err := unix.SchedGetaffinity(0, &allowed); err != nil {
		t.Fatal(err)
	}
	if allowed.Count() < 2 {
		t.Skip("this process may run on one CPU only: pinned and not pinned look alike")
	}
	before, after, err := pinAffinity(t, newTestLoop(t, Config{}))
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("zero Config: affinity %d CPUs after, %d before; want it unchanged", after.Count(), before.Count())
	}

	last := 0
	for c := range maxCPUs {
		if allowed.IsSet(c) {
			last = c
		}
	}
	_, after, err = pinAffinity(t, newTestLoop(t, Config{Pin: true, CPU: last}))
	if err != nil {
		t.Fatal(err)
	}
	if after.Count() != 1 || !after.IsSet(last) {
		t.Errorf("Pin to CPU %d: affinity has %d CPUs (CPU %d set: %v)", last, after.Count(), last, after.IsSet(last))
	}
}

func TestNewRefusesBadCPU(t *testing.T) {
	for _, cpu := range []int{-1, maxCPUs} {
		if l, err := New(newFakeQueue(t, 1), Config{Pin: true, CPU: cpu}, perFrame(func([]byte) {})); err == nil {
			l.Stop()
			t.Errorf("Pin to CPU %d: no error", cpu)
		}
	}
	// Without Pin, CPU means nothing.
	newTestLoop(t, Config{CPU: -1})
}

// Stop closes the loop's own descriptor, never the queue's, and a second
// Stop closes nothing more.
func TestStopLeavesQueueOpen(t *testing.T) {
	q := newFakeQueue(t, 1)
	l, err := New(q, Config{}, perFrame(func([]byte) {}))
	if err != nil {
		t.Fatal(err)
	}
	l.Stop()
	l.Stop()
	if _, err := unix.FcntlInt(uintptr(q.FD()), unix.F_GETFD, 0); err != nil {
		t.Fatalf("Stop closed the queue's descriptor: %v", err)
	}
}

func TestStopConcurrent(t *testing.T) {
	l := newTestLoop(t, Config{})
	done := make(chan struct{})
	for range 4 {
		go func() {
			l.Stop()
			done <- struct{}{}
		}()
	}
	for range 4 {
		<-done
	}
}
