package irq

import (
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// MeasureWakeup measures what it costs a loop to sleep and be woken: the
// time from an eventfd write on one goroutine to the return of a sleep in
// the netpoller on another, the same path a socket's wake-up takes. It
// returns the median of n trials (n of 100 take about 10 ms).
func MeasureWakeup(n int) (time.Duration, error) {
	return measureWakeup(n, func(fd int) (sleeper, error) { return newNetpoller(fd) })
}

// measureWakeup is MeasureWakeup with the reader's sleeper given, so that
// a test can make it fail.
func measureWakeup(n int, newSleeper func(fd int) (sleeper, error)) (time.Duration, error) {
	if n < 1 {
		return 0, fmt.Errorf("irq: measure wake-up: %d trials: want 1 or more", n)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return 0, fmt.Errorf("irq: measure wake-up: eventfd: %w", err)
	}
	defer unix.Close(efd)
	sl, err := newSleeper(efd)
	if err != nil {
		return 0, fmt.Errorf("irq: measure wake-up: %w", err)
	}
	defer sl.close()

	epoch := time.Now()
	var sent atomic.Int64 // when the writer wrote, since epoch
	samples := make([]time.Duration, 0, n)
	// The reader's end: nil after n trials or when told to quit, else
	// the sleep's error. Either side may stop early; the other learns of
	// it here (the writer) or from quit (the reader), and never waits for
	// a turn that will not come.
	errc := make(chan error, 1)
	ready := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		errc <- func() error {
			var buf [8]byte
			for i := 0; i < n; i++ {
				select {
				case ready <- struct{}{}:
				case <-quit:
					return nil
				}
				if _, err := sl.sleep(time.Second); err != nil {
					return err
				}
				samples = append(samples, time.Since(epoch)-time.Duration(sent.Load()))
				unix.Read(efd, buf[:])
			}
			return nil
		}()
	}()
	one := [8]byte{1}
	for i := 0; i < n; i++ {
		select {
		case <-ready:
		case err := <-errc:
			return 0, fmt.Errorf("irq: measure wake-up: %w", err)
		}
		// Give the reader time to be asleep, not on its way.
		time.Sleep(50 * time.Microsecond)
		sent.Store(int64(time.Since(epoch)))
		if _, err := unix.Write(efd, one[:]); err != nil {
			// The reader sleeps on efd until its timeout: it must be
			// done with efd before efd is closed.
			close(quit)
			<-errc
			return 0, fmt.Errorf("irq: measure wake-up: write: %w", err)
		}
	}
	if err := <-errc; err != nil {
		return 0, fmt.Errorf("irq: measure wake-up: %w", err)
	}
	slices.Sort(samples)
	return samples[len(samples)/2], nil
}
