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

// failingSleeper is a netpoller whose third sleep fails.
type failingSleeper struct {
	*netpoller
	calls int
}

func (f *failingSleeper) sleep(timeout time.Duration) (bool, error) {
	if f.calls++; f.calls == 3 {
		return false, unix.ENOMEM
	}
	return f.netpoller.sleep(timeout)
}

// A sleep that fails in the reader reaches the caller as an error; the
// writer used to wait for the reader's next turn for ever.
func TestMeasureWakeupSleepFails(t *testing.T) {
	failThird := func(fd int) (sleeper, error) {
		n, err := newNetpoller(fd)
		return &failingSleeper{netpoller: n}, err
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
		t.Fatal("MeasureWakeup did not return after a sleep failed")
	}
}
