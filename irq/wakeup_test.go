package irq

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMeasureWakeup(t *testing.T) {
	d, err := MeasureWakeup(20)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 || d > time.Second {
		t.Errorf("wake-up cost %v", d)
	}
	if _, err := MeasureWakeup(0); err == nil {
		t.Error("MeasureWakeup(0): no error")
	}
}

// A poll(2) that fails in the reader reaches the caller as an error; the
// writer used to wait for the reader's next turn for ever.
func TestMeasureWakeupPollFails(t *testing.T) {
	calls := 0 // only the reader's goroutine polls
	failThird := func(fds []unix.PollFd, timeout int) (int, error) {
		if calls++; calls == 3 {
			return 0, unix.ENOMEM
		}
		return unix.Poll(fds, timeout)
	}
	done := make(chan error, 1)
	go func() {
		_, err := measureWakeup(10, failThird)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, unix.ENOMEM) {
			t.Errorf("error %v, want one wrapping ENOMEM", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("MeasureWakeup did not return after poll(2) failed")
	}
}
