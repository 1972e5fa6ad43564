package irq

import (
	"fmt"
	"runtime"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// MeasureWakeup measures what it costs a loop to sleep in poll(2) and be
// woken: the time from an eventfd write on one thread to the return of
// poll(2) on another, the same path a socket's wake-up takes. It returns
// the median of n trials (n of 100 take about 10 ms).
func MeasureWakeup(n int) (time.Duration, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return 0, fmt.Errorf("irq: measure wake-up: eventfd: %w", err)
	}
	defer unix.Close(efd)

	epoch := time.Now()
	var sent atomic.Int64 // when the writer wrote, since epoch
	samples := make([]time.Duration, 0, n)
	errc := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		fds := []unix.PollFd{{Fd: int32(efd), Events: unix.POLLIN}}
		var buf [8]byte
		for i := 0; i < n; i++ {
			ready <- struct{}{}
			for {
				_, err := unix.Poll(fds, 1000)
				if err == unix.EINTR {
					continue
				}
				if err != nil {
					errc <- err
					return
				}
				break
			}
			samples = append(samples, time.Since(epoch)-time.Duration(sent.Load()))
			unix.Read(efd, buf[:])
		}
		errc <- nil
	}()
	one := [8]byte{1}
	for i := 0; i < n; i++ {
		<-ready
		// Give the reader time to be asleep in poll(2), not on its way.
		time.Sleep(50 * time.Microsecond)
		sent.Store(int64(time.Since(epoch)))
		if _, err := unix.Write(efd, one[:]); err != nil {
			return 0, fmt.Errorf("irq: measure wake-up: write: %w", err)
		}
	}
	if err := <-errc; err != nil {
		return 0, fmt.Errorf("irq: measure wake-up: poll: %w", err)
	}
	slices.Sort(samples)
	return samples[len(samples)/2], nil
}
